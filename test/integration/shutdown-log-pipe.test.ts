/**
 * SIGTERM with the log reader gone: the real process (`node dist/main.js`) logs to a pipe whose
 * reader closes (`| head`, a log shipper that died), then gets SIGTERM. It must exit, with 0.
 *
 * Before the fix each logger had pino's default asynchronous stdout stream, which process.exit
 * flushes with a loop that retries a write to the closed pipe (EPIPE) for ever: when the shutdown's
 * last line was still queued behind the "shutting down" line, the process never exited (measured:
 * 2 runs in 6 hung). The race is the old code's; the scenario is run up to RUNS times and the first
 * run that does not exit fails the test.
 */
import t from 'tap';
import { closeSync, openSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { ensureBuilt, MAIN, spawnMain } from '../helpers/built.js';

const RUNS = 8;
/** Far more than a shutdown of an idle server takes (SHUTDOWN_TIMEOUT=2 bounds it); a hang never ends. */
const EXIT_WAIT_MS = 15_000;

t.setTimeout(RUNS * (EXIT_WAIT_MS + 10_000));
t.before(() => ensureBuilt(MAIN));

t.test('SIGTERM after the stdout reader closed: the process exits with 0', async (t) => {
  for (let run = 1; run <= RUNS; run++) {
    const dir = t.testdir();
    const started = spawnMain(t, dir, { SHUTDOWN_TIMEOUT: '2' });
    const { child } = started;
    const exited = started.exited.then((e) => e.code);
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (b: Buffer) => { out += b.toString(); if (out.includes('"event":"listening"')) resolve(); });
      void exited.then((code) => reject(new Error(`exited with ${code} before listening:\n${stderr}`)));
    });
    // The reader goes away: the next write to stdout gets EPIPE.
    child.stdout!.destroy();
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), EXIT_WAIT_MS).unref())]);
    t.equal(code, 0, `run ${run}: the process exited with 0 (${String(code)})`);
    if (code !== 0) {
      child.kill('SIGKILL');
      return;
    }
  }
});

t.test('stdout that fails every write (ENOSPC: /dev/full) neither stops the start nor the exit', async (t) => {
  // A log write that failed with anything but EPIPE was an 'error' event nobody handled: thrown from the
  // logging call it stopped the start (a stack trace); before the synchronous destination, the exit's flush
  // retried it for ever instead. The lines are lost; the server serves on, and SIGTERM ends it with 0.
  const dir = t.testdir();
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const { port } = s.address() as AddressInfo; s.close(() => resolve(port)); });
  });
  const full = openSync('/dev/full', 'w');
  t.teardown(() => closeSync(full));
  const started = spawnMain(t, dir, { PORT: String(port), SHUTDOWN_TIMEOUT: '2' }, full);
  const { child } = started;
  const exited = started.exited.then((e) => e.code);
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => { stderr += b.toString(); });
  let ready = false;
  for (let i = 0; i < 200 && !ready && child.exitCode === null; i++) {
    ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((r) => r.status === 200, () => false);
    if (!ready) await new Promise((r) => setTimeout(r, 50));
  }
  t.ok(ready, `the server became ready\n${stderr}`);
  child.kill('SIGTERM');
  const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), EXIT_WAIT_MS).unref())]);
  t.equal(code, 0, `SIGTERM exits with 0 (${String(code)})\n${stderr}`);
});
