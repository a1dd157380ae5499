/**
 * The parser caps the namespace declarations in scope (convert.ts, 64) so
 * prefix lookups stay cheap. A stored message is the accepted one with an
 * explicit xmlns the server adds (one more binding): read back from
 * offline storage it must not hit the cap the client's input was held to,
 * or it is stored, never delivered, and keeps counting against its
 * recipient's offline quota.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

/** 30 prefixes declared on the message and 32 on its child: 64 bindings in scope with `xml` and the default. */
const decls = (from: number, n: number): string => Array.from({ length: n }, (_, i) => `xmlns:p${from + i}='urn:example:${from + i}'`).join(' ');
const message = (to: string, id: string): string =>
  `<message to='${to}' type='chat' id='${id}' ${decls(0, 30)}><body>${id}</body><x xmlns='urn:example:x' ${decls(30, 31)}/></message>`;

t.test('a message with as many namespace declarations in scope as input allows is delivered from offline storage', async (t) => {
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'a');
  alice.send(message('bob@localhost', 'm1'));
  alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
  const sync = await alice.until((el) => el.attr('id') === 'sync' || el.attr('id') === 'm1' || el.local === 'error');
  t.equal(sync.attr('id'), 'sync', `taken without an error: ${sync.toString().slice(0, 200)}`);
  t.equal(await server.storage.offline.count('localhost', 'bob'), 1, 'stored offline');
  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'b');
  bob.send("<presence xmlns='jabber:client'/>");
  const got = await bob.until((el) => el.local === 'message');
  t.equal(got.getChildText('body'), 'm1');
});
