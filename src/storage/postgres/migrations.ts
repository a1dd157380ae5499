/**
 * Numbered, forward-only schema migrations of the PostgreSQL backend. All of
 * them run at open in one transaction that first takes a transaction-level
 * advisory lock (a fixed key), so N gateway processes and CLIs starting at
 * once apply each step exactly once: the others wait on the lock, then find
 * the steps recorded in schema_version. Append new steps; never edit one
 * that has shipped.
 *
 * Text keys are COLLATE "C": byte order of UTF-8, which is Unicode code
 * point order, the order SQLite's BINARY collation and the ports promise.
 */
import type { Pool, PoolClient } from 'pg';
import { assertNotNewer, assertNumbered, type MigrationResult } from '../migration-steps.js';
import { inTransaction } from './tx.js';

export type { MigrationResult } from '../migration-steps.js';

export interface PgMigration {
  version: number;
  name: string;
  sql: string;
}

/** pg_advisory_xact_lock key of the migrations: 'xwgmigr' as bytes, so no other application picks it by chance. */
export const MIGRATION_LOCK_KEY = 0x7877676d69677200n;

const KEY = 'host TEXT COLLATE "C" NOT NULL, username TEXT COLLATE "C" NOT NULL';
const OF_ACCOUNT = 'FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE';
/** The NOTIFY channel of account changes (migration 8): a deleted account or new credentials, as JSON [host, username]. */
export const ACCOUNT_CHANNEL = 'xwg_account_changes';

