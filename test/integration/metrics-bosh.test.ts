/**
 * Issue 17 item 1, XEP-0124 BOSH: requests, requests held open (a gauge read
 * at scrape time), how long a long poll waited, and why sessions ended,
 * moved by raw BOSH bodies and read from /metrics.
 */
import t from 'tap';
import { withServer } from '../helpers/server.js';
import { RawBoshClient, terminalCondition } from '../helpers/bosh-client.js';
import { baseline, scrape, value } from '../helpers/metrics-text.js';
import { eventually } from '../helpers/eventually.js';

// A held request is answered empty after 1 s; a session with no request open for 1 s is over.
const server = await withServer(t, { BOSH_MAX_WAIT: '1', BOSH_INACTIVITY: '1' });
const url = `${server.httpUrl}/http-bind`;

function client(): RawBoshClient {
  const c = new RawBoshClient(url);
  t.teardown(() => c.destroy());
  return c;
}

t.test('requests are counted; a long poll is held (gauge), then its wait is observed', async (t) => {
  const delta = await baseline(server);
  const c = client();
  await c.create();
  t.equal(await delta('xmpp_bosh_requests_total'), 1, 'the creation request');
  const poll = c.send();
  await eventually(async () => value(await scrape(server), 'xmpp_bosh_held_requests') === 1, { message: 'the poll is held' });
  const res = await poll;
  t.equal(res.status, 200, 'answered empty once wait ran out');
  t.equal(await delta('xmpp_bosh_requests_total'), 2);
  t.equal(value(await scrape(server), 'xmpp_bosh_held_requests'), 0, 'no longer held');
  // The creation request was held too (answered at once); the poll for about 1 s.
  t.ok(await delta('xmpp_bosh_hold_seconds_count') >= 2, 'each held request observed');
  t.ok(await delta('xmpp_bosh_hold_seconds_bucket', { le: '0.5' }) < await delta('xmpp_bosh_hold_seconds_count'), 'one waited over half a second');
  await c.terminate();
});

t.test('session ends by reason: terminate, bad-sid, rid-window, inactivity', async (t) => {
  const delta = await baseline(server);
  const ended = (reason: string) => delta('xmpp_bosh_sessions_ended_total', { reason });

  const a = client();
  await a.create();
  await a.terminate();
  t.equal(await ended('terminate'), 1, 'the client terminated');

  const b = client();
  b.sid = 'no-such-sid';
  t.equal(terminalCondition(await b.send()), 'item-not-found');
  t.equal(await ended('bad-sid'), 1, 'a request naming no session');

  const c = client();
  await c.create();
  c.rid += 1000;
  t.equal(terminalCondition(await c.send()), 'item-not-found', 'a rid far beyond the window (§14.2)');
  t.equal(await ended('rid-window'), 1);

  const d = client();
  await d.create();
  await eventually(async () => (await ended('inactivity')) === 1, { timeout: 10_000, message: 'BOSH_INACTIVITY=1 ends the idle session' });
  t.equal(await delta('xmpp_bosh_sessions_ended_total'), 4, 'one end each');
});
