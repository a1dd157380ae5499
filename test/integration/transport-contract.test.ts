/**
 * What every transport owes a client, run over each adapter of
 * ../helpers/transport-clients.ts (RFC 7395 WebSocket and XEP-0124/0206
 * BOSH), as graphql-ws runs one suite over every socket: stream features,
 * SASL and bind, ping, a message round trip, the stream errors for
 * malformed and oversized input, a clean close, and stream management
 * resumed on a new connection. Framing, the rid window, keys, held
 * requests and the subprotocol stay in websocket.test.ts and bosh.test.ts.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { waitUntil } from '../helpers/eventually.js';
import { withUsers } from '../helpers/server.js';
import { TRANSPORTS } from '../helpers/transport-clients.js';

const server = await withUsers(t, { alice: 'alice-secret', bob: 'bob-secret' }, {
  ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '1', SM_RESUME_TIMEOUT: '30',
});
const ping = (id: string) => `<iq xmlns='jabber:client' type='get' id='${id}' to='localhost'><ping xmlns='${NS.PING}'/></iq>`;
const chat = (to: string, id: string, body: string) => `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${body}</body></message>`;

for (const transport of TRANSPORTS) {
  const connect = (tt: Parameters<typeof transport.connect>[0]) => transport.connect(tt, server);

  t.test(`${transport.name}: opening the stream offers the SASL mechanisms in the stream features`, async (t) => {
    const c = await connect(t);
    const features = await c.open();
    t.ok(features.is('features', NS.STREAM));
    const mechs = features.getChild('mechanisms', NS.SASL)?.getChildren('mechanism').map((m) => m.text());
    t.same(mechs, ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'], 'SCRAM first; PLAIN because ALLOW_INSECURE_PLAIN is set');
  });

  t.test(`${transport.name}: an unknown host gets host-unknown`, async (t) => {
    const c = await connect(t);
    await c.open('example.org').catch(() => undefined); // BOSH has no features to give; WebSocket sends the header first
    t.equal(await c.streamError(), 'host-unknown');
  });

  t.test(`${transport.name}: a stanza before authentication gets not-authorized`, async (t) => {
    const c = await connect(t);
    await c.open();
    await c.send(chat('bob@localhost', 'early', 'too early'));
    t.equal(await c.streamError(), 'not-authorized');
  });

  t.test(`${transport.name}: SASL PLAIN and bind give the requested full JID, on this transport`, async (t) => {
    const c = await connect(t);
    t.equal(await c.login('alice', 'alice-secret', 'contract'), 'alice@localhost/contract');
    t.equal(server.app.sessions.get('localhost', 'alice', 'contract')?.transport, transport.name);
    const other = await connect(t);
    t.match(await other.login('bob', 'bob-secret'), /^bob@localhost\/.+/, 'without a resource the server picks one');
    await c.close();
    await other.close();
  });

  t.test(`${transport.name}: a ping to the server gets a result`, async (t) => {
    const c = await connect(t);
    await c.login('alice', 'alice-secret', 'pinger');
    await c.send(ping('p1'));
    const pong = await c.until((el) => el.attr('id') === 'p1');
    t.equal(pong.local, 'iq');
    t.equal(pong.attr('type'), 'result');
    await c.close();
  });

  t.test(`${transport.name}: two sessions exchange messages both ways (bare and full JID), with from stamped by the server`, async (t) => {
    const a = await connect(t);
    const b = await connect(t);
    const aj = await a.login('alice', 'alice-secret', 'chat-a');
    const bj = await b.login('bob', 'bob-secret', 'chat-b');
    await b.send(`<presence xmlns='jabber:client'/>`);
    await b.until((el) => el.local === 'presence');
    await a.send(chat('bob@localhost', 'm1', 'hi &amp; hello')); // to the bare JID: bob's available resource gets it
    const atBob = await b.until((el) => el.local === 'message');
    t.equal(atBob.attr('from'), aj, 'from is the sender\'s full JID');
    t.equal(atBob.getChildText('body'), 'hi & hello');
    await b.send(chat(aj, 'm2', 'back'));
    const atAlice = await a.until((el) => el.local === 'message');
    t.equal(atAlice.attr('from'), bj);
    t.equal(atAlice.getChildText('body'), 'back');
    await a.close();
    await b.close();
  });

  t.test(`${transport.name}: malformed XML ends the stream with not-well-formed`, async (t) => {
    const c = await connect(t);
    await c.login('alice', 'alice-secret', 'malformed');
    await c.send(`<message xmlns='jabber:client'><body>`);
    t.equal(await c.streamError(), 'not-well-formed');
  });

  t.test(`${transport.name}: an oversized stanza ends the stream with policy-violation and the server keeps serving`, async (t) => {
    const c = await connect(t);
    await c.login('alice', 'alice-secret', 'oversized');
    await c.send(chat('bob@localhost', 'big', 'x'.repeat(300_000)));
    t.equal(await c.streamError(), 'policy-violation');
    const next = await connect(t);
    t.equal(await next.login('alice', 'alice-secret', 'after'), 'alice@localhost/after', 'a new session still works');
    await next.close();
  });

  t.test(`${transport.name}: closing the stream is acknowledged and ends the session`, async (t) => {
    const c = await connect(t);
    await c.login('alice', 'alice-secret', 'leaving');
    await c.close();
    t.ok(await waitUntil(() => server.app.sessions.get('localhost', 'alice', 'leaving') === undefined), 'the server no longer holds alice@localhost/leaving');
  });

  t.test(`${transport.name}: stream management resumes on a new connection and delivers what was missed`, async (t) => {
    const first = await connect(t);
    const jid = await first.login('alice', 'alice-secret', 'roaming');
    await first.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
    const enabled = await first.until((el) => el.ns === NS.SM);
    t.ok(enabled.is('enabled', NS.SM), 'SM is enabled');
    t.equal(enabled.attr('resume'), 'true');
    first.drop();
    const session = server.app.sessions.get('localhost', 'alice', 'roaming');

    const bob = await connect(t);
    await bob.login('bob', 'bob-secret', 'sender');
    await bob.send(chat(jid, 'missed', 'while you were away'));
    await bob.send(ping('routed'));
    await bob.until((el) => el.attr('id') === 'routed'); // bob's message has been routed

    const again = await connect(t);
    const features = await again.authenticate('alice', 'alice-secret');
    t.ok(features.getChild('sm', NS.SM), 'sm is offered after authentication');
    await again.send(`<resume xmlns='${NS.SM}' previd='${enabled.attr('id')}' h='0'/>`);
    t.ok((await again.until((el) => el.ns === NS.SM)).is('resumed', NS.SM), 'resumed');
    const msg = await again.until((el) => el.local === 'message');
    t.equal(msg.attr('id'), 'missed');
    t.equal(msg.getChildText('body'), 'while you were away', 'the message sent while away is delivered');
    t.equal(server.app.sessions.get('localhost', 'alice', 'roaming'), session, 'the same server session goes on');
    await again.close();
    await bob.close();
  });
}
