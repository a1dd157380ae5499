/**
 * /readyz says whether this node should get new sessions (issue 17 item 7):
 * not while the store cannot answer a trivial query, nor after the event loop
 * stalled past READY_MAX_EVENT_LOOP_DELAY; and an SQLite file that cannot be
 * opened stops the start naming the path and the likely cause.
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createMemoryStorage, openSqliteStorage, type Storage } from '../../src/storage/index.js';
import { createReadiness } from '../../src/http/readiness.js';
import { withServer } from '../helpers/server.js';
import { ensureBuilt, MAIN } from '../helpers/built.js';


async function readyz(base: string): Promise<{ status: number; body: { status: string; reason?: string } }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: await res.json() as { status: string; reason?: string } };
}

/** Keeps the event loop busy for `ms`, as a long synchronous job would. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) { /* busy */ }
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'xwg-ready-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('a server whose SQLite store answers is ready; once the store cannot answer it is not', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({ write(chunk: Buffer, _e, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
  const storage = openSqliteStorage(tempDir(t));
  const server = await withServer(t, {}, storage, { logger: { level: 'info', stream: sink } });
  t.same(await readyz(server.httpUrl), { status: 200, body: { status: 'ready' } });
  await storage.close(); // what a vanished or broken database looks like to SELECT 1
  t.same(await readyz(server.httpUrl), { status: 503, body: { status: 'not ready', reason: 'storage' } });
  t.equal(lines.filter((l) => l.event === 'not-ready' && l.reason === 'storage').length, 1, 'one not-ready line');
  await readyz(server.httpUrl);
  t.equal(lines.filter((l) => l.event === 'not-ready').length, 1, 'not repeated while it stays so');
});

t.test('a store that does not answer in time counts as down', async (t) => {
  const hanging: Storage = { ...createMemoryStorage(), ping: () => new Promise<void>(() => undefined) };
  const server = await withServer(t, {}, hanging);
  t.same(await readyz(server.httpUrl), { status: 503, body: { status: 'not ready', reason: 'storage' } });
});

t.test('an event-loop stall past READY_MAX_EVENT_LOOP_DELAY fails the next check, and only that one', async (t) => {
  const server = await withServer(t, { READY_MAX_EVENT_LOOP_DELAY: '250' });
  await readyz(server.httpUrl); // opens a fresh window
  stall(750);
  t.same(await readyz(server.httpUrl), { status: 503, body: { status: 'not ready', reason: 'event-loop-lag' } });
  t.equal((await readyz(server.httpUrl)).status, 200, 'ready again once the loop runs freely');
});

t.test('READY_MAX_EVENT_LOOP_DELAY=0 does not look at the event loop', async (t) => {
  const server = await withServer(t, { READY_MAX_EVENT_LOOP_DELAY: '0' });
  stall(300);
  t.equal((await readyz(server.httpUrl)).status, 200);
});

t.test('probes arriving together share one query', async (t) => {
  let pings = 0;
  let release = (): void => undefined;
  const readiness = createReadiness({
    // The first query waits for release(); later ones answer at once.
    ping: () => { pings++; return pings > 1 ? Promise.resolve() : new Promise<void>((resolve) => { release = resolve; }); },
    maxEventLoopDelayMs: 0, pingTimeoutMs: 60_000,
  });
  const answers = Promise.all([readiness.check(), readiness.check(), readiness.check()]);
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(pings, 1);
  release();
  t.same(await answers, [undefined, undefined, undefined]);
  await readiness.check();
  t.equal(pings, 2, 'a later probe queries again');
  readiness.stop();
});

t.test('a stall one check reported is not reported again by the next', async (t) => {
  // The check right after a stall, before the sampling interval has run (as a probe read in the same
  // I/O phase as the stall's end, or a worker asked over IPC: workers.test.ts), measures the stall still
  // going on; the interval, when it ran, measured it again, so the next check was refused too.
  const readiness = createReadiness({ ping: () => Promise.resolve(), maxEventLoopDelayMs: 250, pingTimeoutMs: 60_000 });
  t.teardown(() => readiness.stop());
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.equal(await readiness.check(), undefined, 'a fresh window');
  stall(750);
  t.equal(await readiness.check(), 'event-loop-lag', 'the stall is reported');
  await new Promise((resolve) => setTimeout(resolve, 250));
  t.equal(await readiness.check(), undefined, 'and only once');
});

t.test('a DATA_DIR the process may not write stops the start naming the path and the cause', async (t) => {
  ensureBuilt(MAIN);
  const dir = tempDir(t);
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o755 });
  // As the image does on a root-owned volume: as root, run the server as another user; otherwise take our own write bit.
  const asRoot = process.getuid?.() === 0;
  if (asRoot) chmodSync(dir, 0o755);
  else chmodSync(data, 0o500);
  t.teardown(() => chmodSync(data, 0o700));
  // env -u: tap's process-info hook (NODE_OPTIONS) would itself fail to write as that user.
  const r = spawnSync('env', ['-u', 'NODE_OPTIONS', process.execPath, MAIN], {
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', DATA_DIR: data, LOG_LEVEL: 'silent' },
    encoding: 'utf8', timeout: 30_000, ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  t.equal(r.status, 1, 'exit 1');
  const uid = asRoot ? 65534 : process.getuid!();
  t.match(r.stderr, `cannot open the SQLite database ${join(data, 'gateway.sqlite')}`);
  t.match(r.stderr, `Likely cause: ${data} is owned by uid ${asRoot ? 0 : uid}`);
  t.match(r.stderr, `is not writable by this process (uid ${uid}`);
  t.match(r.stderr, /fsGroup/);
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
});
