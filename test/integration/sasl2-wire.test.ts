/**
 * SASL2 and FAST on the raw WebSocket wire (XEP-0388, XEP-0484): the error
 * paths each get their element and condition, and another session on the
 * server carries on untouched.
 */
import t, { type Test } from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { authenticate, failureCondition, htResponse, htServerProof, plainResponse } from '../helpers/sasl2.js';
import { NS, x, type XmlElement } from '../../src/xml/index.js';
import { deriveStoredCredentials } from '../../src/storage/index.js';

const AGENT = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const OTHER_AGENT = '1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d';

const server = await withUsers(t, ['alice', 'bob'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });

async function connect(tt: Test): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  tt.teardown(() => c.close());
  return c;
}

/** Sends an <authenticate/> on a fresh stream; returns the answer. */
async function attempt(tt: Test, el: XmlElement): Promise<{ c: RawWsClient; answer: XmlElement }> {
  const c = await connect(tt);
  const features = await c.openStream();
  tt.ok(features.getChild('authentication', NS.SASL2), 'SASL2 is offered');
  c.send(el.toString());
  return { c, answer: await c.next() };
}

/** Logs alice in with her password (PLAIN over SASL2) and Bind2, asking for a token; returns the token. */
async function tokenFor(tt: Test, agent: string): Promise<string> {
  const { answer } = await attempt(tt, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent, bind: { tag: 'raw' }, requestToken: true }));
  const token = answer.getChild('token', NS.FAST)?.attr('token');
  if (!answer.is('success', NS.SASL2) || !token) throw new Error(`no token: ${answer.toString()}`);
  return token;
}

const tokenLogin = (token: string, agent = AGENT, extra: { requestToken?: boolean } = {}): XmlElement =>
  authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token), agent, fast: true, bind: { tag: 'raw' }, ...extra });

async function fastMetric(event: string): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const m = new RegExp(`xmpp_fast_tokens_total\\{event="${event}"\\} (\\d+)`).exec(text);
  return m ? Number(m[1]) : 0;
}

