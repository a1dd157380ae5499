/**
 * `from` on client stanzas as web clients send it (RFC 6120 §8.1.2.1),
 * after a fresh bind and after a XEP-0198 resumption alike: Converse.js,
 * reloaded and resumed, names its own account with a resource it picked
 * after the reload. That is stamped with the bound JID; another account in
 * `from` is still invalid-from. Protocol tests through the fake transport.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { startFakeServer, withFakeUsers, type FakeClient } from '../helpers/fake-conn.js';
import { stanzaErrorCondition, streamErrorCondition } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

const server = await withFakeUsers(t, ['alice', 'bob'], { SM_RESUME_TIMEOUT: '30' });

const SM = NS.SM;
const PEP_NODE = 'urn:xmpp:reactions:popular:0';

/** Logs alice in as alice@localhost/a1 with resumable SM; returns the smid. */
async function aliceWithSm(): Promise<{ client: FakeClient; smid: string }> {
  const client = await server.login('alice', 'a1');
  client.send(`<enable xmlns='${SM}' resume='true'/>`);
  const enabled = client.conn.take().find((el) => el.ns === SM);
  if (enabled?.local !== 'enabled') throw new Error(`enable failed: ${String(enabled)}`);
  return { client, smid: enabled.attr('id')! };
}

/** The session as a page reload leaves it: transport lost, then resumed on a new stream (XEP-0198 §5). */
async function aliceResumed(): Promise<FakeClient> {
  const { client, smid } = await aliceWithSm();
  client.conn.events!.transportLost('page reload');
  const carrier = await server.authenticate('alice');
  carrier.conn.take();
  carrier.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
  const answer = carrier.conn.take().find((el) => el.ns === SM);
  if (answer?.local !== 'resumed') throw new Error(`resume failed: ${String(answer)}`);
  // The carrier's Conn now feeds the resumed session (Conn.attach), as the page's new socket does.
  return { conn: carrier.conn, session: client.session, send: carrier.send };
}

const modes: [string, () => Promise<FakeClient>][] = [
  ['after a fresh bind', async () => (await aliceWithSm()).client],
  ['after a resume', aliceResumed],
];

async function metricValue(name: string): Promise<number> {
  const body = await server.app.registry.metrics();
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
}

const messagesFrom = (bob: FakeClient): XmlElement[] => bob.conn.out.filter((el) => el.local === 'message');

for (const [mode, alice] of modes) {
  t.test(`${mode}: a from with the own bare JID and another resource is stamped with the bound JID and goes on`, async (t) => {
    const bob = await server.login('bob', 'b');
    const a = await alice();
    const before = await metricValue('xmpp_client_from_restamped_total');
    a.send(`<message xmlns='jabber:client' to='bob@localhost/b' from='alice@localhost/converse-after-reload' type='chat' id='m1'><body>hi</body></message>`);
    a.send(`<iq xmlns='jabber:client' type='get' id='p1' to='localhost' from='Alice@LOCALHOST/another'><ping xmlns='${NS.PING}'/></iq>`);
    await eventually(() => messagesFrom(bob).length > 0 && a.conn.out.some((el) => el.attr('id') === 'p1'), { interval: 1, message: 'the message at bob and the ping answer' });
    t.notOk(a.conn.closed, 'the stream stays open');
    const got = messagesFrom(bob);
    t.equal(got.length, 1, 'the message reaches bob');
    t.equal(got[0]?.attr('from'), 'alice@localhost/a1', 'from is the bound full JID');
    const pong = a.conn.out.find((el) => el.attr('id') === 'p1');
    t.equal(pong?.attr('type'), 'result', 'the ping is answered');
    t.equal(pong?.attr('to'), 'alice@localhost/a1', 'the answer goes to the bound JID');
    t.equal(await metricValue('xmpp_client_from_restamped_total') - before, 2, 'both are counted');
    bob.session.close();
    a.session.close();
  });

  t.test(`${mode}: a from naming another account ends the stream with invalid-from`, async (t) => {
    for (const forged of ['bob@localhost/a1', 'alice@example.org/a1', 'localhost', 'not a jid@']) {
      const bob = await server.login('bob', 'b');
      const a = await alice();
      a.send(`<message xmlns='jabber:client' to='bob@localhost/b' from='${forged}' type='chat'><body>forged</body></message>`);
      t.ok(a.conn.closed, `from='${forged}': the stream is closed`);
      t.equal(a.conn.out.map(streamErrorCondition).find(Boolean), 'invalid-from', `from='${forged}': invalid-from`);
      t.equal(messagesFrom(bob).length, 0, `from='${forged}': nothing reaches bob`);
      bob.session.close();
    }
  });

  t.test(`${mode}: Converse's PEP request (new resource in from) on its own bare JID is answered, to the bound JID, and the session goes on`, async (t) => {
    const bob = await server.login('bob', 'b');
    const a = await alice();
    a.send(`<iq xmlns='jabber:client' type='get' id='pep' to='alice@localhost' from='alice@localhost/converse-after-reload'>`
      + `<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='${PEP_NODE}'/></pubsub></iq>`);
    await eventually(() => a.conn.out.some((el) => el.attr('id') === 'pep'), { interval: 1, message: 'the answer to the PEP query' });
    const answer = a.conn.out.find((el) => el.attr('id') === 'pep');
    t.equal(answer?.attr('type'), 'error');
    t.equal(answer && stanzaErrorCondition(answer), 'item-not-found', 'a node never published: item-not-found (XEP-0060 §6.5.9.11)');
    t.equal(answer?.attr('to'), 'alice@localhost/a1', 'the error goes to the bound JID');
    a.send(`<message xmlns='jabber:client' to='bob@localhost/b' type='chat'><body>still here</body></message>`);
    await eventually(() => messagesFrom(bob).length > 0, { interval: 1, message: 'a message at bob' });
    t.notOk(a.conn.closed, 'the stream stays open');
    t.equal(messagesFrom(bob)[0]?.getChildText('body'), 'still here', 'the next message flows');
    a.send(`<r xmlns='${SM}'/>`);
    // The <a/> waits for what the stanzas it covers started (the archive's commit, XEP-0313 with XEP-0198).
    await eventually(() => a.conn.out.some((el) => el.is('a', SM)), { interval: 1, message: 'the <a/>' });
    const ack = a.conn.out.find((el) => el.is('a', SM));
    t.equal(ack?.attr('h'), '2', 'SM counted both stanzas');
    bob.session.close();
    a.session.close();
  });
}

t.test('the stamping is logged once per session at debug level, however often it happens', async (t) => {
  const lines: Array<{ level: number; msg: string; session?: string }> = [];
  const logged = await startFakeServer({}, { level: 'debug', stream: { write: (line: string) => lines.push(JSON.parse(line)) } });
  t.teardown(() => logged.close());
  await logged.addUser('alice');
  const restamps = () => lines.filter((l) => l.msg.startsWith('client from names another resource'));
  const first = await logged.login('alice', 'a1');
  const second = await logged.login('alice', 'a2');
  for (const [client, n] of [[first, 3], [second, 2]] as const) {
    for (let i = 0; i < n; i++) client.send(`<iq xmlns='jabber:client' type='get' id='p${i}' to='localhost' from='alice@localhost/stale'><ping xmlns='${NS.PING}'/></iq>`);
  }
  t.equal(restamps().length, 2, 'one line per session, not one per stanza');
  t.same(restamps().map((l) => l.level), [20, 20], 'at debug level');
  t.same(new Set(restamps().map((l) => l.session)), new Set([first.session.logId, second.session.logId]), 'naming each session');
});
