/** The archive's batch writer and retention sweep (features/mam): batching, ordering, failures, bounds. */
import t from 'tap';
import { BATCH_MS, createArchiveWriter, MAX_BATCH, MAX_COMMIT, RETRY_FIRST_MS } from '../../src/xmpp/features/mam/writer.js';
import { ArchivePack, RECIPIENT, unpack, type ArchiveRecord } from '../../src/storage/ports/archive-pack.js';
import { createRetention, SWEEP_BATCH } from '../../src/xmpp/features/mam/retention.js';
import { createMemoryStorage, deriveStoredCredentials, type ArchiveEntry } from '../../src/storage/index.js';

const entry = (i: number, username = 'alice', at = i): ArchiveEntry => ({ host: 'localhost', username, id: `m${i}`, with: 'bob@localhost', at, stanza: '<message/>' });
/** Message i to alice, kept in her archive only: one entry (m{i}) for a store of entries. */
const record = (i: number): ArchiveRecord => ({ key: i, id: `m${i}`, at: i, sender: 'bob@localhost', receiver: 'alice@localhost', sides: RECIPIENT, stanza: '<message/>' });
const packedBytes = (r: ArchiveRecord): number => new ArchivePack().add(r);
const BIG = 1 << 30;
const silentLog = { warn: () => undefined, error: () => undefined, info: () => undefined, debug: () => undefined } as never;

t.test('what one turn writes is committed in one append, in order; each promise settles after it', async (t) => {
  const calls: string[][] = [];
  const writer = createArchiveWriter({ append: async (entries) => { calls.push(entries.map((e) => e.id)); } }, BIG);
  const a = writer.write(record(1));
  writer.write(record(2));
  const b = writer.write(record(3));
  t.equal(writer.pending, 3);
  t.same(calls, [], 'nothing is written in the same turn');
  await Promise.all([a, b]);
  t.same(calls, [['m1', 'm2', 'm3']]);
  t.equal(writer.pending, 0);
});

t.test('a burst is closed in batches of MAX_BATCH; those waiting for the store go in one commit (at most MAX_COMMIT), one commit at a time', async (t) => {
  const calls: number[] = [];
  let running = 0;
  const writer = createArchiveWriter({
    append: async (entries) => {
      t.equal(running++, 0, 'one commit at a time');
      await new Promise((resolve) => setTimeout(resolve, 5));
      calls.push(entries.length);
      running--;
    },
  }, BIG);
  // The first batch goes to the store at once; the others wait for it, then go together up to MAX_COMMIT.
  const n = MAX_BATCH + MAX_COMMIT + MAX_BATCH + 1;
  const all = Array.from({ length: n }, (_, i) => writer.write(record(i)));
  await writer.flush();
  t.same(calls, [MAX_BATCH, MAX_COMMIT, MAX_BATCH + 1]);
  await Promise.all(all);
  t.equal(writer.pending, 0);
});

// Without retries (retryForMs 0): what a failure rejects.
const NO_RETRY = { retryForMs: 0 };

t.test('a failed merged commit rejects each of its batches; later ones are written', async (t) => {
  let calls = 0;
  const writer = createArchiveWriter({
    append: async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (calls === 2) throw new Error('disk full');
    },
  }, BIG, NO_RETRY);
  const first = Array.from({ length: MAX_BATCH }, (_, i) => writer.write(record(i)));
  const merged = Array.from({ length: 2 * MAX_BATCH }, (_, i) => writer.write(record(MAX_BATCH + i)));
  await Promise.all(first);
  for (const p of [merged[0], merged[MAX_BATCH]]) await t.rejects(p!, /disk full/);
  await t.resolves(writer.write(record(1000000)));
  t.equal(calls, 3);
  t.equal(writer.pending, 0);
});

t.test('a failed commit rejects only its own batch; the next one is written', async (t) => {
  let fail = true;
  const writer = createArchiveWriter({ append: async () => { if (fail) { fail = false; throw new Error('disk full'); } } }, BIG, NO_RETRY);
  const first = writer.write(record(1));
  await t.rejects(first, /disk full/);
  await t.resolves(writer.write(record(2)));
});

