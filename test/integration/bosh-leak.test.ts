/**
 * 1000 BOSH sessions created and ended every way a session ends (terminate,
 * terminate while a request is held, a dropped held request, a binding
 * error, a stream error, inactivity, inactivity after a wait) leave nothing
 * behind: no session, no timer, no held or pending request, no open HTTP
 * request, no per-address count, no XMPP session.
 */
import t from 'tap';
import http from 'node:http';
import { NS, x } from '../../src/xml/index.js';
import { type TestServer, withServer } from '../helpers/server.js';
import { RawBoshClient } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

const CONCURRENCY = 50;
/**
 * Each request is awaited until its answer, each clean-up until the state says it is done. With 50 requests
 * in flight in the test's own process, on a loaded machine (load 26 on 2 cores) an answer took longer than
 * a request's usual 10 s guard: these guards only stop a hang, so they are as long as the file may take.
 */
const HANG_MS = 180_000;
const NOTHING = { sessions: 0, held: 0, pending: 0, queued: 0, timers: 0, openRequests: 0, addresses: 0 };

type Way = (c: RawBoshClient) => Promise<unknown>;

/** Creates `count` sessions with CONCURRENCY workers, ending session i the way ways[i % n] does. */
async function churn(s: TestServer, count: number, ways: Way[]): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2 });
  let created = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const i = next++;
      const c = new RawBoshClient(`${s.httpUrl}/http-bind`, { agent, timeout: HANG_MS });
      const res = await c.create({ wait: 1 });
      if (res.body?.attr('sid')) created++;
      await ways[i % ways.length]!(c);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  agent.destroy();
  return created;
}

const dropHeld: Way = async (c) => {
  const abort = new AbortController();
  const held = c.raw(c.body(), { signal: abort.signal }).catch(() => undefined);
  setTimeout(() => abort.abort(), 20);
  await held;
};

t.test('600 sessions ended by the client or by an error leave nothing behind, at once', async (t) => {
  // A long inactivity: a timer not cleared when a session ends would still be armed below.
  const s = await withServer(t, { BOSH_INACTIVITY: '60', BOSH_MAX_WAIT: '1', BOSH_MAX_SESSIONS_PER_IP: '1000' });
  const ways: Way[] = [
    (c) => c.terminate(),
    (c) => Promise.all([c.send(), new Promise((r) => setTimeout(r, 20)).then(() => c.terminate())]),
    async (c) => { await dropHeld(c); await c.terminate(); },
    (c) => { c.rid += 5; return c.send(); }, // item-not-found
    (c) => c.send({}, x('message', { xmlns: NS.CLIENT, to: 'bob@localhost' })), // not-authorized stream error
    (c) => c.raw(`<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid}' pause='never'/>`), // bad-request
  ];
  t.equal(await churn(s, 600, ways), 600, 'every session was created');
  t.same(s.app.bosh.stats(), NOTHING, 'nothing is left behind once the last response is in');
  t.equal(s.app.sessions.size, 0, 'no XMPP session is left');
});

t.test('400 sessions that time out leave nothing behind', async (t) => {
  const s = await withServer(t, { BOSH_INACTIVITY: '1', BOSH_MAX_WAIT: '1', BOSH_MAX_SESSIONS_PER_IP: '1000' });
  const ways: Way[] = [
    async () => undefined, // never heard from again
    (c) => c.send(), // answered empty after wait, then silence
    dropHeld,
    (c) => c.send({ pause: 2 }), // the pause runs out
  ];
  t.equal(await churn(s, 400, ways), 400, 'every session was created');
  await eventually(() => s.app.bosh.stats().sessions === 0 && s.app.sessions.size === 0, { timeout: HANG_MS, interval: 50, message: 'every session has timed out' });
  t.same(s.app.bosh.stats(), NOTHING, 'nothing is left behind');
});
