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
