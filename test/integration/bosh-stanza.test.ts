/**
 * Interop: StanzaJS 12 over BOSH only (its two-channel BOSH transport,
 * hold=2 asked, hold=1 granted) against the gateway, chatting with a
 * WebSocket client. StanzaJS uses Node's fetch, so no shim is needed.
 */
import t from 'tap';
import * as XMPP from 'stanza';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { within } from '../helpers/eventually.js';

const WAIT_MS = 8000;

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '10' });

t.test('StanzaJS logs in over BOSH and exchanges messages with a WebSocket client', async (t) => {
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  const bobJid = await bob.login('bob', 'bob-pw', 'ws');

  const client = XMPP.createClient({
    jid: 'alice@localhost',
    password: 'alice-pw',
    resource: 'stanza-bosh',
    transports: { websocket: false, bosh: `${server.httpUrl}/http-bind` },
  });
  const features: string[] = [];
  client.on('raw', (direction, data) => { if (direction === 'outgoing' && data.includes('<auth')) features.push(data); });
  t.teardown(() => { if (client.sessionStarted) void client.disconnect(); });
  const started = new Promise<void>((resolve, reject) => {
    client.once('session:started', () => resolve());
    client.once('auth:failed', () => reject(new Error('StanzaJS authentication failed')));
  });
  client.connect();
  await within(started, 'the StanzaJS session to start', WAIT_MS);
  t.equal(client.jid, 'alice@localhost/stanza-bosh', 'bound the requested resource');
  t.equal(client.transport?.constructor.name, 'BOSH', 'StanzaJS is on its BOSH transport');
  t.match(features.join(''), /mechanism="SCRAM-SHA-/, 'StanzaJS authenticated with SCRAM');
  t.equal(server.app.sessions.get('localhost', 'alice', 'stanza-bosh')?.transport, 'bosh');

  client.sendMessage({ to: bobJid, type: 'chat', body: 'from StanzaJS over BOSH' });
  const atBob = await bob.until((el) => el.local === 'message');
  t.equal(atBob.getChildText('body'), 'from StanzaJS over BOSH');
  t.equal(atBob.attr('from'), 'alice@localhost/stanza-bosh');

  const received = new Promise<XMPP.Stanzas.Message>((resolve) => client.once('message', resolve));
  bob.send(`<message xmlns='jabber:client' to='alice@localhost/stanza-bosh' type='chat'><body>from WebSocket</body></message>`);
  const msg = await within(received, 'the message at StanzaJS', WAIT_MS);
  t.equal(msg.body, 'from WebSocket');
  t.equal(msg.from, bobJid);

  // StanzaJS sends type='terminate' and reports the server's terminate body.
  const terminated = new Promise<void>((resolve) => client.once('bosh:terminate', () => resolve()));
  void client.disconnect();
  await within(terminated, "the server's terminate body at StanzaJS", WAIT_MS);
  t.equal(server.app.sessions.get('localhost', 'alice', 'stanza-bosh'), undefined, 'the terminate ended the session on the server');
});
