/**
 * Numbered, forward-only schema migrations. Each runs once, in order, inside
 * one IMMEDIATE transaction at open, so a server and a CLI opening the same
 * file at the same moment cannot both apply a step (the second waits on the
 * write lock, then sees the step recorded). Append new steps; never edit one
 * that has shipped.
 */
import type Database from 'better-sqlite3';
import { assertNotNewer, assertNumbered, type MigrationResult } from '../migration-steps.js';
import { RUN_MAX, encodeSeqs } from './archive-runs.js';

export type { MigrationResult } from '../migration-steps.js';

export interface Migration {
  version: number;
  name: string;
  up(db: Database.Database): void;
}

// Migration 4's trigger steps (part of a shipped migration once released: never edit).
const COUNT_NEW = `INSERT INTO offline_counters (host, username, messages, bytes) VALUES (NEW.host, NEW.username, 1, length(CAST(NEW.stanza AS BLOB)))
  ON CONFLICT (host, username) DO UPDATE SET messages = messages + 1, bytes = bytes + excluded.bytes;`;
const UNCOUNT_OLD = `UPDATE offline_counters SET messages = messages - 1, bytes = bytes - length(CAST(OLD.stanza AS BLOB))
  WHERE host = OLD.host AND username = OLD.username;`;
// Migrations 12, 13 and 14's trigger steps on a deleted account (OLD): the other accounts' items of it drop to
// subscription none under a new roster version, its pending requests go (13 makes the trigger again: SQLite
// cannot alter one; 14 likewise).
const ROSTERS_OF_DELETED = `UPDATE roster_versions SET version = version + 1 WHERE (host, username) IN (
    SELECT host, username FROM roster_items
    WHERE jid = OLD.username || '@' || OLD.host AND (subscription <> 'none' OR ask = 1 OR approved = 1));
  UPDATE roster_items SET subscription = 'none', ask = 0, approved = 0
    WHERE jid = OLD.username || '@' || OLD.host AND (subscription <> 'none' OR ask = 1 OR approved = 1);
  DELETE FROM roster_pending WHERE jid = OLD.username || '@' || OLD.host;`;
// Migration 13's trigger steps (likewise): a node's rows of pep_affiliates, one per JID its affiliations name.
const AFFILIATES_OF_NEW = `INSERT INTO pep_affiliates (host, username, node, jid)
  SELECT NEW.host, NEW.username, NEW.node, key FROM json_each(NEW.config, '$.affiliations') WHERE json_type(NEW.config, '$.affiliations') = 'object';`;
