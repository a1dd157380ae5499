/**
 * AUTH_TIMEOUT (issue 13, like Prosody's c2s_timeout): a stream that has not
 * authenticated by then is closed with connection-timeout. Before, a
 * WebSocket that never logged in stayed open for as long as it answered pings.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { RawBoshClient, payloads, terminalCondition } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

const server = await withUsers(t, { alice: 'alice-secret' }, { AUTH_TIMEOUT: '1', ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '5' });

t.test('a WebSocket that opens its stream and never authenticates gets connection-timeout', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  const error = await c.next(4000);
  t.equal(streamErrorCondition(error), 'connection-timeout');
  t.match(error.toString(), /not authenticated within 1 s/);
});

t.test('a WebSocket that never even opens its stream is closed too, with a header before the error', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  t.ok((await c.next(4000)).is('open', NS.FRAMING), 'RFC 6120 §4.9.1.2: a header first');
  t.equal(streamErrorCondition(await c.next()), 'connection-timeout');
});

t.test('an authenticated stream is not touched by the timeout', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from('\0alice\0alice-secret').toString('base64')}</auth>`);
  t.ok((await c.next()).is('success', NS.SASL));
  await new Promise((r) => setTimeout(r, 1500));
  t.notOk(c.closed, 'still open past the timeout');
  c.open();
  t.ok((await c.next()).is('open', NS.FRAMING), 'and still answering');
});

t.test('a BOSH session that never authenticates is terminated with connection-timeout', async (t) => {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  await c.create({ wait: 5 });
  const res = await c.send();
  // XEP-0206 §7: a stream error ends the BOSH session as remote-stream-error, with the error inside.
  t.equal(terminalCondition(res), 'remote-stream-error');
  t.equal(streamErrorCondition(payloads(res.body).find((p) => p.local === 'error')!), 'connection-timeout');
});

/**
 * A body over PRE_AUTH_MAX_STANZA_SIZE for a session the timeout closed: judged by its start tag as any request
 * of a closing session is (transport.ts #answeredWhileEnding), so its next rid gets the final body with the stream
 * error. It was answered policy-violation, which ended the session before its client learnt why.
 */
t.test('a BOSH session closed by the timeout, sent an oversized body with its next rid, still gets its final body', async (t) => {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  const before = server.app.sessions.size;
  await c.create({ wait: 5 });
  await eventually(() => server.app.sessions.size === before, { message: 'the unauthenticated session to be closed' });
  const res = await c.raw(`<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid++}'>${' '.repeat(9000)}</body>`);
  t.equal(terminalCondition(res), 'remote-stream-error', `the final body (${res.text.slice(0, 200)})`);
  t.equal(streamErrorCondition(payloads(res.body).find((p) => p.local === 'error')!), 'connection-timeout');
});