/** Bob, logged in the legacy way, who must not notice any of it. */
const bob = await RawWsClient.connect(server.wsUrl);
t.teardown(() => bob.close());
await bob.login('bob', 'bob-pw', 'bystander');
let pings = 0;
async function bobUnharmed(tt: Test): Promise<void> {
  const id = `ping-${++pings}`;
  bob.send(`<iq xmlns='jabber:client' type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const reply = await bob.until((el) => el.attr('id') === id);
  tt.equal(reply.attr('type'), 'result', 'another session on the server still works');
}

t.test('a SASL2 login with PLAIN and Bind2: <success/> with the full JID, then the features at once, no restart', async (t) => {
  const { c, answer } = await attempt(t, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, bind: { tag: 'raw', sm: true } }));
  t.ok(answer.is('success', NS.SASL2), '<success xmlns="urn:xmpp:sasl:2"/>');
  t.match(answer.getChildText('authorization-identifier'), /^alice@localhost\/raw\./, 'the full JID');
  t.equal(answer.getChild('bound', NS.BIND2)?.getChild('enabled', NS.SM)?.attr('resume'), 'true', 'SM enabled inline');
  const features = await c.next();
  t.ok(features.is('features', NS.STREAM), 'the stream features follow without a restart');
  t.notOk(features.getChild('bind', NS.BIND), 'no legacy bind: a resource is bound');
  t.notOk(features.getChild('sm', NS.SM), 'no <sm/>: it is enabled already');
  await bobUnharmed(t);
});

t.test('a token login proves the token both ways: <additional-data/> is HMAC(token, Responder)', async (t) => {
  const token = await tokenFor(t, AGENT);
  const { answer } = await attempt(t, tokenLogin(token));
  t.ok(answer.is('success', NS.SASL2), 'the token logs alice in');
  t.equal(answer.getChildText('additional-data'), htServerProof(token), 'the server proof');
});

t.test('a bad token gets <failure><not-authorized/></failure>', async (t) => {
  const before = await fastMetric('unknown');
  const { answer } = await attempt(t, tokenLogin('not-a-token-the-server-issued'));
  t.equal(failureCondition(answer), 'not-authorized', 'SASL2 <failure/> with not-authorized');
  t.equal(await fastMetric('unknown'), before + 1, 'counted as unknown');
  await bobUnharmed(t);
});

t.test('rotation: the old token stays valid until the new one is used; then a replay of it fails and is counted', async (t) => {
  const first = await tokenFor(t, AGENT);
  const rotated = await attempt(t, tokenLogin(first, AGENT, { requestToken: true }));
  const second = rotated.answer.getChild('token', NS.FAST)?.attr('token');
  t.ok(second && second !== first, 'a token login with <request-token/> gets a new token');
  t.ok((await attempt(t, tokenLogin(first))).answer.is('success', NS.SASL2), 'the old token still works while the new one is unused (XEP-0484 §3.4)');
  t.ok((await attempt(t, tokenLogin(second!))).answer.is('success', NS.SASL2), 'the new token works');
  const before = await fastMetric('replayed');
  const { answer } = await attempt(t, tokenLogin(first));
  t.equal(failureCondition(answer), 'not-authorized', 'the old token, replayed after the new one was used, is refused');
  t.equal(await fastMetric('replayed'), before + 1, 'and counted as replayed');
  await bobUnharmed(t);
});

t.test('a token issued to one user agent is refused for another', async (t) => {
  const token = await tokenFor(t, AGENT);
  const before = await fastMetric('wrong-agent');
  const { answer } = await attempt(t, tokenLogin(token, OTHER_AGENT));
  t.equal(failureCondition(answer), 'not-authorized', 'not-authorized');
  t.equal(await fastMetric('wrong-agent'), before + 1, 'counted as wrong-agent');
  t.ok((await attempt(t, tokenLogin(token, AGENT))).answer.is('success', NS.SASL2), 'the token still works for its own user agent');
  await bobUnharmed(t);
});

t.test('a mechanism that is not offered gets invalid-mechanism, channel-binding FAST mechanisms included', async (t) => {
  for (const mechanism of ['DIGEST-MD5', 'HT-SHA-256-ENDP', 'HT-SHA-256-UNIQ']) {
    const { answer } = await attempt(t, authenticate({ mechanism, initial: 'AAAA', agent: AGENT }));
    t.equal(failureCondition(answer), 'invalid-mechanism', `${mechanism}: <failure><invalid-mechanism/></failure>`);
  }
  await bobUnharmed(t);
});

t.test('<authenticate/> before <open/> ends the stream with a stream error', async (t) => {
  const c = await connect(t);
  c.send(authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw') }).toString());
  const error = await c.until((el) => el.is('error', NS.STREAM));
  t.equal(streamErrorCondition(error), 'undefined-condition', 'a stream error: the stream is not open');
  t.ok(await c.until((el) => el.is('close', NS.FRAMING)), 'then <close/> (RFC 7395 §3.6)');
  t.notOk(c.frames.some((el) => el.is('success', NS.SASL2)), 'never a <success/>');
  await bobUnharmed(t);
});

t.test('an inline resumption that fails puts <failed/> into <success/> and the bind goes on (XEP-0386 §3)', async (t) => {
  const { answer } = await attempt(t, authenticate({
    mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: AGENT, resume: { previd: 'no-such-session', h: 0 }, bind: { tag: 'raw', sm: true },
  }));
  t.ok(answer.is('success', NS.SASL2), 'the login itself succeeds');
  t.ok(answer.getChild('failed', NS.SM)?.getChild('item-not-found', NS.STANZAS), '<failed><item-not-found/></failed> inside <success/>');
  t.ok(answer.getChild('bound', NS.BIND2)?.getChild('enabled', NS.SM), 'then <bound/> with a new SM session');
  const children = answer.getChildren().map((c) => c.local);
  t.ok(children.indexOf('failed') < children.indexOf('bound'), '<failed/> before <bound/>, so a client resets its SM state before enabling it anew');
});

t.test('<fast invalidate="true"/> logs in once more and ends the token (XEP-0484 §3.5)', async (t) => {
  const token = await tokenFor(t, AGENT);
  const last = authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('alice', token), agent: AGENT, bind: { tag: 'raw' } });
  last.append(x('fast', { xmlns: NS.FAST, invalidate: 'true' }));
  t.ok((await attempt(t, last)).answer.is('success', NS.SASL2), 'the invalidating login succeeds');
  t.equal(failureCondition((await attempt(t, tokenLogin(token))).answer), 'not-authorized', 'the token no longer logs in');
});

t.test('carbons enabled inside Bind2: a message another resource of the account sends comes back as a <sent/> copy (XEP-0386 §3, XEP-0280)', async (t) => {
  const el = authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: OTHER_AGENT, bind: { tag: 'carbons' } });
  el.getChild('bind', NS.BIND2)!.append(x('enable', { xmlns: NS.CARBONS }));
  const { c, answer } = await attempt(t, el);
  t.ok(answer.is('success', NS.SASL2), 'logged in and bound');
  const other = await connect(t);
  await other.login('alice', 'alice-pw', 'other');
  other.send(`<message xmlns='jabber:client' to='bob@localhost/bystander' type='chat' id='c1'><body>copy me</body></message>`);
  const copy = await c.until((m) => m.local === 'message');
  t.equal(copy.getChild('sent', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message')?.attr('id'), 'c1', 'the <sent/> carbon of the other resource\'s message');
  await bob.until((m) => m.local === 'message' && m.attr('id') === 'c1');
  await bobUnharmed(t);
});

t.test('a token stops working when the password changes, and when the account is deleted (XEP-0484 §3.6)', async (t) => {
  const agent = '5d4c3b2a-1f0e-4d9c-8b7a-695847362514';
  const token = await tokenFor(t, agent);
  t.ok((await attempt(t, tokenLogin(token, agent))).answer.is('success', NS.SASL2), 'the token logs in before');
  const fresh = await tokenFor(t, agent);
  const online = await attempt(t, authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent, bind: { tag: 'online' } }));
  // A new password (as `user passwd` or an account change writes it) ends every token of the account.
  await server.storage.users.setCredentials('localhost', 'alice', await deriveStoredCredentials('alice-pw', server.config.scramIterations));
  t.equal(failureCondition((await attempt(t, tokenLogin(fresh, agent))).answer), 'not-authorized', 'after the password change the token is refused');
  // ... and the sessions logged in before it, once the server reads its change log (every 500 ms): the tests after
  // this one log alice in again, and a login before that read would be ended too.
  t.equal(streamErrorCondition(await online.c.until((e) => e.local === 'error', 5000)), 'reset', 'the session from before the change gets reset');

  await server.addUser('carol', 'carol-pw');
  const { answer } = await attempt(t, authenticate({ mechanism: 'PLAIN', initial: plainResponse('carol', 'carol-pw'), agent, bind: { tag: 'raw' }, requestToken: true }));
  const carols = answer.getChild('token', NS.FAST)?.attr('token');
  t.ok(carols, 'carol got a token');
  await server.storage.users.delete('localhost', 'carol');
  await server.addUser('carol', 'carol-pw');
  const login = authenticate({ mechanism: 'HT-SHA-256-NONE', initial: htResponse('carol', carols!), agent, fast: true, bind: { tag: 'raw' } });
  t.equal(failureCondition((await attempt(t, login)).answer), 'not-authorized', 'a token of a deleted account does not log in its namesake');
  await bobUnharmed(t);
});

t.test('CSI inactive inside Bind2: presence for the new session is held until <active/> (XEP-0386 §3, XEP-0352 §4.2)', async (t) => {
  const el = authenticate({ mechanism: 'PLAIN', initial: plainResponse('alice', 'alice-pw'), agent: '9e8d7c6b-5a49-4382-9716-0a1b2c3d4e5f', bind: { tag: 'csi', sm: true } });
  el.getChild('bind', NS.BIND2)!.append(x('inactive', { xmlns: NS.CSI }));
  const { c, answer } = await attempt(t, el);
  t.ok(answer.is('success', NS.SASL2), 'logged in and bound');
  const jid = answer.getChildText('authorization-identifier')!;
  bob.send(`<presence xmlns='jabber:client' to='${jid}'><status>held</status></presence>`);
  await bobUnharmed(t); // bob's presence has been routed by now
  // An <a/> is written directly, past the CSI filter: if the presence had gone out it would be in front of it.
  c.send(`<r xmlns='${NS.SM}'/>`);
  await c.until((e) => e.is('a', NS.SM));
  t.notOk(c.frames.some((f) => f.local === 'presence'), 'the presence is held while the session is inactive');
  c.send(`<active xmlns='${NS.CSI}'/>`);
  const held = await c.until((e) => e.local === 'presence');
  t.equal(held.getChildText('status'), 'held', '<active/> lets the held presence out');
});