const NO_AFFILIATES_OF_OLD = 'DELETE FROM pep_affiliates WHERE host = OLD.host AND username = OLD.username AND node = OLD.node;';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'users',
    // Credentials are a JSON document (both SCRAM variants) because the
    // server always reads them whole; WITHOUT ROWID since the key is the row.
    up: (db) => db.exec(`
      CREATE TABLE users (
        host        TEXT    NOT NULL,
        username    TEXT    NOT NULL,
        credentials TEXT    NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (host, username)
      ) STRICT, WITHOUT ROWID;
    `),
  },
  {
    version: 2,
    name: 'rosters and blocklists',
    // RFC 6121 rosters: items, unanswered inbound requests (kept off the
    // roster) and the XEP-0237 version; XEP-0191 blocklists. Groups are a
    // JSON array because an item is always read and written whole. All of
    // it goes with the account (ON DELETE CASCADE).
    up: (db) => db.exec(`
      CREATE TABLE roster_versions (
        host     TEXT    NOT NULL,
        username TEXT    NOT NULL,
        version  INTEGER NOT NULL,
        PRIMARY KEY (host, username),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE roster_items (
        host         TEXT    NOT NULL,
        username     TEXT    NOT NULL,
        jid          TEXT    NOT NULL,
        name         TEXT,
        subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
        ask          INTEGER NOT NULL CHECK (ask IN (0, 1)),
        approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
        groups       TEXT    NOT NULL,
        PRIMARY KEY (host, username, jid),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE roster_pending (
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        jid      TEXT NOT NULL,
        stanza   TEXT NOT NULL,
        PRIMARY KEY (host, username, jid),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE blocklist (
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        jid      TEXT NOT NULL,
        PRIMARY KEY (host, username, jid),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
    `),
  },
  {
    version: 3,
    name: 'offline messages and vcards',
    // XEP-0160 offline messages in arrival order (AUTOINCREMENT: an id is
    // never reused, so a delivered message cannot be mistaken for a newer
    // one) and XEP-0054 vCards, each stored as serialized XML since they are
    // always read and written whole. Both go with the account.
    up: (db) => db.exec(`
      CREATE TABLE offline_messages (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        host      TEXT    NOT NULL,
        username  TEXT    NOT NULL,
        stanza    TEXT    NOT NULL,
        stored_at INTEGER NOT NULL,
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT;
      CREATE INDEX offline_messages_by_account ON offline_messages (host, username, id);
      CREATE TABLE vcards (
        host       TEXT    NOT NULL,
        username   TEXT    NOT NULL,
        vcard      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (host, username),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
    `),
  },
  {
    version: 4,
    name: 'offline counters',
    // Each account's offline message count and bytes (UTF-8 of the stored
    // stanza), so the quota check on every push reads one row instead of
    // COUNT(*)/SUM() over the account's messages. Triggers keep it in the
    // same transaction as every insert, delete (the account's ON DELETE
    // CASCADE fires them too) and update; back-filled for existing data.
    up: (db) => db.exec(`
      CREATE TABLE offline_counters (
        host     TEXT    NOT NULL,
        username TEXT    NOT NULL,
        messages INTEGER NOT NULL,
        bytes    INTEGER NOT NULL,
        PRIMARY KEY (host, username),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
      INSERT INTO offline_counters (host, username, messages, bytes)
        SELECT host, username, COUNT(*), SUM(length(CAST(stanza AS BLOB))) FROM offline_messages GROUP BY host, username;
      CREATE TRIGGER offline_counters_insert AFTER INSERT ON offline_messages BEGIN ${COUNT_NEW} END;
      CREATE TRIGGER offline_counters_delete AFTER DELETE ON offline_messages BEGIN ${UNCOUNT_OLD} END;
      CREATE TRIGGER offline_counters_update AFTER UPDATE OF host, username, stanza ON offline_messages BEGIN ${UNCOUNT_OLD} ${COUNT_NEW} END;
    `),
  },
  {
    version: 5,
    name: 'account changes',
    // Deletions and password changes by any writer (the CLI, another
    // process), recorded by triggers in the writer's own transaction, so the
    // running server can end the sessions concerned (it polls this log).
    up: (db) => db.exec(`
      CREATE TABLE account_changes (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        host     TEXT    NOT NULL,
        username TEXT    NOT NULL,
        change   TEXT    NOT NULL CHECK (change IN ('deleted', 'credentials')),
        at       INTEGER NOT NULL
      ) STRICT;
      CREATE TRIGGER account_changes_delete AFTER DELETE ON users BEGIN
        INSERT INTO account_changes (host, username, change, at) VALUES (OLD.host, OLD.username, 'deleted', unixepoch('subsec') * 1000);
      END;
      CREATE TRIGGER account_changes_credentials AFTER UPDATE OF credentials ON users BEGIN
        INSERT INTO account_changes (host, username, change, at) VALUES (NEW.host, NEW.username, 'credentials', unixepoch('subsec') * 1000);
      END;
    `),
  },
  {
    version: 6,
    name: 'stale h',
    // XEP-0198 §5: the last h of sessions that can no longer be resumed
    // (MongooseIM's stream_mgmt_stale_h), so a late <resume/> gets
    // <failed h='…'/>. Not tied to an account: a record only names an smid,
    // and goes when it is collected (stale_h.geriatric), by stored_at.
    up: (db) => db.exec(`
      CREATE TABLE stale_h (
        smid      TEXT    NOT NULL PRIMARY KEY,
        h         INTEGER NOT NULL,
        stored_at INTEGER NOT NULL
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX stale_h_by_age ON stale_h (stored_at);
    `),
  },
  {
    version: 7,
    name: 'pep',
    // XEP-0163 PEP nodes of each account, their configuration as a JSON
    // document (always read whole) and their items in publication order
    // (seq: AUTOINCREMENT never reuses one, so "newest" is well defined
    // after deletions). Both go with the account; items with their node.
    up: (db) => db.exec(`
      CREATE TABLE pep_nodes (
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        node     TEXT NOT NULL,
        config   TEXT NOT NULL,
        PRIMARY KEY (host, username, node),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
      CREATE TABLE pep_items (
        seq      INTEGER PRIMARY KEY AUTOINCREMENT,
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        node     TEXT NOT NULL,
        item_id  TEXT NOT NULL,
        payload  TEXT NOT NULL,
        UNIQUE (host, username, node, item_id),
        FOREIGN KEY (host, username, node) REFERENCES pep_nodes (host, username, node) ON DELETE CASCADE
      ) STRICT;
      CREATE INDEX pep_items_by_node ON pep_items (host, username, node, seq);
    `),
  },
  {
    version: 8,
    name: 'fast tokens',
    // XEP-0484 FAST tokens (ports/fast-tokens.ts): per account and user
    // agent a 'new', a 'current' and a 'retired' slot; never the token
    // itself, only the SHA-256 of its proof and the server's answer. They go
    // with the account, and with its password (the trigger: §3.6's "no
    // longer trusts a token").
    up: (db) => db.exec(`
      CREATE TABLE fast_tokens (
        host       TEXT    NOT NULL,
        username   TEXT    NOT NULL,
        agent      TEXT    NOT NULL,
        slot       TEXT    NOT NULL CHECK (slot IN ('new', 'current', 'retired')),
        mechanism  TEXT    NOT NULL,
        stored_key TEXT    NOT NULL,
        server_key TEXT    NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (host, username, agent, slot),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX fast_tokens_by_key ON fast_tokens (host, username, stored_key);
      CREATE INDEX fast_tokens_by_expiry ON fast_tokens (expires_at);
      CREATE TRIGGER fast_tokens_credentials AFTER UPDATE OF credentials ON users BEGIN
        DELETE FROM fast_tokens WHERE host = NEW.host AND username = NEW.username;
      END;
    `),
  },
  {
    version: 9,
    name: 'message archive',
    // XEP-0313 archives: `seq` (the rowid) is the archive's order, `id` the
    // XEP-0359 stanza-id clients see. Every query is a range on an index
    // that starts (host, username): by seq, by correspondent, by time, by
    // id. No index on `at` alone: the retention sweep reads the oldest rows by
    // seq (archive order is time order), and every index costs each insert. XEP-0313 §6.1
    // preferences as one JSON document. All of it goes with the account.
    up: (db) => db.exec(`
      CREATE TABLE archive (
        seq      INTEGER PRIMARY KEY,
        host     TEXT    NOT NULL,
        username TEXT    NOT NULL,
        id       TEXT    NOT NULL,
        with_jid TEXT    NOT NULL,
        at       INTEGER NOT NULL,
        stanza   TEXT    NOT NULL,
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT;
      CREATE UNIQUE INDEX archive_by_id ON archive (host, username, id);
      CREATE INDEX archive_by_account ON archive (host, username, seq);
      CREATE INDEX archive_by_with ON archive (host, username, with_jid, seq);
      CREATE INDEX archive_by_time ON archive (host, username, at);
      CREATE TABLE archive_prefs (
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        prefs    TEXT NOT NULL,
        PRIMARY KEY (host, username),
        FOREIGN KEY (host, username) REFERENCES users (host, username) ON DELETE CASCADE
      ) STRICT, WITHOUT ROWID;
    `),
  },
  {
    version: 10,
    name: 'archive ids carry their seq',
    // The server now numbers archived messages itself (storage/ports/archive-ids.ts): `seq` is
    // 1024 × the stamp in ms + a counter, and an id with a dot names its seq. So neither an
    // id nor a time needs an index of its own: each insert writes three B-trees instead of
    // five (issue 16: the archive's cost per message). Rows from before keep their rowid and
    // random id (no dot), found on partial indexes that hold only them: an insert of today
    // skips both. Nothing is rewritten.
    up: (db) => db.exec(`
      DROP INDEX archive_by_id;
      DROP INDEX archive_by_time;
      CREATE UNIQUE INDEX archive_by_legacy_id ON archive (host, username, id) WHERE instr(id, '.') = 0;
      CREATE INDEX archive_by_legacy_time ON archive (host, username, at) WHERE instr(id, '.') = 0;
    `),
  },
  {
    version: 11,
    name: 'one archive row per message',
    // Issue 16 (archiving must cost at most 20 % of messages/s): a message archived for both
    // accounts was two rows of `archive`, each written into three B-trees keyed by text (the
    // table, (host, username, seq), (host, username, with_jid, seq)), and a users lookup and a
    // foreign-key check per row: about 22 µs of the writer's CPU per message. Here a message
    // is one row keyed by its key (storage/ports/archive-ids.ts: appended at the table's right
    // edge) with both parties as small integers (archive_jids interns bare JIDs, never deleted):
    // `sides` says whose archives hold it (1: the recipient's, seq 2 × key; 2: the sender's,
    // 2 × key + 1). An account's archive is two partial indexes (what it received, what it
    // sent), merged by key; a conversation is one index on the pair, covering for which side a
    // row is (a count reads no table row). About 6 µs per message.
    // Rows of `archive` stay where they are (nothing is rewritten) and are read with these;
    // they are all older than any row here. The account's deletion takes its side out of each
    // row, and the row when no side is left (no foreign key: users are keyed by text).
    up: (db) => db.exec(`
      CREATE TABLE archive_jids (
        id  INTEGER PRIMARY KEY,
        jid TEXT    NOT NULL UNIQUE
      ) STRICT;
      CREATE TABLE archive_messages (
        key      INTEGER PRIMARY KEY,
        id       TEXT    NOT NULL,
        at       INTEGER NOT NULL,
        sender   INTEGER NOT NULL,
        receiver INTEGER NOT NULL,
        sides    INTEGER NOT NULL,
        stanza   TEXT    NOT NULL
      ) STRICT;
      CREATE INDEX archive_messages_received ON archive_messages (receiver, key) WHERE sides & 1;
      CREATE INDEX archive_messages_sent ON archive_messages (sender, key) WHERE sides & 2;
      CREATE INDEX archive_messages_pair ON archive_messages (min(sender, receiver), max(sender, receiver), key, sender, sides);
      CREATE TRIGGER archive_messages_account_deleted AFTER DELETE ON users BEGIN
        DELETE FROM archive_messages WHERE receiver = (SELECT id FROM archive_jids WHERE jid = OLD.username || '@' || OLD.host) AND sides & 1 AND sides = 1;
        UPDATE archive_messages SET sides = 2 WHERE receiver = (SELECT id FROM archive_jids WHERE jid = OLD.username || '@' || OLD.host) AND sides & 1;
        DELETE FROM archive_messages WHERE sender = (SELECT id FROM archive_jids WHERE jid = OLD.username || '@' || OLD.host) AND sides & 2 AND sides = 2;
        UPDATE archive_messages SET sides = 1 WHERE sender = (SELECT id FROM archive_jids WHERE jid = OLD.username || '@' || OLD.host) AND sides & 2;
      END;
    `),
  },
  {
    version: 12,
    name: 'contacts of a deleted account',
    // A deleted account leaves the other accounts' data as if it had sent unsubscribe and
    // unsubscribed to each of them (RFC 6121 §3.2, §3.3; Prosody's mod_presence on
    // user-deleted, ejabberd's mod_roster remove_user): their items of it drop to subscription
    // none with no Pending Out and no pre-approval (the next account of the name is someone
    // else), under a new roster version (XEP-0237), its unanswered requests go, and so do its
    // PEP affiliations (member, outcast). Before, a new account of the same name inherited the
    // contacts' subscriptions, and they got the dead request at every login. A trigger, so it
    // holds for every writer (the CLI in another process, the server), in the deletion's own
    // transaction; the indexes find "the rosters naming this JID". PEP affiliations are a JSON
    // document per node: that update reads every node (deletions are rare).
    up: (db) => db.exec(`
      CREATE INDEX roster_items_by_contact ON roster_items (jid);
      CREATE INDEX roster_pending_by_contact ON roster_pending (jid);
      CREATE TRIGGER contacts_of_deleted_account AFTER DELETE ON users BEGIN
        ${ROSTERS_OF_DELETED}
        UPDATE pep_nodes SET config = json_remove(config, '$.affiliations."' || OLD.username || '@' || OLD.host || '"')
          WHERE json_type(config, '$.affiliations."' || OLD.username || '@' || OLD.host || '"') IS NOT NULL;
      END;
    `),
  },
  {
    version: 13,
    name: 'pep affiliates',
    // Migration 12's PEP step read the configuration of every node of every account, holding
    // the write lock, at each deletion: with a million accounts, seconds during which every
    // writer waits (the server's, on its event loop). SQLite cannot index the keys of a JSON
    // object (PostgreSQL's GIN index pep_nodes_by_affiliate does), so pep_affiliates lists them:
    // one row per JID a node's affiliations name, found by JID on pep_affiliates_by_jid. Triggers
    // keep it in the same transaction as every write of pep_nodes, by any writer (the account's
    // ON DELETE CASCADE fires them too); back-filled here, the one read of every node. The
    // configuration stays the document the store reads and writes, so the store code is
    // unchanged. A publish does not write pep_nodes; a configure that writes the same document
    // again (bookmarks mirroring, XEP-0402 §5.3, at each publish to a bookmarks node) runs
    // nothing (WHEN). The deletion's trigger is made again: its roster steps as migration 12
    // wrote them (a trigger cannot be altered), its PEP step on the nodes naming the JID, each
    // by its key; rewriting a node's configuration there rewrites its pep_affiliates rows.
    up: (db) => db.exec(`
      CREATE TABLE pep_affiliates (
        host     TEXT NOT NULL,
        username TEXT NOT NULL,
        node     TEXT NOT NULL,
        jid      TEXT NOT NULL,
        PRIMARY KEY (host, username, node, jid)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX pep_affiliates_by_jid ON pep_affiliates (jid);
      INSERT INTO pep_affiliates (host, username, node, jid)
        SELECT n.host, n.username, n.node, a.key FROM pep_nodes n, json_each(n.config, '$.affiliations') a
        WHERE json_type(n.config, '$.affiliations') = 'object';
      CREATE TRIGGER pep_affiliates_insert AFTER INSERT ON pep_nodes BEGIN ${AFFILIATES_OF_NEW} END;
      CREATE TRIGGER pep_affiliates_update AFTER UPDATE OF host, username, node, config ON pep_nodes
        WHEN NEW.config IS NOT OLD.config OR NEW.host IS NOT OLD.host OR NEW.username IS NOT OLD.username OR NEW.node IS NOT OLD.node
        BEGIN ${NO_AFFILIATES_OF_OLD} ${AFFILIATES_OF_NEW} END;
      CREATE TRIGGER pep_affiliates_delete AFTER DELETE ON pep_nodes BEGIN ${NO_AFFILIATES_OF_OLD} END;
      DROP TRIGGER contacts_of_deleted_account;
      CREATE TRIGGER contacts_of_deleted_account AFTER DELETE ON users BEGIN
        ${ROSTERS_OF_DELETED}
        UPDATE pep_nodes SET config = json_remove(config, '$.affiliations."' || OLD.username || '@' || OLD.host || '"')
          WHERE (host, username, node) IN (SELECT host, username, node FROM pep_affiliates WHERE jid = OLD.username || '@' || OLD.host);
      END;
    `),
  },
  {
    version: 14,
    name: 'pep affiliates with any name',
    // Migrations 12 and 13 took the deleted JID out of a node's affiliations by a JSON path,
    // '$.affiliations."<jid>"': SQLite matches such a label against the key as the document
    // spells it, escapes included, so a localpart with a backslash (XEP-0106's escapes, as in
    // john\20doe, stored as "john\\20doe") never matched. Its member and outcast affiliations
    // stayed, and an account made again under the name inherited them. The affiliations are
    // built again here from json_each, whose keys are the decoded names (pep_affiliates holds
    // the same), without the deleted JID: no path names it. The roster steps stay as they were.
    up: (db) => db.exec(`
      DROP TRIGGER contacts_of_deleted_account;
      CREATE TRIGGER contacts_of_deleted_account AFTER DELETE ON users BEGIN
        ${ROSTERS_OF_DELETED}
        UPDATE pep_nodes SET config = json_set(config, '$.affiliations', (
            SELECT json_group_object(a.key, a.value) FROM json_each(pep_nodes.config, '$.affiliations') a
            WHERE a.key <> OLD.username || '@' || OLD.host))
          WHERE (host, username, node) IN (SELECT host, username, node FROM pep_affiliates WHERE jid = OLD.username || '@' || OLD.host);
      END;
    `),
  },
  {
    version: 15,
    name: 'credentials changed at',
    // When an account's credentials were last set (ms since the epoch), written by create and
    // setCredentials: a token login (JWT) minted before it is refused, so a password change ends
    // the token logins made before it, as it ends the FAST tokens (migration 8's trigger). An
    // account from before this step counts from its creation: its tokens are judged as before.
    up: (db) => db.exec(`
      ALTER TABLE users ADD COLUMN credentials_changed_at INTEGER NOT NULL DEFAULT 0;
      UPDATE users SET credentials_changed_at = created_at;
    `),
  },
  {
    version: 16,
    name: 'credentials changed at, by any writer',
    // An UPDATE of the credentials that does not set credentials_changed_at itself (an operator's
    // SQL; setCredentials sets both) sets it to the clock's milliseconds, so the token logins minted
    // before it are refused as after setCredentials. The change log (migration 5) already sees it.
    // SQLite cannot change NEW: the row is updated again after, in the writer's statement.
    up: (db) => db.exec(`
      CREATE TRIGGER users_credentials_changed_at AFTER UPDATE OF credentials ON users
        WHEN NEW.credentials IS NOT OLD.credentials AND NEW.credentials_changed_at = OLD.credentials_changed_at
      BEGIN
        UPDATE users SET credentials_changed_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE host = NEW.host AND username = NEW.username;
      END;
    `),
  },
  {
    version: 17,
    name: 'archive runs',
    // Issue 16 (archiving must cost at most 20 % of messages/s): migration 11's three indexes on
    // archive_messages took an entry per copy, and each commit rewrote a leaf of each for every
    // account it touched: three quarters of the writer thread's CPU, and more as the archive grows.
    // An account's archive is now its runs (storage/sqlite/archive-runs.ts): one row per account
    // and correspondent per commit. Built here from the rows there are, in key order, then the
    // indexes go. The account's deletion reads its copies from its runs (json_each), takes its
    // side out of each row (the row goes with the last side), then its runs.
    up: (db) => {
      db.exec(`
        CREATE TABLE archive_runs (
          owner INTEGER NOT NULL,
          peer  INTEGER NOT NULL,
          last  INTEGER NOT NULL,
          first INTEGER NOT NULL,
          seqs  TEXT    NOT NULL,
          PRIMARY KEY (owner, peer, last)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX archive_runs_by_first ON archive_runs (first);
      `);
      buildRuns(db);
      const copies = (parity: 0 | 1) => `SELECT (r.first + j.value) / 2 FROM archive_runs AS r, json_each(r.seqs) AS j
        WHERE r.owner = (SELECT id FROM archive_jids WHERE jid = OLD.username || '@' || OLD.host) AND r.peer = 0 AND (r.first + j.value) % 2 = ${parity}`;
      db.exec(`
        DROP INDEX archive_messages_received;
        DROP INDEX archive_messages_sent;
        DROP INDEX archive_messages_pair;
        DROP TRIGGER archive_messages_account_deleted;
        CREATE TRIGGER archive_messages_account_deleted AFTER DELETE ON users BEGIN
          UPDATE archive_messages SET sides = sides & ~1 WHERE key IN (${copies(0)});
          UPDATE archive_messages SET sides = sides & ~2 WHERE key IN (${copies(1)});
          DELETE FROM archive_messages WHERE sides = 0 AND key IN (${copies(0)} UNION ALL ${copies(1)});
          DELETE FROM archive_runs WHERE owner = (SELECT id FROM archive_jids WHERE jid = OLD.username || '@' || OLD.host);
        END;
      `);
    },
  },
];