export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: 'users and account changes',
    // Credentials are a JSON document (both SCRAM variants), always read
    // whole. Deletions and password changes by any writer are logged by
    // triggers in the writer's transaction, for the running servers to
    // follow; the log's table lock makes ids commit in order, so a watcher
    // that has seen id N never later finds a smaller one appear.
    sql: `
      CREATE TABLE users (${KEY}, credentials JSONB NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (host, username));
      CREATE TABLE account_changes (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${KEY},
        change TEXT NOT NULL CHECK (change IN ('deleted', 'credentials')),
        at BIGINT NOT NULL);
      CREATE FUNCTION log_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        LOCK TABLE account_changes IN SHARE ROW EXCLUSIVE MODE;
        INSERT INTO account_changes (host, username, change, at)
          VALUES (OLD.host, OLD.username, TG_ARGV[0], (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
        RETURN NULL;
      END $$;
      CREATE TRIGGER account_changes_delete AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION log_account_change('deleted');
      CREATE TRIGGER account_changes_credentials AFTER UPDATE OF credentials ON users FOR EACH ROW EXECUTE FUNCTION log_account_change('credentials');
    `,
  },
  {
    version: 2,
    name: 'rosters and blocklists',
    // RFC 6121 rosters (items, Pending In requests, the XEP-0237 version)
    // and XEP-0191 blocklists; all of it goes with the account.
    sql: `
      CREATE TABLE roster_versions (${KEY}, version BIGINT NOT NULL, PRIMARY KEY (host, username), ${OF_ACCOUNT});
      CREATE TABLE roster_items (${KEY}, jid TEXT COLLATE "C" NOT NULL, name TEXT,
        subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
        ask BOOLEAN NOT NULL, approved BOOLEAN NOT NULL, groups JSONB NOT NULL,
        PRIMARY KEY (host, username, jid), ${OF_ACCOUNT});
      CREATE TABLE roster_pending (${KEY}, jid TEXT COLLATE "C" NOT NULL, stanza TEXT NOT NULL, PRIMARY KEY (host, username, jid), ${OF_ACCOUNT});
      CREATE TABLE blocklist (${KEY}, jid TEXT COLLATE "C" NOT NULL, PRIMARY KEY (host, username, jid), ${OF_ACCOUNT});
    `,
  },
  {
    version: 3,
    name: 'offline messages, their counters, vcards',
    // XEP-0160 offline messages (an identity never reuses an id) with each
    // account's count and UTF-8 bytes kept by triggers on every insert and
    // delete, the account's cascade included; the quota check locks the
    // account's counter row (offline.ts). XEP-0054 vCards.
    sql: `
      CREATE TABLE offline_messages (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${KEY},
        stanza TEXT NOT NULL, stored_at BIGINT NOT NULL, ${OF_ACCOUNT});
      CREATE INDEX offline_messages_by_account ON offline_messages (host, username, id);
      CREATE TABLE offline_counters (${KEY}, messages BIGINT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (host, username), ${OF_ACCOUNT});
      CREATE FUNCTION count_offline() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          INSERT INTO offline_counters (host, username, messages, bytes) VALUES (NEW.host, NEW.username, 1, octet_length(NEW.stanza))
            ON CONFLICT (host, username) DO UPDATE SET messages = offline_counters.messages + 1, bytes = offline_counters.bytes + excluded.bytes;
        ELSE
          UPDATE offline_counters SET messages = messages - 1, bytes = bytes - octet_length(OLD.stanza)
            WHERE host = OLD.host AND username = OLD.username;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER offline_counters_count AFTER INSERT OR DELETE ON offline_messages FOR EACH ROW EXECUTE FUNCTION count_offline();
      CREATE TABLE vcards (${KEY}, vcard TEXT NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (host, username), ${OF_ACCOUNT});
    `,
  },
  {
    version: 4,
    name: 'stale h',
    // XEP-0198 §5: the last h of sessions that can no longer be resumed
    // (MongooseIM's stream_mgmt_stale_h); not tied to an account.
    sql: `
      CREATE TABLE stale_h (smid TEXT COLLATE "C" NOT NULL PRIMARY KEY, h BIGINT NOT NULL, stored_at BIGINT NOT NULL);
      CREATE INDEX stale_h_by_age ON stale_h (stored_at);
    `,
  },
  {
    version: 5,
    name: 'pep',
    // XEP-0163 PEP nodes (configuration as JSONB, read whole) and their
    // items in publication order (an identity never reuses a seq); both go
    // with the account, items with their node.
    sql: `
      CREATE TABLE pep_nodes (${KEY}, node TEXT COLLATE "C" NOT NULL, config JSONB NOT NULL, PRIMARY KEY (host, username, node), ${OF_ACCOUNT});
      CREATE TABLE pep_items (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${KEY}, node TEXT COLLATE "C" NOT NULL,
        item_id TEXT COLLATE "C" NOT NULL, payload TEXT NOT NULL,
        UNIQUE (host, username, node, item_id),
        FOREIGN KEY (host, username, node) REFERENCES pep_nodes (host, username, node) ON DELETE CASCADE);
      CREATE INDEX pep_items_by_node ON pep_items (host, username, node, seq);
    `,
  },
  {
    version: 6,
    name: 'fast tokens',
    // XEP-0484 FAST tokens, as SQLite's migration 8 (never the token itself);
    // gone with the account and with its password.
    sql: `
      CREATE TABLE fast_tokens (${KEY}, agent TEXT COLLATE "C" NOT NULL, slot TEXT NOT NULL CHECK (slot IN ('new', 'current', 'retired')),
        mechanism TEXT NOT NULL, stored_key TEXT COLLATE "C" NOT NULL, server_key TEXT NOT NULL, expires_at BIGINT NOT NULL,
        PRIMARY KEY (host, username, agent, slot), ${OF_ACCOUNT});
      CREATE INDEX fast_tokens_by_key ON fast_tokens (host, username, stored_key);
      CREATE INDEX fast_tokens_by_expiry ON fast_tokens (expires_at);
      CREATE FUNCTION revoke_fast_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        DELETE FROM fast_tokens WHERE host = NEW.host AND username = NEW.username;
        RETURN NULL;
      END $$;
      CREATE TRIGGER fast_tokens_credentials AFTER UPDATE OF credentials ON users FOR EACH ROW EXECUTE FUNCTION revoke_fast_tokens();
    `,
  },
  {
    version: 7,
    name: 'message archive',
    // XEP-0313 archives: `seq` is the archive's order, `id` the XEP-0359
    // stanza-id clients see; every query is a range on an index that starts
    // (host, username); the retention sweep reads the oldest rows by seq.
    // XEP-0313 §6.1 preferences as one document. All of it goes with the account.
    sql: `
      CREATE TABLE archive (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ${KEY},
        id TEXT COLLATE "C" NOT NULL, with_jid TEXT COLLATE "C" NOT NULL, at BIGINT NOT NULL, stanza TEXT NOT NULL, ${OF_ACCOUNT});
      CREATE UNIQUE INDEX archive_by_id ON archive (host, username, id);
      CREATE INDEX archive_by_account ON archive (host, username, seq);
      CREATE INDEX archive_by_with ON archive (host, username, with_jid, seq);
      CREATE INDEX archive_by_time ON archive (host, username, at, seq);
      CREATE TABLE archive_prefs (${KEY}, prefs JSONB NOT NULL, PRIMARY KEY (host, username), ${OF_ACCOUNT});
    `,
  },
  {
    version: 8,
    name: 'account changes notified',
    // The account change log (step 1) also NOTIFYs ACCOUNT_CHANNEL with the
    // account as [host, username]: PostgreSQL delivers it to every listening
    // process when the writer's transaction commits, whoever wrote (the CLI,
    // psql), so the processes that keep credentials in memory drop them at
    // once (credential-listener.ts) instead of at the next poll of the log.
    sql: `
      CREATE OR REPLACE FUNCTION log_account_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        LOCK TABLE account_changes IN SHARE ROW EXCLUSIVE MODE;
        INSERT INTO account_changes (host, username, change, at)
          VALUES (OLD.host, OLD.username, TG_ARGV[0], (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
        PERFORM pg_notify('${ACCOUNT_CHANNEL}', json_build_array(OLD.host, OLD.username)::text);
        RETURN NULL;
      END $$;
    `,
  },
  {
    version: 9,
    name: 'contacts of a deleted account',
    // As SQLite's migration 12: a deleted account leaves the other accounts' data as if it had
    // sent unsubscribe and unsubscribed to each (RFC 6121 §3.2, §3.3; Prosody, ejabberd): their
    // items of it drop to none with no Pending Out and no pre-approval, under a new roster
    // version; its unanswered requests and its PEP affiliations go. In the deletion's
    // transaction, whoever deletes (the CLI, psql); the indexes find the rosters and the nodes
    // naming the JID.
    sql: `
      CREATE INDEX roster_items_by_contact ON roster_items (jid);
      CREATE INDEX roster_pending_by_contact ON roster_pending (jid);
      CREATE INDEX pep_nodes_by_affiliate ON pep_nodes USING GIN ((config -> 'affiliations'));
      CREATE FUNCTION forget_deleted_contact() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        contact TEXT COLLATE "C" := OLD.username || '@' || OLD.host;
      BEGIN
        -- The items first, then their accounts' versions: the order of a roster write (putItem), so the
        -- two cannot deadlock on an item of the deleted JID and its account's version row.
        WITH changed AS (
          UPDATE roster_items SET subscription = 'none', ask = false, approved = false
            WHERE jid = contact AND (subscription <> 'none' OR ask OR approved) RETURNING host, username)
        UPDATE roster_versions v SET version = v.version + 1 FROM changed c WHERE v.host = c.host AND v.username = c.username;
        DELETE FROM roster_pending WHERE jid = contact;
        UPDATE pep_nodes SET config = jsonb_set(config, '{affiliations}', (config -> 'affiliations') - contact)
          WHERE config -> 'affiliations' ? contact;
        RETURN NULL;
      END $$;
      CREATE TRIGGER contacts_of_deleted_account AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION forget_deleted_contact();
    `,
  },
  {
    version: 10,
    name: 'credentials changed at',
    // As SQLite's migration 15: when the credentials were last set, written by create and
    // setCredentials; a token login (JWT) minted before it is refused. Accounts from before
    // this step count from their creation.
    sql: `
      ALTER TABLE users ADD COLUMN credentials_changed_at BIGINT;
      UPDATE users SET credentials_changed_at = created_at;
      ALTER TABLE users ALTER COLUMN credentials_changed_at SET NOT NULL;
    `,
  },
  {
    version: 11,
    name: 'credentials changed at, by any writer',
    // As SQLite's migration 16: an UPDATE of the credentials that does not set credentials_changed_at
    // itself (an operator's SQL; setCredentials sets both) sets it to the clock's milliseconds, so the
    // token logins minted before it are refused as after setCredentials. The change log and its NOTIFY
    // (steps 1 and 8) already see such an UPDATE.
    sql: `
      CREATE FUNCTION stamp_credentials_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.credentials_changed_at := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
        RETURN NEW;
      END $$;
      CREATE TRIGGER users_credentials_changed_at BEFORE UPDATE OF credentials ON users FOR EACH ROW
        WHEN (NEW.credentials IS DISTINCT FROM OLD.credentials AND NEW.credentials_changed_at = OLD.credentials_changed_at)
        EXECUTE FUNCTION stamp_credentials_change();
    `,
  },
];


async function applyPending(client: PoolClient, migrations: readonly PgMigration[]): Promise<MigrationResult> {
  await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
  await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
  const { rows } = await client.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_version');
  const from = rows[0]?.v ?? 0;
  const to = migrations.length;
  assertNotNewer(from, to);
  for (const m of migrations.slice(from)) {
    await client.query(m.sql);
    await client.query('INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
  }
  return { from, to };
}

/** Brings the schema up to the last migration, all steps in one transaction under the advisory lock. */
export async function migratePostgres(pool: Pool, migrations: readonly PgMigration[] = PG_MIGRATIONS): Promise<MigrationResult> {
  assertNumbered(migrations);
  return inTransaction(pool, (client) => applyPending(client, migrations));
}
