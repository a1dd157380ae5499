/**
 * The SQLite archive's runs (migration 17, storage/sqlite/archive-runs.ts): an account's archive is
 * the runs of its copies, and they must say exactly what the rows hold, whatever order entries come
 * in and whatever remove, trim, expire and an account's deletion take out. Checked against a model
 * of the archives, and table by table.
 */
import t, { type Test } from 'tap';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStorage, DATABASE_FILE, type ArchiveEntry, type Storage } from '../../src/storage/index.js';
import { RUN_MAX } from '../../src/storage/sqlite/archive-runs.js';
import { archiveAppender } from '../../src/storage/sqlite/archive-rows.js';
import { archiveIdFor, KEYS_PER_MS } from '../../src/storage/ports/archive-ids.js';
import { creds, sqliteBefore } from './backends.js';
import { COUNT_CAP } from '../../src/storage/ports/archive.js';

const H = 'example.com';
const T0 = 1_800_000_000_000;

/** Every run against the rows, and every row's sides against the runs; the problems found. */
function runProblems(db: Database.Database): string[] {
  const problems: string[] = [];
  const runs = db.prepare('SELECT owner, peer, last, first, seqs FROM archive_runs ORDER BY owner, peer, last').all() as Array<{ owner: number; peer: number; last: number; first: number; seqs: string }>;
  const rows = new Map((db.prepare('SELECT key, sender, receiver, sides FROM archive_messages').all() as Array<{ key: number; sender: number; receiver: number; sides: number }>).map((r) => [r.key, r]));
  const seen = new Map<string, number>();
  let previous: { owner: number; peer: number; last: number } | undefined;
  for (const run of runs) {
    const seqs = (JSON.parse(run.seqs) as number[]).map((d) => run.first + d);
    if (seqs.length === 0 || seqs.length > RUN_MAX) problems.push(`run of ${seqs.length}`);
    if (seqs[0] !== run.first || seqs[seqs.length - 1] !== run.last) problems.push(`run ${run.owner}/${run.peer} bounds ${run.first}..${run.last} against ${seqs[0]}..${seqs.at(-1)}`);
    if (seqs.some((s, i) => i > 0 && s <= seqs[i - 1]!)) problems.push(`run ${run.owner}/${run.peer} not ascending`);
    if (previous && previous.owner === run.owner && previous.peer === run.peer && run.first <= previous.last) problems.push(`runs of ${run.owner}/${run.peer} overlap`);
    previous = run;
    for (const seq of seqs) {
      const r = rows.get(Math.floor(seq / 2));
      const received = seq % 2 === 0;
      if (!r) { problems.push(`seq ${seq} without a row`); continue; }
      if (received ? r.receiver !== run.owner || !(r.sides & 1) : r.sender !== run.owner || !(r.sides & 2)) problems.push(`seq ${seq} not ${run.owner}'s copy`);
      if (run.peer !== 0 && run.peer !== (received ? r.sender : r.receiver)) problems.push(`seq ${seq} not with ${run.peer}`);
      const k = `${run.peer === 0 ? 'all' : 'peer'} ${seq}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
    }
  }
  for (const r of rows.values()) {
    if (r.sides === 0) problems.push(`row ${r.key} with no side`);
    for (const seq of [r.sides & 1 ? 2 * r.key : undefined, r.sides & 2 ? 2 * r.key + 1 : undefined]) {
      if (seq === undefined) continue;
      for (const kind of ['all', 'peer']) if (seen.get(`${kind} ${seq}`) !== 1) problems.push(`copy ${seq} in ${seen.get(`${kind} ${seq}`) ?? 0} ${kind} runs`);
    }
  }
  return problems;
}

/** A model of the archives: per account, its copies by seq; a message's first stored stanza and id win (one row per key). */
class Model {
  readonly copies = new Map<string, Map<number, { id: string; with: string; at: number; stanza: string }>>();
  readonly rows = new Map<number, { id: string; at: number; stanza: string }>();
  readonly accounts = new Set<string>();
  append(entries: readonly ArchiveEntry[]): void {
    for (const e of entries) {
      if (!this.accounts.has(e.username)) continue;
      const key = Math.floor(e.seq! / 2);
      const row = this.rows.get(key) ?? { id: e.id, at: e.at, stanza: e.stanza };
      this.rows.set(key, row);
      const mine = this.of(e.username);
      if (!mine.has(e.seq!)) mine.set(e.seq!, { id: row.id, with: e.with, at: row.at, stanza: row.stanza });
    }
  }
  of(user: string) {
    let m = this.copies.get(user);
    if (!m) this.copies.set(user, m = new Map());
    return m;
  }
  list(user: string, withJid?: string) {
    return [...this.of(user)].sort((a, b) => a[0] - b[0]).filter(([, c]) => withJid === undefined || c.with === withJid).map(([seq, c]) => ({ seq, ...c }));
  }
  drop(seq: number, user: string): void {
    this.of(user).delete(seq);
    const key = Math.floor(seq / 2);
    if (![...this.copies.values()].some((m) => m.has(2 * key) || m.has(2 * key + 1))) this.rows.delete(key);
  }
}

/** The messages of a query; without a limit, the whole result, page after page (forward). */
async function listed(storage: Storage, user: string, q: Partial<Parameters<Storage['archive']['query']>[2]> = {}) {
  const out: Array<{ id: string; with: string; at: number; stanza: string }> = [];
  for (let after: string | undefined; ;) {
    const page = await storage.archive.query(H, user, { limit: 500, direction: 'forward', ...(after === undefined ? {} : { page: { after } }), ...q });
    if (page === 'item-not-found') return page;
    out.push(...page.messages.map((m) => ({ id: m.id, with: m.with, at: m.at, stanza: m.stanza })));
    if (q.limit !== undefined || page.complete || page.messages.length === 0) return out;
    after = page.messages.at(-1)!.id;
  }
}

t.test('runs say what the rows hold after appends in any order, retries, remove, trim, expire and deletions', async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  const users = ['ann', 'ben', 'cat', 'dan'];
  const model = new Model();
  for (const u of users) { await storage.users.create(H, u, creds(u)); model.accounts.add(u); }
  const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
  t.teardown(() => db.close());
  // A fixed pseudo-random sequence: the same run every time.
  let state = 12345;
  const rnd = (n: number) => { state = (state * 1103515245 + 12345) % 2147483648; return Math.floor(state / 65536) % n; };
  const message = (k: number): ArchiveEntry[] => {
    const from = [...users, 'nobody'][rnd(5)]!;
    const to = users[rnd(4)]!;
    const at = T0 + k;
    const key = at * KEYS_PER_MS + rnd(3);
    const id = archiveIdFor(key);
    const stanza = `<message xmlns="jabber:client"><body>${k}</body></message>`;
    const out: ArchiveEntry[] = [{ host: H, username: to, id, seq: 2 * key, with: `${from}@${H}`, at, stanza }];
    if (from !== to) out.push({ host: H, username: from, id, seq: 2 * key + 1, with: `${to}@${H}`, at, stanza });
    return out;
  };
  const batches: ArchiveEntry[][] = [];
  const held: ArchiveEntry[][] = [];
  let k = 0;
  const ops: string[] = [];
  for (let step = 0; step < 60; step++) {
    const op = rnd(10);
    let what: string;
    if (op < 5) {
      // A batch: usually new messages in order; sometimes a later one first (held back, appended out of order), or one again.
      const batch = Array.from({ length: 1 + rnd(3 * RUN_MAX) }, () => message((k += 1 + rnd(5)))).flat();
      if (rnd(4) === 0) { held.push(batch); what = 'held back'; } else {
        const again = rnd(3) === 0 && batches.length > 0 ? batches[rnd(batches.length)]! : [];
        const late = rnd(2) === 0 ? held.splice(0, 1).flat() : [];
        const entries = [...late, ...batch, ...again];
        await storage.archive.append(entries);
        model.append(entries);
        batches.push(batch);
        what = `append ${batch.length}${late.length ? `, ${late.length} late` : ''}${again.length ? `, ${again.length} again` : ''}`;
      }
    } else if (op === 5) {
      const u = users[rnd(4)]!;
      const copies = model.list(u);
      const chosen = copies.filter(() => rnd(4) === 0).map((c) => c.id);
      t.equal(await storage.archive.remove(H, u, [...chosen, 'not-an-id']), chosen.length, `remove ${chosen.length} of ${u}'s`);
      for (const c of copies) if (chosen.includes(c.id)) model.drop(c.seq, u);
      what = `remove ${chosen.length}`;
    } else if (op === 6) {
      const u = users[rnd(4)]!;
      const copies = model.list(u);
      const keep = rnd(copies.length + 2);
      const limit = 1 + rnd(2 * RUN_MAX);
      const n = Math.max(0, Math.min(limit, copies.length - keep));
      t.equal(await storage.archive.trim(H, u, keep, limit), n, `trim ${u} to ${keep} (at most ${limit})`);
      for (const c of copies.slice(0, n)) model.drop(c.seq, u);
      what = `trim ${n}`;
    } else if (op === 7) {
      const keys = [...model.rows.keys()].sort((a, b) => a - b);
      const limit = 1 + rnd(RUN_MAX);
      const before = T0 + rnd(k + 1);
      const gone = keys.slice(0, limit).filter((key) => model.rows.get(key)!.at < before);
      t.equal(await storage.archive.expire(before, limit), gone.length, `expire before ${before - T0} (at most ${limit})`);
      for (const key of gone) for (const u of users) { model.drop(2 * key, u); model.drop(2 * key + 1, u); }
      what = `expire ${gone.length}`;
    } else if (op === 8) {
      const u = users[rnd(4)]!;
      await storage.users.delete(H, u);
      for (const c of model.list(u)) model.drop(c.seq, u);
      await storage.users.create(H, u, creds(u));
      what = `delete ${u}`;
    } else {
      what = 'nothing';
    }
    ops.push(what);
    const problems = runProblems(db);
    if (problems.length > 0) { t.fail(`step ${step} (${what}): ${problems.slice(0, 5).join('; ')}`); return; }
    for (const u of users) {
      const want = model.list(u).map(({ seq: _s, ...c }) => c);
      const got = await listed(storage, u);
      if (JSON.stringify(got) !== JSON.stringify(want)) { t.same(got, want, `step ${step} (${what}): ${u}'s archive`); return; }
      const peer = `${users[rnd(4)]!}@${H}`;
      const conversation = model.list(u, peer);
      t.same(await listed(storage, u, { with: peer }), conversation.map(({ seq: _s, ...c }) => c), `step ${step}: ${u} with ${peer}`);
      // The last page backward, after and before an id, the count.
      const page = await storage.archive.query(H, u, { limit: 7, direction: 'backward', with: rnd(2) === 0 ? peer : undefined });
      const set = page === 'item-not-found' ? [] : page.messages;
      const whole = set.length > 0 && set[0]!.with && page !== 'item-not-found' ? page : undefined;
      if (whole) t.ok(whole.messages.every((m, i) => i === 0 || m.id !== whole.messages[i - 1]!.id), 'no copy twice');
      if (want.length > 2) {
        const mid = want[Math.floor(want.length / 2)]!;
        t.same(await listed(storage, u, { page: { after: mid.id }, limit: 5 }), want.slice(want.indexOf(mid) + 1).slice(0, 5), `step ${step}: after an id`);
        t.same(await listed(storage, u, { page: { before: mid.id }, limit: 5, direction: 'backward' }), want.slice(0, want.indexOf(mid)).slice(-5), `step ${step}: before an id`);
      }
      const counted = await storage.archive.query(H, u, { limit: 1, direction: 'forward' });
      t.equal(counted === 'item-not-found' ? counted : counted.count, want.length <= COUNT_CAP ? want.length : undefined, `step ${step}: count (none above the cap)`);
    }
  }
  t.ok(k > 1000, `a long run of messages (${k})`);
  for (const kind of ['late', 'again', 'remove', 'trim', 'expire', 'delete']) t.ok(ops.some((o) => o.includes(kind) && !/ 0$/.test(o)), `the run did ${kind}: ${ops.join(", ")}`);
});