/** Migration 17: the runs of the archive_messages rows there are (at most RUN_MAX copies each, in key order), a page of rows at a time. */
function buildRuns(db: Database.Database): void {
  const page = db.prepare<[number], { key: number; sender: number; receiver: number; sides: number }>(
    'SELECT key, sender, receiver, sides FROM archive_messages WHERE key > ? ORDER BY key LIMIT 10000');
  const insert = db.prepare<[number, number, number, number, string]>('INSERT INTO archive_runs (owner, peer, last, first, seqs) VALUES (?, ?, ?, ?, ?)');
  const open = new Map<string, { owner: number; peer: number; seqs: number[] }>();
  const flush = (run: { owner: number; peer: number; seqs: number[] }): void => {
    insert.run(run.owner, run.peer, run.seqs[run.seqs.length - 1]!, run.seqs[0]!, encodeSeqs(run.seqs));
    run.seqs = [];
  };
  const flushAll = (): void => {
    for (const run of open.values()) if (run.seqs.length > 0) flush(run);
    open.clear();
  };
  const add = (owner: number, peer: number, seq: number): void => {
    const k = `${owner} ${peer}`;
    let run = open.get(k);
    if (run === undefined) open.set(k, run = { owner, peer, seqs: [] });
    run.seqs.push(seq);
    if (run.seqs.length >= RUN_MAX) flush(run);
  };
  for (let after = -1; ;) {
    const rows = page.all(after);
    if (rows.length === 0) break;
    for (const r of rows) {
      if (r.sides & 1) { add(r.receiver, 0, 2 * r.key); add(r.receiver, r.sender, 2 * r.key); }
      if (r.sides & 2) { add(r.sender, 0, 2 * r.key + 1); add(r.sender, r.receiver, 2 * r.key + 1); }
    }
    after = rows[rows.length - 1]!.key;
    // Runs still open are written once there are many (memory stays bounded however many
    // conversations there are); the rows come in key order, so each run written is above the last
    // of its account and peer.
    if (open.size > MIGRATION_OPEN_RUNS) flushAll();
  }
  flushAll();
}

/** Runs migration 17 keeps open at most between pages of rows. */
const MIGRATION_OPEN_RUNS = 50_000;

function currentVersion(db: Database.Database): number {
  const row = db.prepare<[], { v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations').get();
  return row?.v ?? 0;
}

/** Brings the schema up to the last migration; returns the versions before and after. */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): MigrationResult {
  assertNumbered(migrations);
  const target = migrations.length;
  const run = db.transaction((): MigrationResult => {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version    INTEGER PRIMARY KEY,
      name       TEXT    NOT NULL,
      applied_at INTEGER NOT NULL
    ) STRICT`);
    const from = currentVersion(db);
    assertNotNewer(from, target);
    const record = db.prepare<[number, string, number]>('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of migrations.slice(from)) {
      m.up(db);
      record.run(m.version, m.name, Date.now());
    }
    return { from, to: target };
  });
  return run.immediate();
}
