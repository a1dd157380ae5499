/** FastTokenStore (XEP-0484) over one better-sqlite3 connection; statements are prepared once. */
import type Database from 'better-sqlite3';
import type { FastSlot, FastToken, FastTokenStore } from '../ports/fast-tokens.js';

interface Row {
  host: string; username: string; agent: string; slot: FastSlot; mechanism: string; stored_key: string; server_key: string; expires_at: number;
}

const fromRow = (r: Row): FastToken => ({
  host: r.host, username: r.username, agent: r.agent, slot: r.slot, mechanism: r.mechanism, storedKey: r.stored_key, serverKey: r.server_key, expiresAt: r.expires_at,
});

export function createSqliteFastTokenStore(db: Database.Database): FastTokenStore {
  const st = {
    put: db.prepare<[string, string, string, string, string, string, number]>(`
      INSERT INTO fast_tokens (host, username, agent, slot, mechanism, stored_key, server_key, expires_at) VALUES (?, ?, ?, 'new', ?, ?, ?, ?)
      ON CONFLICT (host, username, agent, slot) DO UPDATE SET mechanism = excluded.mechanism, stored_key = excluded.stored_key,
        server_key = excluded.server_key, expires_at = excluded.expires_at`),
    // The agents past maxAgents, those whose latest expiry comes first; on a tie the agent just issued to
    // stays, then by agent id (BINARY: code point order), so every backend drops the same.
    prune: db.prepare<[string, string, string, string, string, number]>(`
      DELETE FROM fast_tokens WHERE host = ? AND username = ? AND agent IN (
        SELECT agent FROM fast_tokens WHERE host = ? AND username = ? GROUP BY agent
        ORDER BY MAX(expires_at) DESC, agent = ? DESC, agent LIMIT -1 OFFSET ?)`),
    find: db.prepare<[string, string, string], Row>('SELECT * FROM fast_tokens WHERE host = ? AND username = ? AND stored_key = ?'),
    dropRetired: db.prepare<[string, string, string]>("DELETE FROM fast_tokens WHERE host = ? AND username = ? AND agent = ? AND slot = 'retired'"),
    retireCurrent: db.prepare<[string, string, string]>("UPDATE fast_tokens SET slot = 'retired' WHERE host = ? AND username = ? AND agent = ? AND slot = 'current'"),
    promote: db.prepare<[string, string, string, string]>("UPDATE fast_tokens SET slot = 'current' WHERE host = ? AND username = ? AND agent = ? AND slot = 'new' AND stored_key = ?"),
    dropOtherRetired: db.prepare<[string, string, string, string]>(
      "DELETE FROM fast_tokens WHERE host = ? AND username = ? AND agent = ? AND slot = 'retired' AND stored_key <> ?"),
    retireOne: db.prepare<[string, string, string]>("UPDATE fast_tokens SET slot = 'retired' WHERE host = ? AND username = ? AND stored_key = ?"),
    revoke: db.prepare<[string, string]>('DELETE FROM fast_tokens WHERE host = ? AND username = ?'),
    expire: db.prepare<[number]>('DELETE FROM fast_tokens WHERE expires_at <= ?'),
  };
  const issue = db.transaction((t: Omit<FastToken, 'slot'>, maxAgents: number) => {
    st.put.run(t.host, t.username, t.agent, t.mechanism, t.storedKey, t.serverKey, t.expiresAt);
    st.prune.run(t.host, t.username, t.host, t.username, t.agent, maxAgents);
  });
  const used = db.transaction((host: string, username: string, agent: string, storedKey: string) => {
    const row = st.find.get(host, username, storedKey);
    if (row?.slot !== 'new' || row.agent !== agent) return;
    st.dropRetired.run(host, username, agent);
    st.retireCurrent.run(host, username, agent);
    st.promote.run(host, username, agent, storedKey);
  });
  const retire = db.transaction((host: string, username: string, storedKey: string) => {
    // One 'retired' slot per agent: an older retired token of the same agent makes room.
    const row = st.find.get(host, username, storedKey);
    if (!row) return;
    st.dropOtherRetired.run(host, username, row.agent, storedKey);
    st.retireOne.run(host, username, storedKey);
  });
  return {
    async issue(token, maxAgents) { issue.immediate(token, maxAgents); },
    async find(host, username, storedKey) {
      const row = st.find.get(host, username, storedKey);
      return row && fromRow(row);
    },
    async used(host, username, agent, storedKey) { used.immediate(host, username, agent, storedKey); },
    async retire(host, username, storedKey) { retire.immediate(host, username, storedKey); },
    async revoke(host, username) { st.revoke.run(host, username); },
    async expire(now) { return st.expire.run(now).changes; },
  };
}
