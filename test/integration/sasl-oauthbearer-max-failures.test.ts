/**
 * RFC 6120 §6.4.5 — the failure after SASL_MAX_FAILURES retries closes the stream. An OAUTHBEARER
 * attempt with a bad token gets the RFC 7628 §3.2.2 error challenge; a client that never sends the
 * kvsep but starts a new <auth/> has that attempt counted as the failure it is (before, it was never
 * counted), without a <failure/> of its own: each <auth/> gets one outcome (§6.4.5/§6.4.6).
 */
import t from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';

const env = { JWT_SECRET: 'a-web-app-secret-of-at-least-32-characters', SASL_MAX_FAILURES: '2' };
const server = await withUsers(t, ['alice'], env);
const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const bearer = (i: number) => `<auth xmlns='${NS.SASL}' mechanism='OAUTHBEARER'>${b64(`n,a=alice@localhost,\x01auth=Bearer guess${i}\x01\x01`)}</auth>`;

/** Everything the server writes until the stream closes (or 3 s pass). */
async function rest(c: RawWsClient): Promise<XmlElement[]> {
  const out: XmlElement[] = [];
  for (;;) {
    const el = await c.next(3000).catch(() => undefined);
    if (!el) return out;
    out.push(el);
  }
}

t.test('bad bearer tokens without the kvsep count toward SASL_MAX_FAILURES; the stream closes with policy-violation', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', { 'x-forwarded-proto': 'https' });
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  const seen: XmlElement[] = [];
  // Each guess once the last one's error challenge came (no pipelining: that is refused on its own).
  for (let i = 0; i < 6; i++) {
    c.send(bearer(i));
    const el = await c.next(3000).catch(() => undefined);
    if (!el) break;
    seen.push(el);
    if (!el.is('challenge', NS.SASL)) break;
  }
  seen.push(...await rest(c));
  t.equal(seen.filter((el) => el.is('challenge', NS.SASL)).length, 3, 'three error challenges (the first attempt and two retries), then the stream ends');
  t.equal(seen.filter((el) => el.is('failure', NS.SASL)).length, 0, 'no <failure/> for an exchange the client left for a new <auth/>');
  t.ok(seen.some((el) => el.local === 'error' && el.getChild('policy-violation') !== undefined), 'closed with policy-violation (RFC 6120 §6.4.5)');
});

t.test('a new <auth/> after an unacknowledged error challenge gets exactly one answer', async (t) => {
  const c = await RawWsClient.connect(server.wsUrl, 'xmpp', { 'x-forwarded-proto': 'https' });
  t.teardown(() => c.ws.terminate());
  await c.openStream();
  c.send(bearer(9));
  t.ok((await c.next()).is('challenge', NS.SASL), 'the error challenge');
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${b64('\0alice\0alice-pw')}</auth>`);
  const answer = await c.next();
  t.ok(answer.is('success', NS.SASL), `the PLAIN login succeeds, and it is the only answer (got ${answer.toString()})`);
});