/** Closes the file as the older version left it, opens the storage on it (migrating it), and a read-only look at it. */
function migrated(t: Test, old: Database.Database, dir: string, file: string): { storage: Storage; db: Database.Database } {
  old.close();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  const db = new Database(file, { readonly: true });
  t.teardown(() => db.close());
  return { storage, db };
}

t.test('migration 17 builds the runs from the rows written before it, and the account deletion reads them', async (t) => {
  const { dir, file, old } = sqliteBefore(t, 17, ['ann', 'ben', 'cat']);
  const jid = old.prepare('INSERT INTO archive_jids (jid) VALUES (?)');
  const [ann, ben, cat] = ['ann', 'ben', 'cat'].map((u) => Number(jid.run(`${u}@${H}`).lastInsertRowid));
  // As migration 11's writer left them: 2.5 runs' worth between ann and ben (both sides), then cat → ann (ann's copy only).
  const row = old.prepare('INSERT INTO archive_messages (key, id, at, sender, receiver, sides, stanza) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const made: Array<{ key: number; id: string; from: string; to: string }> = [];
  for (let i = 0; i < 2.5 * RUN_MAX + 3; i++) {
    const at = T0 + i;
    const key = at * KEYS_PER_MS;
    const [from, to, s, r, sides] = i < 2.5 * RUN_MAX ? (i % 2 === 0 ? ['ann', 'ben', ann, ben, 3] : ['ben', 'ann', ben, ann, 3]) : ['cat', 'ann', cat, ann, 1];
    const id = archiveIdFor(key);
    made.push({ key, id, from: from as string, to: to as string });
    row.run(key, id, at, s, r, sides, `<message xmlns="jabber:client"><body>${i}</body></message>`);
  }
  const { storage, db } = migrated(t, old, dir, file);
  t.same(runProblems(db), [], 'the runs say what the rows hold');
  t.ok((db.prepare('SELECT COUNT(*) AS n FROM archive_runs WHERE owner = ? AND peer = 0').get(ann) as { n: number }).n >= 3, 'split at RUN_MAX');
  const ids = async (u: string, q = {}) => ((await listed(storage, u, q)) as Array<{ id: string }>).map((m) => m.id);
  t.same(await ids('ann'), made.map((m) => m.id), "ann's archive: every message, in order");
  t.same(await ids('ben'), made.filter((m) => m.from !== 'cat').map((m) => m.id));
  t.same(await ids('ann', { with: `cat@${H}` }), made.filter((m) => m.from === 'cat').map((m) => m.id), 'a conversation');
  t.same(await ids('cat'), [], "cat's side was never kept");

  // ann goes: her copies with them. The rows with ben stay for his side; cat's messages had only hers and go.
  await storage.users.delete(H, 'ann');
  t.same(runProblems(db), [], 'the runs still say what the rows hold');
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM archive_messages').get() as { n: number }).n, 2.5 * RUN_MAX, 'only the rows ben keeps are left');
  t.same(db.prepare('SELECT DISTINCT sides FROM archive_messages ORDER BY sides').all(), [{ sides: 1 }, { sides: 2 }], "ben's side of each");
  t.equal((db.prepare('SELECT COUNT(*) AS n FROM archive_runs WHERE owner = ?').get(ann) as { n: number }).n, 0, 'no run of hers');
  t.same(await ids('ben'), made.filter((m) => m.from !== 'cat').map((m) => m.id), "ben's archive as it was");
});

t.test("a writer that knows its newest seqs still merges with what another connection appended meanwhile", async (t) => {
  const dir = t.testdir();
  const storage = openSqliteStorage(dir);
  t.teardown(() => storage.close());
  for (const u of ['ann', 'ben']) await storage.users.create(H, u, creds(u));
  const entryAt = (i: number): ArchiveEntry => {
    const key = (T0 + i) * KEYS_PER_MS;
    return { host: H, username: 'ann', id: archiveIdFor(key), seq: 2 * key, with: `ben@${H}`, at: T0 + i, stanza: `<message><body>${i}</body></message>` };
  };
  // The server's writer thread appends 1; another connection (a tool) appends 3; the thread then 2 and 4 in one commit.
  await storage.archive.append([entryAt(1)]);
  const other = new Database(join(dir, DATABASE_FILE));
  t.teardown(() => other.close());
  other.pragma('busy_timeout = 5000');
  archiveAppender(other).entries([entryAt(3)]);
  await storage.archive.append([entryAt(2), entryAt(4)]);
  const db = new Database(join(dir, DATABASE_FILE), { readonly: true });
  t.teardown(() => db.close());
  t.same(runProblems(db), [], 'no two runs overlap');
  t.same(((await listed(storage, 'ann')) as Array<{ stanza: string }>).map((m) => m.stanza), [1, 2, 3, 4].map((i) => `<message><body>${i}</body></message>`), 'in order, each once');
});

t.test('migration 17 over pages of rows: every copy of every page in a run, the last page too', async (t) => {
  const { dir, file, old } = sqliteBefore(t, 17, ['ann', 'ben', 'cat']);
  for (const name of ['ann', 'ben', 'cat']) old.prepare('INSERT INTO archive_jids (jid) VALUES (?)').run(`${name}@${H}`);
  // Exactly two pages of the migration's 10,000 rows: messages between the three in turn, both sides kept.
  old.exec(`WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < 19999)
    INSERT INTO archive_messages (key, id, at, sender, receiver, sides, stanza)
    SELECT ${T0 * KEYS_PER_MS} + i, 'id' || i, ${T0} + i / ${KEYS_PER_MS}, 1 + i % 3, 1 + (i + 1) % 3, 3, '<message/>' FROM m`);
  const { storage, db } = migrated(t, old, dir, file);
  t.same(runProblems(db), [], 'every copy in one run of each kind, none overlapping');
  t.equal((db.prepare('SELECT SUM(json_array_length(seqs)) AS n FROM archive_runs').get() as { n: number }).n, 4 * 20_000, 'two copies of each message, each in two runs');
  const page = await storage.archive.query(H, 'ann', { limit: 3, direction: 'backward' });
  t.same(page === 'item-not-found' ? page : page.messages.map((m) => m.id), ['id19995', 'id19997', 'id19998'], "ann's newest (she is in two messages of three), from the last page of rows");
});
