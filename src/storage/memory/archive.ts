/** In-memory ArchiveStore with the same observable behaviour as the SQL ones. */
import { COUNT_CAP, DEFAULT_PREFS, type ArchivedMessage, type ArchivePage, type ArchivePrefs, type ArchiveQuery, type ArchiveStore } from '../ports/archive.js';
import { keyOf, type Purgeable } from './key.js';

interface Row extends ArchivedMessage { readonly seq: number }
interface Archive { rows: Row[]; readonly byId: Map<string, Row>; prefs?: ArchivePrefs }

/** `exists` tells whether an account exists (the SQL backends' foreign key). */
export function createMemoryArchiveStore(exists: (host: string, username: string) => Promise<boolean>): ArchiveStore & Purgeable {
  const archives = new Map<string, Archive>();
  let seq = 0;
  // The newest appended row's stamp (newestAt): what the SQL stores read from their last row.
  let newest: number | undefined;
  const archiveOf = (host: string, username: string): Archive => {
    const key = keyOf(host, username);
    let a = archives.get(key);
    if (!a) archives.set(key, a = { rows: [], byId: new Map() });
    return a;
  };
  const remove = (a: Archive, doomed: (r: Row) => boolean, limit: number): number => {
    let n = 0;
    a.rows = a.rows.filter((r) => {
      if (n >= limit || !doomed(r)) return true;
      a.byId.delete(r.id);
      n++;
      return false;
    });
    return n;
  };
  return {
    async append(entries) {
      const known = new Map<string, boolean>();
      for (const e of entries) {
        const key = keyOf(e.host, e.username);
        if (!known.has(key)) known.set(key, await exists(e.host, e.username));
      }
      for (const e of entries) {
        if (!known.get(keyOf(e.host, e.username))) continue;
        const a = archiveOf(e.host, e.username);
        // An entry already there (a batch appended again) is left as it is, as the SQL stores do.
        if (a.byId.has(e.id)) continue;
        const row: Row = { id: e.id, with: e.with, at: e.at, stanza: e.stanza, seq: ++seq };
        newest = e.at;
        a.rows.push(row);
        a.byId.set(row.id, row);
      }
    },
    async query(host, username, q) {
      return page(archives.get(keyOf(host, username)) ?? { rows: [], byId: new Map() }, q);
    },
    async newestAt() {
      return newest;
    },
    async bounds(host, username) {
      const rows = archives.get(keyOf(host, username))?.rows ?? [];
      const strip = (r: Row | undefined) => (r ? { id: r.id, with: r.with, at: r.at } : undefined);
      return { first: strip(rows[0]), last: strip(rows[rows.length - 1]) };
    },
    async getPrefs(host, username) {
      return archives.get(keyOf(host, username))?.prefs ?? DEFAULT_PREFS;
    },
    async setPrefs(host, username, prefs) {
      if (await exists(host, username)) archiveOf(host, username).prefs = prefs;
    },
    async expire(before, limit) {
      const oldest = [...archives.values()].flatMap((a) => a.rows).sort((x, y) => x.seq - y.seq).slice(0, limit);
      const doomed = new Set(oldest.filter((r) => r.at < before));
      let n = 0;
      for (const a of archives.values()) n += remove(a, (r) => doomed.has(r), Infinity);
      return n;
    },
    async trim(host, username, keep, limit) {
      const a = archives.get(keyOf(host, username));
      if (!a || a.rows.length <= keep) return 0;
      const cut = a.rows[a.rows.length - keep - 1]!.seq;
      return remove(a, (r) => r.seq <= cut, limit);
    },
    async remove(host, username, ids) {
      const a = archives.get(keyOf(host, username));
      if (!a) return 0;
      const doomed = new Set(ids);
      return remove(a, (r) => doomed.has(r.id), Infinity);
    },
    purge(host, username) {
      archives.delete(keyOf(host, username));
    },
  };
}

function page(a: Archive, q: ArchiveQuery): ArchivePage | 'item-not-found' {
  const seqOf = (id: string | undefined, none: number): number | undefined => (id === undefined ? none : a.byId.get(id)?.seq);
  const lo = seqOf(q.afterId, 0);
  const hi = seqOf(q.beforeId, Infinity);
  const pageLo = seqOf(q.page?.after, 0);
  const pageHi = seqOf(q.page?.before, Infinity);
  if (lo === undefined || hi === undefined || pageLo === undefined || pageHi === undefined) return 'item-not-found';
  if (q.ids?.some((id) => !a.byId.has(id))) return 'item-not-found';
  const ids = q.ids ? new Set(q.ids) : undefined;
  const set = a.rows.filter((r) => r.seq > lo && r.seq < hi && (q.with === undefined || r.with === q.with)
    && (q.start === undefined || r.at >= q.start) && (q.end === undefined || r.at <= q.end) && (!ids || ids.has(r.id)));
  const inPage = set.filter((r) => r.seq > pageLo && r.seq < pageHi);
  const messages = q.direction === 'forward' ? inPage.slice(0, q.limit) : inPage.slice(Math.max(0, inPage.length - q.limit));
  const strip = ({ seq: _seq, ...m }: Row): ArchivedMessage => m;
  return { messages: messages.map(strip), complete: inPage.length <= q.limit, count: set.length <= COUNT_CAP ? set.length : undefined };
}
