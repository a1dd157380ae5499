import t from 'tap';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';
import { plain } from '../helpers/scram-client.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', BOSH_INACTIVITY: '2' });

const SM = NS.SM;
const isMsg = (el: XmlElement) => el.local === 'message';

/** A ping round-trip: everything sent before it has been routed. */
async function roundTrip(c: RawWsClient): Promise<void> {
  c.send(`<iq xmlns='jabber:client' type='get' id='rt'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until((el) => el.attr('id') === 'rt');
}

/** Polls a BOSH session, collecting every payload, until `done` holds. */
async function collect(c: RawBoshClient, done: (all: XmlElement[]) => boolean, ms = 5000): Promise<XmlElement[]> {
  const all: XmlElement[] = [];
  let terminated: string | undefined;
  await eventually(async () => {
    if (done(all)) return true;
    const res = await c.send();
    if (res.body?.attr('type') === 'terminate') terminated = res.text;
    else all.push(...payloads(res.body));
    return terminated !== undefined || done(all);
  }, { timeout: ms, interval: 0, message: () => `the payloads; got ${all.map(String).join(' ')}` });
  if (terminated !== undefined) throw new Error(`terminated: ${terminated}`);
  return all;
}

t.test('a WebSocket session resumes over BOSH and gets what it missed', async (t) => {
  const ws = await RawWsClient.connect(server.wsUrl);
  await ws.login('alice', 'alice-pw', 'roaming');
  ws.send(`<enable xmlns='${SM}' resume='true'/>`);
  const smid = (await ws.next()).attr('id')!;
  ws.ws.terminate();
  await ws.waitClosed();
  const bob = await RawWsClient.connect(server.wsUrl);
  await bob.login('bob', 'bob-pw');
  for (let i = 1; i <= 3; i++) bob.send(`<message xmlns='jabber:client' to='alice@localhost/roaming' type='chat' id='w${i}'><body>${i}</body></message>`);
  await roundTrip(bob);
  const before = server.app.sessions.get('localhost', 'alice', 'roaming');

  const bosh = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bosh.destroy());
  await bosh.create();
  await bosh.send({}, x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, plain('alice', 'alice-pw')));
  const restarted = await bosh.restart();
  t.ok(restarted.body?.getChild('features', NS.STREAM)?.getChild('sm', SM), 'sm is offered over BOSH');
  const first = await bosh.send({}, x('resume', { xmlns: SM, previd: smid, h: 0 }));
  const got = [...payloads(first.body)];
  const all = got.some(isMsg) && got.filter(isMsg).length >= 3 ? got : got.concat(await collect(bosh, (a) => a.filter(isMsg).length + got.filter(isMsg).length >= 3));
  t.ok(all.find((el) => el.local === 'resumed' && el.ns === SM), 'resumed over BOSH');
  t.same(all.filter(isMsg).map((m) => m.attr('id')), ['w1', 'w2', 'w3'], 'each missed message once, in order');
  t.equal(server.app.sessions.get('localhost', 'alice', 'roaming'), before, 'the same session, now on BOSH');
  t.equal(before?.transport, 'bosh');
  bob.close();
});

t.test('a BOSH session resumes over WebSocket after a reload, taking over the old BOSH connection', async (t) => {
  const bosh = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => bosh.destroy());
  const jid = await bosh.login('alice', 'alice-pw', 'widget');
  const enabled = await bosh.send({}, x('enable', { xmlns: SM, resume: 'true' }));
  const smid = payloads(enabled.body).find((el) => el.local === 'enabled')?.attr('id');
  t.ok(smid, 'SM enabled over BOSH');
  // The page goes away: no more requests. Bob writes meanwhile.
  const bob = await RawWsClient.connect(server.wsUrl);
  await bob.login('bob', 'bob-pw');
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='b1'><body>one</body></message>`);
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='b2'><body>two</body></message>`);
  await roundTrip(bob);

  const ws = await RawWsClient.connect(server.wsUrl);
  await ws.authenticate('alice', 'alice-pw');
  ws.send(`<resume xmlns='${SM}' previd='${smid}' h='0'/>`);
  t.ok((await ws.until((el) => el.ns === SM)).is('resumed', SM), 'resumed over WebSocket');
  const ids = [(await ws.until(isMsg)).attr('id'), (await ws.until(isMsg)).attr('id')];
  t.same(ids, ['b1', 'b2']);
  // The old BOSH session is over: its sid now answers with a terminal condition.
  const late = await bosh.send();
  t.equal(late.body?.attr('type'), 'terminate', 'the replaced BOSH session is terminated');
  ws.close();
  bob.close();
});
