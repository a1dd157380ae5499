/**
 * SIGTERM under a flood (issue 10): the real process (`node dist/main.js`)
 * with SQLite in a temp DATA_DIR, sessions whose XEP-0198 queues hold many
 * unacknowledged messages, and a short SHUTDOWN_TIMEOUT.
 *
 * The contract: the process exits within SHUTDOWN_TIMEOUT (plus the time a
 * process needs to start exiting). Every message the server accepted
 * (acknowledged to its sender with <a h/>) is then either in SQLite's
 * offline store, or counted in the log line of the timeout
 * (`offlineUnfinished`) as not written; `shutdown-complete` means all of
 * them are stored.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensureBuilt, MAIN } from '../helpers/built.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { deriveStoredCredentials, openSqliteStorage } from '../../src/storage/index.js';

const SM = 'urn:xmpp:sm:3';
const RECEIVERS = 4;
/** The exit itself (the last batch of writes, flushing logs) on a busy two-core machine. */
const EXIT_SLACK_MS = 1500;

t.setTimeout(180_000);
t.before(() => ensureBuilt(MAIN));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const address = s.address();
      s.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function addUsers(dataDir: string, names: string[]): Promise<void> {
  const storage = openSqliteStorage(dataDir);
  try {
    for (const n of names) await storage.users.create('localhost', n, await deriveStoredCredentials('pw', 4096));
  } finally {
    await storage.close();
  }
}

async function ready(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200) return;
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the gateway did not become ready');
}

async function smSession(url: string, user: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(url);
  await c.login(user, 'pw', resource);
  c.send(`<enable xmlns='${SM}' resume='true'/>`);
  await c.until((el) => el.local === 'enabled');
  return c;
}

/** What a SIGTERM left behind: how long the exit took, its code, its last log line, and the offline rows. */
interface Outcome { accepted: number; elapsed: number; code: number | null; end: Record<string, unknown> | undefined; stored: number; log: string }

/** Starts the gateway, floods `messages` into the unacknowledged XEP-0198 queues of RECEIVERS sessions, sends SIGTERM. */
async function floodThenTerm(t: Test, messages: number, shutdownTimeout: number): Promise<Outcome> {
  const dir = t.testdir();
  const dataDir = join(dir, 'data');
  await addUsers(dataDir, ['alice', 'bob']);
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, XMPP_DOMAIN: 'localhost', LOG_LEVEL: 'info',
      ALLOW_INSECURE_PLAIN: 'true', SCRAM_ITERATIONS: '4096', SHUTDOWN_TIMEOUT: String(shutdownTimeout),
      SM_BUFFER_MAX: 'infinity', MAX_OFFLINE_MESSAGES: '1000000', MAX_OFFLINE_BYTES: '1073741824',
      // The flood is the test's tool, not what it tests: inbound shaping (64 KiB/s) would stretch it to a minute.
      MAX_INBOUND_BYTES_PER_SECOND: '1073741824', MAX_INBOUND_BURST_BYTES: '1073741824', SM_PENDING_MAX_BYTES: '1073741824',
    },
  });
  let log = '';
  child.stdout.on('data', (b: Buffer) => { log += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { log += b.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  await ready(port);

  const url = `ws://127.0.0.1:${port}/xmpp-websocket`;
  const receivers = await Promise.all(Array.from({ length: RECEIVERS }, (_, i) => smSession(url, 'bob', `r${i}`)));
  const alice = await smSession(url, 'alice', 'a');
  const body = 'flood '.repeat(30);
  for (let i = 0; i < messages; i++) {
    alice.send(`<message xmlns='jabber:client' type='chat' to='bob@localhost/r${i % RECEIVERS}' id='m${i}'><body>${body}${i}</body></message>`);
  }
  // XEP-0198 §4: h is what the server has received and handled: accepted.
  alice.send(`<r xmlns='${SM}'/>`);
  const ack = await alice.until((el) => el.local === 'a' && el.ns === SM, 60_000);
  // The receivers read but never acknowledge: everything stays in their XEP-0198 queues.
  await Promise.all(receivers.map((c, k) => c.until((el) => el.attr('id') === `m${messages - RECEIVERS + k}`, 60_000)));

  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await exited;
  const elapsed = Date.now() - t0;
  const lines = log.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const end = lines.find((l) => l.event === 'shutdown-complete' || l.event === 'shutdown-timeout');
  const storage = openSqliteStorage(dataDir);
  const stored = await storage.offline.count('localhost', 'bob');
  await storage.close();
  return { accepted: Number(ack.attr('h')), elapsed, code, end, stored, log };
}

/** Large enough that storing them all takes the old code well over a 1 s timeout on this machine (12 s measured). */
const FLOOD = 20_000;

t.test(`SIGTERM with ${FLOOD} unacknowledged messages in ${RECEIVERS} sessions and SHUTDOWN_TIMEOUT=1: the process exits in time, and every accepted message is stored or counted as unfinished`, async (t) => {
  const o = await floodThenTerm(t, FLOOD, 1);
  t.equal(o.accepted, FLOOD, 'the server accepted every message');
  t.ok(o.elapsed <= 1000 + EXIT_SLACK_MS, `exited ${o.elapsed} ms after SIGTERM`);
  t.ok(o.end, `the last word is shutdown-complete or shutdown-timeout\n${o.log.slice(-300)}`);
  const unfinished = Number(o.end?.offlineUnfinished ?? NaN);
  t.equal(o.code, o.end?.event === 'shutdown-complete' ? 0 : 1, `exit code ${o.code} goes with ${String(o.end?.event)}`);
  t.equal(o.stored + unfinished, o.accepted, `stored (${o.stored}) + logged as unfinished (${unfinished}) = accepted (${o.accepted})`);
  t.ok(o.stored > 0, 'the writes went on until the timeout');
});

t.test('SIGTERM with 400 unacknowledged messages and time enough: shutdown-complete, exit code 0, all of them stored', async (t) => {
  const o = await floodThenTerm(t, 400, 20);
  t.equal(o.accepted, 400, 'the server accepted every message');
  t.equal(o.end?.event, 'shutdown-complete', `shutdown-complete is logged\n${o.log.slice(-300)}`);
  t.equal(o.end?.offlineUnfinished, 0, 'nothing unfinished');
  t.equal(o.code, 0, 'exit code 0');
  t.equal(o.stored, 400, 'every accepted message is in the offline store');
});
