/**
 * Offline messages and carbons over a real RFC 7395 WebSocket on a real
 * port: one user is offline and gets the messages at the next login with
 * delay stamps; two tabs of one user see both sides of a conversation.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { NS, type XmlElement } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

async function online(user: string, resource: string, priority = 0, carbons = false): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  await c.login(user, `${user}-pw`, resource);
  if (carbons) {
    c.send(`<iq xmlns='jabber:client' type='set' id='carbons'><enable xmlns='${NS.CARBONS}'/></iq>`);
    await c.until((el) => el.local === 'iq' && el.attr('id') === 'carbons' && el.attr('type') === 'result');
  }
  c.send(`<presence xmlns='jabber:client'><priority>${priority}</priority></presence>`);
  // RFC 6121 §4.2.2: the presence comes back once the server has processed it.
  await c.until((el) => el.local === 'presence' && el.attr('from') === `${user}@localhost/${resource}`);
  return c;
}

const isMessage = (el: XmlElement) => el.local === 'message';

t.test('messages sent while the user is offline arrive at the next login, after initial presence, with delay stamps', async (t) => {
  const alice = await online('alice', 'desk');
  const sentAt = Date.now();
  for (const body of ['first', 'second']) {
    alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='${body}'><body>${body}</body></message>`);
  }
  // Stored, not bounced: a ping answered after them proves alice got no error in between.
  alice.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='p'><ping xmlns='${NS.PING}'/></iq>`);
  const next = await alice.until((el) => isMessage(el) || el.attr('id') === 'p');
  t.equal(next.local, 'iq', 'no error came back to the sender');

  const bob = await online('bob', 'laptop');
  const got = [await bob.until(isMessage), await bob.until(isMessage)];
  t.same(got.map((m) => m.getChildText('body')), ['first', 'second'], 'in order');
  for (const m of got) {
    t.equal(m.attr('from'), 'alice@localhost/desk');
    const delays = m.getChildren('delay', NS.DELAY);
    t.equal(delays.length, 1, 'one XEP-0203 delay');
    t.equal(delays[0]!.attr('from'), 'localhost');
    const stamp = Date.parse(delays[0]!.attr('stamp')!);
    t.ok(stamp >= sentAt - 1000 && stamp <= Date.now(), 'stamped with the time it was stored');
  }
  alice.close();
  bob.close();
  await bob.waitClosed();
});

t.test('two tabs of one user with carbons see both sides of a conversation', async (t) => {
  const tab1 = await online('bob', 'tab1', 1, true);
  const tab2 = await online('bob', 'tab2', 0, true);
  const alice = await online('alice', 'desk');

  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='in'><body>hello bob</body></message>`);
  const original = await tab1.until(isMessage);
  t.equal(original.getChildText('body'), 'hello bob', 'the higher-priority tab gets the message');
  const received = await tab2.until(isMessage);
  t.equal(received.attr('from'), 'bob@localhost');
  const inbound = received.getChild('received', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT);
  t.equal(inbound?.getChildText('body'), 'hello bob', 'the other tab gets a received carbon');
  t.equal(inbound?.attr('from'), 'alice@localhost/desk');

  tab1.send(`<message xmlns='jabber:client' to='alice@localhost/desk' type='chat' id='out'><body>hi alice</body></message>`);
  t.equal((await alice.until(isMessage)).getChildText('body'), 'hi alice');
  const sent = await tab2.until(isMessage);
  const outbound = sent.getChild('sent', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message', NS.CLIENT);
  t.equal(outbound?.getChildText('body'), 'hi alice', 'and a sent carbon of the reply');
  t.equal(outbound?.attr('from'), 'bob@localhost/tab1');
  t.equal(outbound?.attr('to'), 'alice@localhost/desk');

  // Nothing else for tab1: it sent the reply and got the original.
  tab1.send(`<iq xmlns='jabber:client' to='localhost' type='get' id='p'><ping xmlns='${NS.PING}'/></iq>`);
  t.equal((await tab1.until((el) => isMessage(el) || el.attr('id') === 'p')).local, 'iq', 'no copy back to the sending tab');
  for (const c of [tab1, tab2, alice]) c.close();
});
