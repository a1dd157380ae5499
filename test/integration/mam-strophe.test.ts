/**
 * XEP-0313 with strophe.js on a real port (over BOSH, as a strophe.js page
 * would): paging forward and backward across three pages with RSM, and
 * the form's `with` filter, read the way a strophe.js client reads them.
 */
import t from 'tap';
import { Strophe, $iq } from 'strophe.js';
import { installNodeXhr } from '../helpers/node-xhr.js';
import { withUsers } from '../helpers/server.js';
import { login, xml } from '../helpers/xmppjs.js';
import { eventually, within } from '../helpers/eventually.js';

installNodeXhr();
Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';

interface DomEl { getAttribute(name: string): string | null; getElementsByTagName(name: string): ArrayLike<DomEl>; textContent: string | null }
interface Page { bodies: string[]; first: string; last: string; complete: boolean }

const server = await withUsers(t, ['dave', 'erin', 'fred']);
// erin (xmpp.js) writes 21 messages to dave and fred 2; dave reads his archive with strophe.js.
const erin = await login(t, server, { username: 'erin', password: 'erin-pw', resource: 'e' });
const fred = await login(t, server, { username: 'fred', password: 'fred-pw', resource: 'f' });
/** Resolves once dave's archive holds `n` messages (two sessions' messages have no order between them until then). */
const archived = (n: number) => eventually(async () => ((await server.storage.archive.query('localhost', 'dave', { limit: 50, direction: 'forward' })) as { messages: unknown[] }).messages.length === n || undefined,
  { message: `dave's archive to hold ${n} messages` });
for (let i = 0; i < 21; i++) await erin.xmpp.send(xml('message', { to: 'dave@localhost', type: 'chat' }, xml('body', {}, `erin ${i}`)));
await archived(21);
for (let i = 0; i < 2; i++) await fred.xmpp.send(xml('message', { to: 'dave@localhost', type: 'chat' }, xml('body', {}, `fred ${i}`)));
await archived(23);

const conn = new Strophe.Connection(`${server.httpUrl}/http-bind`);
await within(new Promise<void>((resolve, reject) => {
  conn.connect('dave@localhost/strophe', 'dave-pw', (status: number) => {
    if (status === Strophe.Status.CONNECTED) resolve();
    else if ([Strophe.Status.AUTHFAIL, Strophe.Status.CONNFAIL].includes(status)) reject(new Error(`strophe.js login failed: ${status}`));
  });
}), 'strophe.js login of dave');
t.teardown(() => conn.disconnect());

let n = 0;
/** One query: results gathered by a handler on urn:xmpp:mam:2 messages, then the <fin/> of the IQ result. */
async function query(opts: { with?: string; max: number; after?: string; before?: string }): Promise<Page> {
  const queryid = `s${++n}`;
  const bodies: string[] = [];
  const ref = conn.addHandler((m: DomEl) => {
    const result = m.getElementsByTagName('result')[0];
    if (result?.getAttribute('queryid') === queryid) bodies.push(m.getElementsByTagName('body')[0]!.textContent!);
    return true;
  }, MAM, 'message');
  let iq = $iq({ type: 'set' }).c('query', { xmlns: MAM, queryid });
  if (opts.with) iq = iq.c('x', { xmlns: 'jabber:x:data', type: 'submit' }).c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(MAM).up().up().c('field', { var: 'with' }).c('value').t(opts.with).up().up().up();
  iq = iq.c('set', { xmlns: RSM }).c('max').t(String(opts.max)).up();
  if (opts.after !== undefined) iq = iq.c('after').t(opts.after).up();
  if (opts.before !== undefined) iq = opts.before === '' ? iq.c('before').up() : iq.c('before').t(opts.before).up();
  try {
    const reply = await within(new Promise<DomEl>((resolve, reject) => conn.sendIQ(iq, (r: unknown) => resolve(r as DomEl), (e: unknown) => reject(new Error(`query failed: ${e ? Strophe.serialize(e as never) : 'timeout'}`)), 5000)), 'the archive query');
    const fin = reply.getElementsByTagName('fin')[0]!;
    return { bodies, first: fin.getElementsByTagName('first')[0]?.textContent ?? '', last: fin.getElementsByTagName('last')[0]?.textContent ?? '', complete: fin.getAttribute('complete') === 'true' };
  } finally {
    conn.deleteHandler(ref);
  }
}

const erins = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `erin ${from + i}`);

t.test('strophe.js pages forward through three pages of one contact', async (t) => {
  const p1 = await query({ with: 'erin@localhost', max: 8 });
  const p2 = await query({ with: 'erin@localhost', max: 8, after: p1.last });
  const p3 = await query({ with: 'erin@localhost', max: 8, after: p2.last });
  t.same([p1.bodies, p2.bodies, p3.bodies], [erins(0, 8), erins(8, 16), erins(16, 21)]);
  t.same([p1.complete, p2.complete, p3.complete], [false, false, true]);
});

t.test('strophe.js pages backward from the last page through the whole archive', async (t) => {
  const p1 = await query({ max: 9, before: '' });
  const p2 = await query({ max: 9, before: p1.first });
  const p3 = await query({ max: 9, before: p2.first });
  t.same(p1.bodies, [...erins(14, 21), 'fred 0', 'fred 1'], 'the newest nine, oldest first');
  t.same(p2.bodies, erins(5, 14));
  t.same(p3.bodies, erins(0, 5));
  t.same([p1.complete, p2.complete, p3.complete], [false, false, true]);
});
