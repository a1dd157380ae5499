/**
 * A login loads an account's roster and its blocklist together (the
 * accounts service asks both ports at once: features/accounts/accounts.ts),
 * and on PostgreSQL each statement is a round trip: a socket write and read
 * here, a bind and execute in a backend. Reads of one account asked in the
 * same turn of the event loop go as ONE statement that returns both (the
 * per-tick batching of DataLoader, by hand: two callers and one key do not
 * need the library). One statement also reads one snapshot, so the two
 * parts agree. A read asked alone is the same statement; its other half is
 * dropped.
 */
import type { Pool } from 'pg';
import type { RosterItem, RosterPending, StoredRoster } from '../ports/roster.js';
import { toNumber } from './tx.js';

/*
 * The roster's version, items and pending requests, and the blocklist,
 * each aggregated in its own subquery (one row whatever the counts).
 */
const LOAD = `
  SELECT
    (SELECT version FROM roster_versions WHERE host = $1 AND username = $2) AS version,
    (SELECT COALESCE(json_agg(json_build_object(
        'jid', jid, 'name', name, 'subscription', subscription, 'ask', ask, 'approved', approved, 'groups', groups) ORDER BY jid), '[]')
      FROM roster_items WHERE host = $1 AND username = $2) AS items,
    (SELECT COALESCE(json_agg(json_build_object('jid', jid, 'stanza', stanza) ORDER BY jid), '[]')
      FROM roster_pending WHERE host = $1 AND username = $2) AS pending,
    (SELECT COALESCE(json_agg(jid ORDER BY jid), '[]') FROM blocklist WHERE host = $1 AND username = $2) AS blocklist`;

export interface ItemRow {
  jid: string;
  name: string | null;
  subscription: string;
  ask: boolean;
  approved: boolean;
  groups: unknown;
}

interface LoadRow {
  version: string | null;
  items: ItemRow[];
  pending: RosterPending[];
  blocklist: string[];
}

interface Waiter<T> { resolve(v: T): void; reject(err: unknown): void }

interface Waiting {
  readonly roster: Waiter<StoredRoster>[];
  readonly blocklist: Waiter<string[]>[];
}

export interface AccountReader {
  roster(host: string, username: string): Promise<StoredRoster>;
  blocklist(host: string, username: string): Promise<string[]>;
}

/** The first caller gets what was read, any other its own copy, as from a statement of its own. */
function hand<T>(waiters: readonly Waiter<T>[], value: T): void {
  waiters.forEach((w, i) => w.resolve(i === 0 ? value : structuredClone(value)));
}

/** `decode` checks each stored roster item (roster.ts). */
export function createAccountReader(pool: Pool, decode: (row: ItemRow) => RosterItem): AccountReader {
  const asked = new Map<string, Waiting>();

  async function run(key: string, host: string, username: string): Promise<void> {
    const waiting = asked.get(key)!;
    asked.delete(key);
    try {
      // Named: prepared once per connection, not parsed and planned again at every login.
      const { rows: [row] } = await pool.query<LoadRow>({ name: 'account-load', text: LOAD, values: [host, username] });
      if (!row) throw new Error('account load returned no row');
      if (waiting.roster.length > 0) hand(waiting.roster, { version: toNumber(row.version ?? 0), items: row.items.map(decode), pending: row.pending });
      hand(waiting.blocklist, row.blocklist);
    } catch (err) {
      for (const w of [...waiting.roster, ...waiting.blocklist]) w.reject(err);
    }
  }

  /** The waiters of `host`/`username` in this turn; the first one asked schedules the statement. */
  function waitingFor(host: string, username: string): Waiting {
    const key = `${host}\0${username}`;
    let waiting = asked.get(key);
    if (!waiting) {
      asked.set(key, (waiting = { roster: [], blocklist: [] }));
      // After the current synchronous stretch: a caller that asks both parts has asked both by then.
      queueMicrotask(() => void run(key, host, username));
    }
    return waiting;
  }

  return {
    roster: (host, username) => new Promise((resolve, reject) => waitingFor(host, username).roster.push({ resolve, reject })),
    blocklist: (host, username) => new Promise((resolve, reject) => waitingFor(host, username).blocklist.push({ resolve, reject })),
  };
}
