/**
 * Namespaces in XML 1.0 §4: a qualified name's local part is an NCName,
 * which starts like a Name (a letter or '_'), not with '-', '.', a digit
 * or a combining character. `<c:-d/>` or `p:.a='1'` is a well-formed XML
 * 1.0 Name but not namespace-well-formed: relayed, a namespace-aware
 * parser at the recipient (a browser's DOMParser, xmldom) refuses it. The
 * sender's stream ends with not-well-formed and nothing reaches anyone.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { NS } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });

const cases: Array<[string, string]> = [
  ['an element whose local part starts with "-"', `<c:-d xmlns:c='urn:example:c'/>`],
  ['an element whose local part starts with a digit', `<c:1d xmlns:c='urn:example:c'/>`],
  ['an attribute whose local part starts with "."', `<x xmlns='urn:example:x' xmlns:p='urn:example:p' p:.a='1'/>`],
  ['a prefix declaration whose prefix is no NCName', `<x xmlns='urn:example:x' xmlns:-p='urn:example:p'/>`],
  ['a combining character after the colon', `<c:\u0301d xmlns:c='urn:example:c'/>`],
];

for (const [name, payload] of cases) {
  t.test(`${name} is not-well-formed, and nothing is relayed`, async (t) => {
    const bob = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => bob.close());
    const bobJid = await bob.login('bob', 'bob-pw', 'b');
    const alice = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => alice.close());
    await alice.login('alice', 'alice-pw', 'a');
    alice.send(`<message xmlns='jabber:client' to='${bobJid}' type='chat' id='q'><body>q</body>${payload}</message>`);
    const err = await alice.until((el) => el.local === 'error' && el.ns === NS.STREAM);
    t.equal(streamErrorCondition(err), 'not-well-formed');
    bob.send("<iq xmlns='jabber:client' type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>");
    await bob.until((el) => el.attr('id') === 'sync');
    t.notOk(bob.frames.some((el) => el.attr('id') === 'q'), 'bob got nothing');
  });
}
