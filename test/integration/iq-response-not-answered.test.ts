/**
 * RFC 6120 §8.2.3: "An entity that receives a stanza of type 'result' or
 * 'error' MUST NOT respond to the stanza by sending a further IQ response of
 * type 'result' or 'error'." The core's own refusals (an IQ before resource
 * binding, §7.1; a malformed 'to', §8.1.1.1) are stanza errors too, and an IQ
 * result must not get one. Raw WebSocket wire; each check is followed by a
 * request whose answer must be the very next frame, so nothing is timed.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, stanzaErrorCondition } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice'], { ALLOW_INSECURE_PLAIN: 'true' });

t.test('an IQ result sent before binding is not answered with not-authorized', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.authenticate('alice', 'alice-pw');
  c.send(`<iq xmlns='jabber:client' type='result' id='r1'/>`);
  // A request that is served before binding (RFC 3921 session): its answer is the next frame.
  c.send(`<iq xmlns='jabber:client' type='set' id='s1'><session xmlns='${NS.SESSION}'/></iq>`);
  const next = await c.next();
  t.equal(next.attr('id'), 's1', `the next frame answers the session request, not the result: ${next.toString()}`);
  t.equal(next.attr('type'), 'result');
  // A request before binding still gets its not-authorized (§7.1).
  c.send(`<iq xmlns='jabber:client' type='get' id='g1'><query xmlns='jabber:iq:roster'/></iq>`);
  const refused = await c.next();
  t.equal(refused.attr('id'), 'g1');
  t.equal(stanzaErrorCondition(refused), 'not-authorized');
});

t.test('an IQ result with a malformed to is not answered with jid-malformed', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.login('alice', 'alice-pw', 'r');
  c.send(`<iq xmlns='jabber:client' type='result' id='r2' to='a@@b'/>`);
  c.send(`<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='${NS.PING}'/></iq>`);
  const next = await c.next();
  t.equal(next.attr('id'), 'p1', `the next frame answers the ping, not the result: ${next.toString()}`);
  t.equal(next.attr('type'), 'result');
  // A get with the same 'to' is still refused (§8.3.3.8).
  c.send(`<iq xmlns='jabber:client' type='get' id='g2' to='a@@b'><ping xmlns='${NS.PING}'/></iq>`);
  const refused = await c.next();
  t.equal(refused.attr('id'), 'g2');
  t.equal(stanzaErrorCondition(refused), 'jid-malformed');
});
