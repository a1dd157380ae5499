/**
 * vCard-temp (XEP-0054) on the wire: the <vCard/> is stored cut out of the
 * <iq/> that carried it. A prefix the client declared on the <iq/> (legal
 * XML, Namespaces in XML 1.0 §6.1) and used inside the vCard must go with
 * it, or the stored text does not parse when read back, and whoever asks
 * for the vCard (a contact's client fetching avatars) gets an error.
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { NS } from '../../src/xml/index.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true' });
const P = 'urn:example:p';

t.test('a vCard using a prefix declared on its <iq/> reads back whole, for its owner and for others', async (t) => {
  const alice = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => alice.close());
  await alice.login('alice', 'alice-pw', 'a');
  alice.send(`<iq xmlns='jabber:client' xmlns:p='${P}' type='set' id='s'><vCard xmlns='${NS.VCARD}'><FN>Alice</FN><p:x p:a='1'/></vCard></iq>`);
  const set = await alice.until((el) => el.attr('id') === 's');
  if (set.attr('type') === 'error') return t.pass('refused at once, never stored');
  t.equal(set.attr('type'), 'result');

  const bob = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'b');
  bob.send(`<iq xmlns='jabber:client' type='get' id='g' to='alice@localhost'><vCard xmlns='${NS.VCARD}'/></iq>`);
  const other = await bob.until((el) => el.attr('id') === 'g');
  t.equal(other.attr('type'), 'result', `another account reads it: ${other.toString().slice(0, 300)}`);
  t.equal(other.getChild('vCard', NS.VCARD)?.getChild('x', P)?.attr('p:a'), '1', 'with its namespaced content');

  alice.send(`<iq xmlns='jabber:client' type='get' id='own'><vCard xmlns='${NS.VCARD}'/></iq>`);
  const own = await alice.until((el) => el.attr('id') === 'own' || el.ns === NS.STREAM);
  t.equal(own.attr('type'), 'result', `its owner reads it: ${own.toString().slice(0, 300)}`);
  t.equal(own.getChild('vCard', NS.VCARD)?.getChildText('FN'), 'Alice');
});
