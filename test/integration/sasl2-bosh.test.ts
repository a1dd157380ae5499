/**
 * SASL2 over BOSH (XEP-0206) with the project's raw client: xmpp.js 0.14 has
 * no BOSH transport. With SASL2 there is no restart request: <success/> and
 * the features of the authenticated stream come in the session as they are.
 * And a session started on WebSocket resumes inline over BOSH, and back;
 * and a FAST token got over BOSH logs a reloaded BOSH page in and resumes
 * it inline, with no password.
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';
import { authenticate, htResponse, htServerProof, plainResponse } from '../helpers/sasl2.js';

const server = await withUsers(t, ['alice', 'bob'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });
const AGENT = '7c6b5a49-3827-4165-9a4b-3c2d1e0f9a8b';

/** Polls a BOSH session, collecting every payload, until `done` holds. */
async function collect(c: RawBoshClient, done: (all: XmlElement[]) => boolean, first: XmlElement[] = []): Promise<XmlElement[]> {
  const all = [...first];
  await eventually(async () => {
    if (done(all)) return true;
    const res = await c.send();
    if (res.body?.attr('type') === 'terminate') throw new Error(`terminated: ${res.text}`);
    all.push(...payloads(res.body));
    return done(all);
  }, { timeout: 5000, interval: 0, message: () => `the payloads; got ${all.map(String).join(' ')}` });
  return all;
}

const has = (name: string, ns: string) => (all: XmlElement[]): boolean => all.some((el) => el.is(name, ns));

async function bobSends(to: string, id: string): Promise<void> {
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw');
  bob.send(`<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${id}</body></message>`);
  bob.send(`<iq xmlns='jabber:client' type='get' id='rt'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await bob.until((el) => el.attr('id') === 'rt');
}

t.test('SASL2 with Bind2 over BOSH: <success/> with the full JID and the features, no restart request, then stanzas flow', async (t) => {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  const created = await c.create();
  t.ok(created.body?.getChild('features', NS.STREAM)?.getChild('authentication', NS.SASL2), 'the session creation response offers SASL2');
  const res = await c.send({}, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, bind: { tag: 'bosh', sm: true } }));
  const all = await collect(c, has('features', NS.STREAM), payloads(res.body));
  const success = all.find((el) => el.is('success', NS.SASL2));
  const jid = success?.getChildText('authorization-identifier');
  t.match(jid, /^alice@localhost\/bosh\./, '<success/> names the bound full JID');
  t.ok(success?.getChild('bound', NS.BIND2)?.getChild('enabled', NS.SM), 'SM enabled inline');
  t.ok(all.some((el) => el.is('features', NS.STREAM)), 'the features follow without xmpp:restart');
  await bobSends(jid!, 'to-bosh');
  const got = await collect(c, (els) => els.some((el) => el.local === 'message'));
  t.equal(got.find((el) => el.local === 'message')?.attr('id'), 'to-bosh', 'a message reaches the SASL2 BOSH session');
});

t.test('a session started on WebSocket resumes inline over BOSH with what it missed, and back onto WebSocket', async (t) => {
  const ws = await RawWsClient.connect(server.wsUrl);
  await ws.openStream();
  ws.send(authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, bind: { tag: 'roam', sm: true } }).toString());
  const success = await ws.next();
  const jid = success.getChildText('authorization-identifier')!;
  const smid = success.getChild('bound', NS.BIND2)?.getChild('enabled', NS.SM)?.attr('id');
  t.ok(smid, 'resumable SM enabled inline on WebSocket');
  ws.ws.terminate();
  await eventually(() => server.app.sessions.get('localhost', 'alice', jid.split('/')[1]!)?.conn === null, { message: 'alice hibernating' });
  await bobSends(jid, 'missed-1');

  const bosh = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bosh.destroy());
  await bosh.create();
  const res = await bosh.send({}, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, resume: { previd: smid!, h: 0 }, bind: { tag: 'roam', sm: true } }));
  const all = await collect(bosh, (els) => els.some((el) => el.local === 'message'), payloads(res.body));
  const resumed = all.find((el) => el.is('success', NS.SASL2));
  t.equal(resumed?.getChild('resumed', NS.SM)?.attr('previd'), smid, '<success/> over BOSH carries <resumed/>');
  t.notOk(resumed?.getChild('bound', NS.BIND2), 'no new bind');
  t.equal(resumed?.getChildText('authorization-identifier'), jid, 'the same full JID');
  t.equal(all.find((el) => el.local === 'message')?.attr('id'), 'missed-1', 'the message sent while away is resent over BOSH');

  // Back onto WebSocket: the BOSH session is left without a word, as a reloaded page leaves it.
  const back = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => back.close());
  await back.openStream();
  back.send(authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, resume: { previd: smid!, h: 1 }, bind: { tag: 'roam' } }).toString());
  const again = await back.next();
  t.ok(again.getChild('resumed', NS.SM), 'resumed inline on WebSocket again, taking the session from BOSH');
  t.equal(again.getChildText('authorization-identifier'), jid, 'still the same full JID');
});

t.test('FAST over BOSH: a token requested at the password login logs a new BOSH session in and resumes inline, no password', async (t) => {
  const agent = '0f1e2d3c-4b5a-4697-8877-665544332211';
  const first = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => first.destroy());
  await first.create();
  const res = await first.send({}, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent, bind: { tag: 'fast', sm: true }, requestToken: true }));
  const all = await collect(first, has('success', NS.SASL2), payloads(res.body));
  const success = all.find((el) => el.is('success', NS.SASL2))!;
  const token = success.getChild('token', NS.FAST)?.attr('token');
  t.ok(token, '<success/> over BOSH carries the FAST token asked for');
  const jid = success.getChildText('authorization-identifier')!;
  const smid = success.getChild('bound', NS.BIND2)?.getChild('enabled', NS.SM)?.attr('id');
  t.ok(smid, 'resumable SM enabled inline');
  // The page reloads: its BOSH session is left without a word, the server sees it go quiet.
  first.destroy();
  await bobSends(jid, 'while-reloading');

  const again = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => again.destroy());
  await again.create();
  const res2 = await again.send({}, authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token!), agent, fast: true, resume: { previd: smid!, h: 0 }, bind: { tag: 'fast', sm: true } }));
  const got = await collect(again, (els) => els.some((el) => el.local === 'message'), payloads(res2.body));
  const resumed = got.find((el) => el.is('success', NS.SASL2));
  t.equal(resumed?.getChildText('additional-data'), htServerProof(token!), 'the server proves it knows the token (HT-SHA-256-NONE)');
  t.equal(resumed?.getChild('resumed', NS.SM)?.attr('previd'), smid, 'the token login resumed the session inline');
  t.equal(resumed?.getChildText('authorization-identifier'), jid, 'the same full JID');
  t.equal(got.find((el) => el.local === 'message')?.attr('id'), 'while-reloading', 'the message sent during the reload arrives over the new BOSH session');
});
