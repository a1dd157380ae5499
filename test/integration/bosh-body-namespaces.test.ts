/**
 * XEP-0206 §3 / Namespaces in XML 1.0 §6.1: a prefix a client declares on
 * the BOSH <body/> wrapper is in scope in the stanzas inside it, but the
 * wrapper is not routed. A stanza taken out of it must carry the
 * declarations it uses, or what reaches another client (and what is stored
 * for it, and read back) is not namespace-well-formed: an undeclared prefix.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { payloads, RawBoshClient } from '../helpers/bosh-client.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { NS, parseXml } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '1' });

const P = 'urn:example:p';
/** A body declaring `p` (and the xbosh prefix every client declares), with a stanza that uses it below its root. */
const bodyWith = (bosh: RawBoshClient, to: string, id: string): string =>
  `<body xmlns='${NS.HTTPBIND}' xmlns:xmpp='${NS.XBOSH}' xmlns:p='${P}' rid='${bosh.rid++}' sid='${bosh.sid}'>`
  + `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${id}</body><p:x p:a='1'/></message></body>`;

t.test('a prefix declared on the <body/> goes with the stanza to a BOSH recipient', async (t) => {
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  const bob = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => { alice.destroy(); bob.destroy(); });
  await alice.login('alice', 'alice-pw', 'a');
  const bobJid = await bob.login('bob', 'bob-pw', 'b');
  await alice.raw(bodyWith(alice, bobJid, 'live'));
  let text = '';
  for (let i = 0; i < 20 && !text.includes('live'); i++) text = (await bob.send()).text;
  t.match(text, /live/, 'the message reached bob');
  const body = parseXml(text);
  const message = payloads(body).find((p) => p.local === 'message')!;
  t.equal(message.getChild('x', P)?.attr('p:a'), '1', 'its payload keeps its namespace');
});

t.test('a prefix declared on the <body/> goes with the stanza into offline storage and back', async (t) => {
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  await alice.login('alice', 'alice-pw', 'a2');
  await alice.raw(bodyWith(alice, 'carol@localhost', 'stored'));
  const carol = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => carol.close());
  await carol.login('carol', 'carol-pw', 'c');
  carol.send(`<presence xmlns='jabber:client'/>`);
  const got = await carol.until((el) => el.local === 'message');
  t.equal(got.getChildText('body'), 'stored');
  t.equal(got.getChild('x', P)?.attr('p:a'), '1', 'its payload keeps its namespace');
});
