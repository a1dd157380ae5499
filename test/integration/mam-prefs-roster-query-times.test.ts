/**
 * XEP-0313 details found in review:
 * - prefs default='roster' (§6.1.1: "messages are archived only if the contact's bare JID is in the
 *   user's roster"): a roster item counts whatever its subscription (none here), and a JID that is
 *   not on the roster is not archived;
 * - a full JID in <always/> or <never/> matches that resource only (XEP-0441 "JID matching": "If
 *   the listed JID contains a resource, compare against the target JID as-is"), a bare one every
 *   resource of the account;
 * - start/end with more than three fraction digits (XEP-0082) round towards the inside of the
 *   window (§4.1.1 "equal to or later than" start), and a date that does not exist is refused.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import type { XmlElement } from '../../src/xml/index.js';
import { parseXml } from '../../src/xml/index.js';
import { parseQuery } from '../../src/xmpp/features/mam/query.js';
import { StanzaErrorException } from '../../src/xmpp/errors.js';

const MAM = 'urn:xmpp:mam:2';
const SID = 'urn:xmpp:sid:0';
const isIq = (id: string) => (el: XmlElement): boolean => el.name === 'iq' && el.attr('id') === id;

async function connect(t: Test, server: { wsUrl: string }, user: string, resource = 'r'): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.login(user, `${user}-pw`, resource);
  return c;
}

t.test("default='roster': a roster item with subscription none is archived, a stranger is not", async (t) => {
  const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true' });
  const alice = await connect(t, server, 'alice');
  const bob = await connect(t, server, 'bob');
  const carol = await connect(t, server, 'carol');
  alice.send("<iq xmlns='jabber:client' type='set' id='r1'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'/></query></iq>");
  t.equal((await alice.until(isIq('r1'))).attr('type'), 'result', "bob is on alice's roster (no subscription)");
  alice.send(`<iq xmlns='jabber:client' type='set' id='p1'><prefs xmlns='${MAM}' default='roster'/></iq>`);
  t.equal((await alice.until(isIq('p1'))).attr('type'), 'result');
  alice.send("<presence xmlns='jabber:client'/>");
  bob.send("<message xmlns='jabber:client' to='alice@localhost/r' type='chat' id='m1'><body>hello</body></message>");
  carol.send("<message xmlns='jabber:client' to='alice@localhost/r' type='chat' id='m2'><body>hi</body></message>");
  const fromBob = await alice.until((el) => el.name === 'message' && el.attr('id') === 'm1');
  const fromCarol = await alice.until((el) => el.name === 'message' && el.attr('id') === 'm2');
  t.ok(fromBob.getChild('stanza-id', SID), "bob's message carries alice's stanza-id");
  t.notOk(fromCarol.getChild('stanza-id', SID), "carol's (not on the roster) does not");
  alice.send(`<iq xmlns='jabber:client' type='set' id='q1'><query xmlns='${MAM}' queryid='q1'/></iq>`);
  const results: XmlElement[] = [];
  await alice.until((el) => { const r = el.getChild('result', MAM); if (r) results.push(r); return isIq('q1')(el); });
  t.same(results.map((r) => r.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message')?.attr('id')), ['m1'], "her archive holds bob's message only");
});

const form = (field: string, value: string) => parseXml(`<query xmlns='${MAM}'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>${MAM}</value></field><field var='${field}'><value>${value}</value></field></x></query>`);

t.test('a full JID in <never/> keeps that resource out of the archive, not the whole account', async (t) => {
  const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true' });
  const alice = await connect(t, server, 'alice');
  const phone = await connect(t, server, 'bob', 'phone');
  const desk = await connect(t, server, 'bob', 'desk');
  const carol = await connect(t, server, 'carol');
  alice.send(`<iq xmlns='jabber:client' type='set' id='p1'><prefs xmlns='${MAM}' default='always'><always/><never><jid>bob@localhost/phone</jid><jid>carol@localhost</jid></never></prefs></iq>`);
  const set = await alice.until(isIq('p1'));
  t.same(set.getChild('prefs', MAM)?.getChild('never', MAM)?.getChildren('jid', MAM).map((j) => j.text()), ['bob@localhost/phone', 'carol@localhost'], 'the lists are kept as given');
  alice.send("<presence xmlns='jabber:client'/>");
  phone.send("<message xmlns='jabber:client' to='alice@localhost/r' type='chat' id='from-phone'><body>from the phone</body></message>");
  desk.send("<message xmlns='jabber:client' to='alice@localhost/r' type='chat' id='from-desk'><body>from the desk</body></message>");
  carol.send("<message xmlns='jabber:client' to='alice@localhost/r' type='chat' id='from-carol'><body>hi</body></message>");
  alice.send("<message xmlns='jabber:client' to='bob@localhost/phone' type='chat' id='to-phone'><body>to the phone</body></message>");
  alice.send("<message xmlns='jabber:client' to='bob@localhost' type='chat' id='to-bob'><body>to bob</body></message>");
  const delivered = new Set<string>();
  await alice.until((el) => { if (el.name === 'message') delivered.add(el.attr('id') ?? ''); return ['from-phone', 'from-desk', 'from-carol'].every((id) => delivered.has(id)); });
  alice.send(`<iq xmlns='jabber:client' type='set' id='q1'><query xmlns='${MAM}' queryid='q1'/></iq>`);
  const results: XmlElement[] = [];
  await alice.until((el) => { const r = el.getChild('result', MAM); if (r) results.push(r); return isIq('q1')(el); });
  t.same(results.map((r) => r.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message')?.attr('id')).sort(), ['from-desk', 'to-bob'],
    "bob's other resource and his bare JID are archived; his phone and every resource of carol are not");
});

t.test('start and end with sub-millisecond digits round towards the inside of the window', async (t) => {
  const at = Date.parse('2030-01-01T12:00:00.000Z');
  t.equal(parseQuery(form('start', '2030-01-01T12:00:00.0005Z'), { maxPage: 50 }).query.start, at + 1, 'start .0005 is after a message at .000');
  t.equal(parseQuery(form('start', '2030-01-01T12:00:00.0000Z'), { maxPage: 50 }).query.start, at, 'start .0000 is that millisecond');
  t.equal(parseQuery(form('end', '2030-01-01T12:00:00.0009Z'), { maxPage: 50 }).query.end, at, 'end .0009 is before a message at .001');
  t.equal(parseQuery(form('start', '2030-01-01T13:00:00.5+01:00'), { maxPage: 50 }).query.start, at + 500, 'a time zone offset');
});

t.test('a date that does not exist is a bad request, not the next month', async (t) => {
  for (const v of ['2010-02-30T00:00:00Z', '2010-13-01T00:00:00Z', '2010-01-01T24:00:00Z']) {
    try {
      parseQuery(form('start', v), { maxPage: 50 });
      t.fail(`${v} accepted`);
    } catch (err) {
      t.equal((err as StanzaErrorException).condition, 'bad-request', v);
    }
  }
});
