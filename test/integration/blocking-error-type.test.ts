/**
 * XEP-0191 §3.3 on the raw wire: what the user sends to a JID it blocks is
 * refused with <not-acceptable/> and <blocked xmlns='urn:xmpp:blocking:errors'/>
 * in an <error type='cancel'/>, as the XEP's example shows (and Prosody sends).
 * RFC 6120 §8.3.2: 'cancel' is "do not retry (the error cannot be remedied)";
 * 'modify' would tell the client to change the stanza and send it again, which
 * no change to it can make pass while the block stands.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { availableWs, stanzaErrorCondition } from '../helpers/ws-client.js';
import { NS } from '../../src/xml/index.js';

t.test('a message, an IQ and presence to a blocked JID get not-acceptable of type cancel with <blocked/>', async (t) => {
  const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });
  const alice = await availableWs(t, server.wsUrl, 'alice', 'a');
  await availableWs(t, server.wsUrl, 'bob', 'b');
  alice.send(`<iq xmlns='jabber:client' type='set' id='blk'><block xmlns='${NS.BLOCKING}'><item jid='bob@localhost'/></block></iq>`);
  const done = await alice.until((el) => el.name === 'iq' && el.attr('id') === 'blk');
  t.equal(done.attr('type'), 'result');

  alice.send(`<message xmlns='jabber:client' to='bob@localhost' type='chat' id='o1'><body>x</body></message>`);
  alice.send(`<iq xmlns='jabber:client' to='bob@localhost/b' type='get' id='o2'><ping xmlns='urn:xmpp:ping'/></iq>`);
  alice.send(`<presence xmlns='jabber:client' to='bob@localhost' id='o3'/>`);
  for (const [name, id] of [['message', 'o1'], ['iq', 'o2'], ['presence', 'o3']]) {
    const reply = await alice.until((el) => el.name === name && el.attr('id') === id);
    const error = reply.getChild('error');
    t.equal(reply.attr('type'), 'error', `${name}: an error`);
    t.equal(stanzaErrorCondition(reply), 'not-acceptable', `${name}: not-acceptable`);
    t.ok(error?.getChild('blocked', NS.BLOCKING_ERRORS), `${name}: with <blocked/>`);
    t.equal(error?.attr('type'), 'cancel', `${name}: type='cancel' (XEP-0191 §3.3's example)`);
  }
});