t.test('a failed commit is tried again, backing off, the later batches waiting behind it in order; nothing is lost', async (t) => {
  const tries: string[][] = [];
  const retries: number[] = [];
  let failures = 3;
  const writer = createArchiveWriter({
    append: async (entries) => {
      tries.push(entries.map((e) => e.id));
      if (failures-- > 0) throw new Error('connection lost');
    },
  }, BIG, { onRetry: (_err, delayMs) => retries.push(delayMs) });
  const first = writer.write(record(1));
  await new Promise((resolve) => setTimeout(resolve, BATCH_MS + 10)); // past BATCH_MS: the first batch is committing
  const second = writer.write(record(2));
  await t.resolves(first, 'the first batch is committed once the store works again');
  await t.resolves(second);
  t.same(retries, [RETRY_FIRST_MS, 2 * RETRY_FIRST_MS, 4 * RETRY_FIRST_MS], 'each failure waits twice as long as the one before');
  t.same(tries, [['m1'], ['m1'], ['m1'], ['m1'], ['m2']], 'the same records again, then the batch behind them');
  t.equal(writer.pending, 0);
});

t.test('a store failing longer than retryForMs: the batch fails; later commits fail at their first failure until one succeeds', async (t) => {
  let clock = 0;
  let broken = true;
  let calls = 0;
  const retries: number[] = [];
  const writer = createArchiveWriter({
    append: async () => {
      calls++;
      clock += 400; // each failing attempt takes the store 400 ms (a connect timing out)
      if (broken) throw new Error('database down');
    },
  }, BIG, { retryForMs: 1000, now: () => clock, onRetry: (_err, delayMs) => retries.push(delayMs) });
  await t.rejects(writer.write(record(1)), /database down/, 'given up once the store has failed for retryForMs');
  // Failing since the first failure (at 400 ms): tried at 800 and 1,200, the last wait cut to what is left, given up at 1,600.
  t.equal(calls, 4, 'tried until the store had failed for retryForMs');
  t.same(retries, [RETRY_FIRST_MS, 2 * RETRY_FIRST_MS, 200]);
  await t.rejects(writer.write(record(2)), /database down/, 'the next commit: one try, no waiting');
  t.equal(calls, 5);
  broken = false;
  await t.resolves(writer.write(record(3)));
  broken = true;
  calls = 0;
  await t.rejects(writer.write(record(4)), /database down/);
  t.equal(calls, 4, 'after a success a failing store is tried again for retryForMs');
});

t.test('a packed store that fails is given the same chunks again: the retry commits the same records', async (t) => {
  const committed: string[] = [];
  const seen: Array<readonly Uint8Array[]> = [];
  let fail = true;
  const writer = createArchiveWriter({
    append: async () => { throw new Error('not used'); },
    appendPacked: async (views) => {
      seen.push(views);
      if (fail) {
        fail = false;
        throw new Error('busy');
      }
      for (const r of unpack(views)) committed.push(r.id);
    },
  }, BIG);
  await t.resolves(Promise.all([writer.write(record(1)), writer.write(record(2))]));
  t.same(committed, ['m1', 'm2']);
  t.equal(seen.length, 2);
  t.ok(seen[1]!.every((v, i) => v === seen[0]![i]), 'the same chunks, which the caller kept');
});

t.test('past maxBytes, room() holds the caller until commits bring the queue under half; nothing queued is refused', async (t) => {
  const release: Array<() => void> = [];
  const committed: string[] = [];
  const writer = createArchiveWriter({
    append: async (entries) => {
      await new Promise<void>((resolve) => release.push(resolve));
      committed.push(...entries.map((e) => e.id));
    },
  }, 4 * packedBytes(record(0)));
  t.equal(writer.room(), undefined, 'an empty queue has room');
  const writes = [1, 2, 3].map((i) => writer.write(record(i)));
  t.equal(writer.room(), undefined, 'three of four: room still');
  writes.push(writer.write(record(4)));
  t.equal(writer.pendingBytes, 4 * packedBytes(record(0)));
  const room = writer.room();
  t.ok(room, 'full: the caller is to wait');
  let open = false;
  void room!.then(() => { open = true; });
  // Written anyway (a caller that did not wait): queued, never refused.
  writes.push(writer.write(record(5)));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(release.length, 1, 'the full batch went to the store at once, without waiting out BATCH_MS');
  t.notOk(open, 'no room while the store has not committed');
  release.shift()!();
  await writes[0];
  t.equal(writer.pendingBytes, packedBytes(record(5)), 'the first four committed; the fifth is queued');
  await new Promise((resolve) => setImmediate(resolve));
  t.ok(open, 'under half of maxBytes: the waiting caller goes on');
  const flushed = writer.flush();
  await new Promise((resolve) => setImmediate(resolve));
  release.shift()!();
  await flushed;
  t.same(committed, ['m1', 'm2', 'm3', 'm4', 'm5'], 'every entry committed, in order');
  await Promise.all(writes);
});

