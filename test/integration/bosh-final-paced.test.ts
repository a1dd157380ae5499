/**
 * "Nothing lost" when the server closes a BOSH session (a conflict here) while the client's input is
 * still paced (inbound shaping, issue 10): the stanzas of a body already answered that the session had
 * not run yet are never processed, the stream being gone, and nothing told the client. Its messages
 * now get their errors (RFC 6120 §8.3, unexpected-request) in the terminate body, before the stream
 * error (XEP-0206 §7); each message is either delivered or answered with an error. They were dropped.
 * The errors count in BOSH_MAX_RESPONSE_BYTES (they were added past it: an error is about three times a
 * small message); past the room, only the oldest of those messages get theirs.
 */
import t, { type Test } from 'tap';
import { NS, serialize, x } from '../../src/xml/index.js';
import { flowServer } from '../helpers/flow.js';
import { RawBoshClient, payloads, replaceOverWebSocket, terminalCondition } from '../helpers/bosh-client.js';
import { loggedInWs } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

/**
 * Bob listening over WebSocket and alice over BOSH (wait 1) as `resource`, on a server with `env` and a 1 KiB/s
 * inbound rate; she has sent 30 small messages to bob in one body (about 3 KiB), most still waiting in her pump.
 */
async function pacedMessages(t: Test, env: Record<string, string>, resource: string) {
  const server = await flowServer(t, { MAX_INBOUND_BYTES_PER_SECOND: '1024', MAX_INBOUND_BURST_BYTES: '1024', BOSH_MAX_WAIT: '60', ...env }, ['alice', 'bob']);
  const bob = await loggedInWs(t, server.wsUrl, 'bob', 'listener', 'b');
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  await alice.login('alice', 'a', resource, { wait: 1 });
  const ids = Array.from({ length: 30 }, (_, i) => `m${i}`);
  const first = await alice.send({}, ...ids.map((id) => x('message', { xmlns: NS.CLIENT, to: 'bob@localhost/listener', type: 'chat', id }, x('body', {}, `text ${id}`))));
  return { server, bob, alice, ids, first };
}

t.test('messages still waiting in the paced input when the server closes the stream are answered with errors in the terminate body', async (t) => {
  // About 3 KiB at 1 KiB/s: most of it waits in the pump for seconds (its request is answered empty after wait).
  const { server, bob, alice, ids, first } = await pacedMessages(t, {}, 'paced');
  t.equal(terminalCondition(first), undefined, 'the body is taken');
  // The server ends alice's stream: a login with the same resource replaces the session (conflict).
  await replaceOverWebSocket(t, server, 'alice', 'a', 'paced');
  const final = await alice.send();
  t.equal(terminalCondition(final), 'remote-stream-error', 'the next request gets the terminate body');
  t.ok(payloads(final.body).at(-1)?.getChild('conflict'), 'with the stream error last');
  const bounced = payloads(final.body).filter((el) => el.local === 'message' && el.attr('type') === 'error'
    && el.getChild('error', NS.CLIENT)?.getChild('unexpected-request', NS.STANZAS)).map((el) => el.attr('id'));
  const delivered = (): (string | undefined)[] => bob.frames.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  await eventually(() => delivered().length + bounced.length >= ids.length, { message: 'every message delivered or answered' }).catch(() => undefined);
  t.ok(bounced.length > 0, `the messages the session never ran are answered with errors (${bounced.length}, ${delivered().length} delivered)`);
  t.same([...delivered(), ...bounced], ids, 'each message is delivered or answered with an error, once, in order');
  t.equal(await server.storage.offline.count('localhost', 'bob'), 0, 'none stored offline (bob was online)');
});

t.test('the errors in the terminate body stay within BOSH_MAX_RESPONSE_BYTES: the oldest stanzas get theirs', async (t) => {
  const CAP = 4096;
  // About 3 KiB of small messages at 1 KiB/s; each error is about three times its message.
  const { server, bob, alice, ids } = await pacedMessages(t, { BOSH_MAX_RESPONSE_BYTES: String(CAP) }, 'capped');
  await replaceOverWebSocket(t, server, 'alice', 'a', 'capped');
  const final = await alice.send();
  t.equal(terminalCondition(final), 'remote-stream-error', 'the next request gets the terminate body');
  const size = payloads(final.body).reduce((sum, el) => sum + Buffer.byteLength(serialize(el)), 0);
  t.ok(size <= CAP, `its payloads, the errors and the stream error included, stay within the cap (${size} bytes)`);
  const bounced = payloads(final.body).filter((el) => el.local === 'message' && el.attr('type') === 'error').map((el) => el.attr('id'));
  const delivered = bob.frames.filter((el) => el.local === 'message').map((el) => el.attr('id'));
  t.ok(bounced.length > 0, `it carries errors (${bounced.length}, ${delivered.length} delivered)`);
  t.same(bounced, ids.slice(delivered.length, delivered.length + bounced.length), 'for the oldest of the messages the session never ran');
});
