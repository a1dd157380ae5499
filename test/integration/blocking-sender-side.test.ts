/**
 * XEP-0191 on the raw wire, from the blocked sender's side: a message to a
 * user who blocks the sender is refused by the recipient (service-unavailable,
 * as for an account that does not exist), but it was still sent. The sender's
 * other resources get their XEP-0280 §8 <sent/> copy and the sender's archive
 * keeps it (XEP-0313 §11.5: all the messages a user sends), exactly as for a
 * message to an account that does not exist; otherwise the sender could tell
 * the block apart (XEP-0191 §3.3: the user appears offline to the blocked JID).
 * The blocker gets nothing: no delivery, no received copy, no archive entry,
 * no offline message.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { availableWs, stanzaErrorCondition, type RawWsClient } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { eventually } from '../helpers/eventually.js';

const MAM = 'urn:xmpp:mam:2';
const ENV = { ALLOW_INSECURE_PLAIN: 'true' };

const isIq = (id: string) => (el: XmlElement): boolean => el.name === 'iq' && el.attr('id') === id;

async function iqResult(c: RawWsClient, id: string, payload: string): Promise<XmlElement> {
  c.send(`<iq xmlns='jabber:client' type='set' id='${id}'>${payload}</iq>`);
  const answer = await c.until(isIq(id));
  if (answer.attr('type') !== 'result') throw new Error(`${id}: ${answer.toString()}`);
  return answer;
}

/** The ids of the messages in the account's archive (a MAM query of its own archive). */
async function archivedIds(c: RawWsClient, id: string): Promise<string[]> {
  c.send(`<iq xmlns='jabber:client' type='set' id='${id}'><query xmlns='${MAM}' queryid='${id}'/></iq>`);
  const ids: string[] = [];
  await c.until((el) => {
    const inner = el.getChild('result', MAM)?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT);
    if (el.getChild('result', MAM)?.attr('queryid') === id && inner) ids.push(inner.attr('id') ?? '');
    return isIq(id)(el);
  });
  return ids;
}

const chat = (to: string, id: string): string => `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${id}</body></message>`;

/** The <sent/> carbon of message `id` that `c` gets (skipping anything before it). */
const sentCopy = (c: RawWsClient, id: string): Promise<XmlElement> =>
  c.until((el) => el.name === 'message' && el.getChild('sent', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT)?.attr('id') === id);

async function setup(t: Test) {
  const server = await withUsers(t, ['alice', 'bob', 'carol'], ENV);
  const bob = await availableWs(t, server.wsUrl, 'bob', 'b1');
  await iqResult(bob, 'carbons', `<enable xmlns='${NS.CARBONS}'/>`);
  await iqResult(bob, 'block', `<block xmlns='${NS.BLOCKING}'><item jid='alice@localhost'/></block>`);
  const a1 = await availableWs(t, server.wsUrl, 'alice', 'a1');
  const a2 = await availableWs(t, server.wsUrl, 'alice', 'a2');
  await iqResult(a2, 'carbons', `<enable xmlns='${NS.CARBONS}'/>`);
  return { server, bob, a1, a2 };
}

t.test('a message to a user who blocks the sender: refused, yet copied to the sender\'s resources and kept in its archive', async (t) => {
  const { bob, a1, a2 } = await setup(t);
  for (const [to, id] of [['bob@localhost', 'to-bare'], ['bob@localhost/b1', 'to-full'], ['nobody@localhost', 'to-nobody']] as const) {
    a1.send(chat(to, id));
    const error = await a1.until((el) => el.name === 'message' && el.attr('id') === id);
    t.equal(stanzaErrorCondition(error), 'service-unavailable', `${id}: the sender is told the recipient is unavailable`);
    const copy = await sentCopy(a2, id);
    t.equal(copy.attr('from'), 'alice@localhost', `${id}: XEP-0280 §8 sent copy to the sender's other resource`);
  }
  t.same((await archivedIds(a1, 'q-alice')).sort(), ['to-bare', 'to-full', 'to-nobody'], "all three are in the sender's archive, the refused ones as the one to no account");
  t.same(await archivedIds(bob, 'q-bob'), [], "nothing in the blocker's archive (XEP-0313: not for the entity that rejected it)");
  const seen = bob.frames.filter((el) => el.name === 'message');
  t.same(seen.map((el) => el.toString()), [], 'the blocker got neither the messages nor received copies');
});

t.test('to a blocker with no resource online: the sender gets its error and copy, nothing is stored offline', async (t) => {
  const { server, bob, a1, a2 } = await setup(t);
  bob.close();
  await bob.waitClosed();
  const carol = await availableWs(t, server.wsUrl, 'carol', 'c');
  // Bob's session is gone once a message from carol to him is stored offline.
  carol.send(chat('bob@localhost', 'from-carol'));
  await eventually(async () => await server.storage.offline.count('localhost', 'bob') === 1, { message: "carol's message stored offline for bob" });
  a1.send(chat('bob@localhost', 'offline'));
  const error = await a1.until((el) => el.name === 'message' && el.attr('id') === 'offline');
  t.equal(stanzaErrorCondition(error), 'service-unavailable');
  await sentCopy(a2, 'offline');
  t.same(await archivedIds(a1, 'q-alice'), ['offline'], "in the sender's archive");
  t.equal(await server.storage.offline.count('localhost', 'bob'), 1, 'not stored offline for the blocker');
});