t.test('the sweep expires by age and trims the accounts written to, in bounded statements', async (t) => {
  let now = 100 * 86_400_000;
  const storage = createMemoryStorage();
  for (const u of ['alice', 'bob']) await storage.users.create('localhost', u, await deriveStoredCredentials('pw', 4096));
  const day = 86_400_000;
  // alice: 3 old messages (5 days) and SWEEP_BATCH + 10 new ones; bob: 5 new ones.
  await storage.archive.append([0, 1, 2].map((i) => entry(i, 'alice', now - 5 * day)));
  await storage.archive.append(Array.from({ length: SWEEP_BATCH + 10 }, (_, i) => entry(100 + i, 'alice', now - 1000)));
  await storage.archive.append([0, 1, 2, 3, 4].map((i) => entry(i, 'bob', now - 1000)));
  const retention = createRetention(storage.archive, { retentionDays: 2, maxMessagesPerUser: 4, sweepIntervalSeconds: 3600 }, silentLog, () => now);
  t.teardown(() => retention.dispose());
  retention.touched('alice@localhost');
  const first = await retention.sweep();
  t.equal(first, 3 + SWEEP_BATCH, 'the old three, then one statement of trimming for alice');
  const count = async (u: string) => ((await storage.archive.query('localhost', u, { limit: 2000, direction: 'forward' })) as { messages: unknown[] }).messages.length;
  t.equal(await count('alice'), 10, 'alice is not done yet: she stays on the list');
  t.equal(await count('bob'), 5, 'bob got nothing new since the last sweep: not trimmed');
  t.equal(await retention.sweep(), 6);
  t.equal(await count('alice'), 4);
  now += 3 * day;
  t.equal(await retention.sweep(), 9, 'everything is older than two days now');
});

t.test('close() (shutdown) commits what is queued without retrying a failing store: the drain ends', async (t) => {
  let calls = 0;
  const retries: number[] = [];
  const writer = createArchiveWriter({ append: async () => { calls++; throw new Error('database down'); } }, BIG, { onRetry: (_err, ms) => retries.push(ms) });
  const queued = writer.write(record(1));
  await writer.close();
  await t.rejects(queued, /database down/, 'given up at once');
  t.equal(calls, 1, 'one try');
  t.same(retries, [], 'no retry');
});

t.test('the chunks of a commit go back to the pack pool only once the store is done with them', async (t) => {
  const seen: Array<readonly Uint8Array[]> = [];
  const copies: Buffer[][] = [];
  let release!: () => void;
  let held = new Promise<void>((resolve) => { release = resolve; });
  const writer = createArchiveWriter({
    append: async () => undefined,
    appendPacked: async (views) => {
      seen.push(views);
      copies.push(views.map((v) => Buffer.from(v)));
      await held;
    },
  }, BIG);
  const first = Array.from({ length: 500 }, (_, i) => writer.write(record(i)));
  // The first commit is under way (held): a second batch is packed meanwhile.
  while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const second = Array.from({ length: 500 }, (_, i) => writer.write(record(1000 + i)));
  const inFirst = new Set(seen[0]!.map((v) => v.buffer));
  t.same(seen[0]!.map((v) => Buffer.from(v)), copies[0], 'the first commit\'s bytes are untouched while it runs');
  release();
  await Promise.all([...first, ...second]);
  t.equal(seen.length, 2);
  t.notOk(seen[1]!.some((v) => inFirst.has(v.buffer)), 'the batch packed during the first commit is in chunks of its own');
  held = Promise.resolve();
  const third = Array.from({ length: 500 }, (_, i) => writer.write(record(2000 + i)));
  await Promise.all(third);
  t.ok(seen[2]!.some((v) => inFirst.has(v.buffer) || seen[1]!.some((w) => w.buffer === v.buffer)), 'a batch packed after the commits reuses their chunks');
  t.same([...unpack(seen[2]!)].map((r) => r.id), Array.from({ length: 500 }, (_, i) => `m${2000 + i}`));
});
