/**
 * The bound on a BOSH session's unprocessed input (two bodies; beyond it a request is overactivity,
 * XEP-0124 §11 policy-violation) holds for requests that arrive out of order too (§14.2): a later
 * rid that waited for the gap before it is judged when it is processed, with the input of the
 * request that filled the gap already counted. It used to be taken unchecked.
 */
import t from 'tap';
import { flowServer } from '../helpers/flow.js';
import { RawBoshClient, terminalCondition } from '../helpers/bosh-client.js';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { eventually } from '../helpers/eventually.js';

const pings = (tag: string): XmlElement[] =>
  Array.from({ length: 40 }, (_, i) => x('iq', { xmlns: NS.CLIENT, type: 'get', id: `${tag}${i}` }, x('ping', { xmlns: NS.PING })));

t.test('a request that waited for a gap is held to the input bound when it is processed: policy-violation, as in order', async (t) => {
  const server = await flowServer(t, { MAX_STANZA_SIZE: '4096', MAX_INBOUND_BYTES_PER_SECOND: '1024', MAX_INBOUND_BURST_BYTES: '1024' }, ['dave']);
  const dave = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => dave.destroy());
  await dave.login('dave', 'd', 'r');
  // Each body is about 3.7 KiB; at 1 KiB/s most of the first is still unprocessed when the next two come.
  const first = await dave.send({}, ...pings('a'));
  t.equal(terminalCondition(first), undefined, 'the first body is taken');
  const second = dave.body({}, ...pings('b'));
  const third = dave.raw(dave.body({}, ...pings('c')));
  await eventually(() => server.app.bosh.stats().pending === 1, { message: 'the third body waiting for the gap' });
  const secondRes = dave.raw(second);
  const thirdRes = await third;
  t.equal(terminalCondition(thirdRes), 'policy-violation', `the third body is past the bound once the second is in (${thirdRes.text.slice(0, 200)})`);
  t.equal(terminalCondition(await secondRes), 'other-request', 'the second, held, learns that the session ended');
  await eventually(() => server.app.bosh.stats().sessions === 0, { message: 'the BOSH session to end' });
});
