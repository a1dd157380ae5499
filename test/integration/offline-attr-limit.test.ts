/**
 * A stored message is what the server accepted plus what it added: the
 * `from` it stamps (RFC 6120 §8.1.2.1) and the `xmlns` it stores it with.
 * Read back from offline storage (XEP-0160) or the archive (XEP-0313) it
 * must parse with bounds for what the server writes, not with those of a
 * client's input: a message sent with MAX_XML_ATTRIBUTES attributes (or as
 * deep as MAX_XML_DEPTH allows) was stored, never delivered, and kept
 * filling its recipient's offline quota.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true', MAX_XML_DEPTH: '128' });

/** A chat message with 64 attributes as sent: to, type, id and 61 of its own; no xmlns (the WebSocket default). */
const wide = (to: string, id: string): string =>
  `<message to='${to}' type='chat' id='${id}' ${Array.from({ length: 61 }, (_, i) => `a${i}='${i}'`).join(' ')}><body>${id}</body></message>`;
/** A chat message 100 levels deep, within MAX_XML_DEPTH=128. */
const deep = (to: string, id: string): string =>
  `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${id}</body><x xmlns='urn:example:deep'>${'<x>'.repeat(98)}${'</x>'.repeat(99)}</message>`;

for (const [name, make] of [['with as many attributes as a client may send', wide], ['as deep as MAX_XML_DEPTH allows', deep]] as const) {
  t.test(`a message ${name} is delivered from offline storage`, async (t) => {
    const user = name.startsWith('with') ? 'bob' : 'carol';
    const alice = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => alice.close());
    await alice.login('alice', 'alice-pw', 'a');
    alice.send(make(`${user}@localhost`, 'm1'));
    alice.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
    const sync = await alice.until((el) => el.attr('id') === 'sync' || el.attr('id') === 'm1');
    t.equal(sync.attr('id'), 'sync', 'taken without an error');
    t.equal(await server.storage.offline.count('localhost', user), 1, 'stored offline');
    const rcpt = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => rcpt.close());
    await rcpt.login(user, `${user}-pw`, 'r');
    rcpt.send("<presence xmlns='jabber:client'/>");
    const got = await rcpt.until((el) => el.local === 'message');
    t.equal(got.attr('id'), 'm1');
    t.equal(got.getChildText('body'), 'm1');
  });
}
