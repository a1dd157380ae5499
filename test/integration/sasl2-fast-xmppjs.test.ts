/**
 * FAST (XEP-0484) with @xmpp/client 0.14, unmodified, over WebSocket: it
 * requests a token at its first SASL2 login, keeps it through its own
 * fetchToken/saveToken hooks, and logs in with HT-SHA-256-NONE and the
 * token alone afterwards: after a cut socket (resuming inline), and as a
 * new page load (a new client with only the token).
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { createClient, cutOff, ping, serverHibernates, sleep, start, within, xml, type XmlEl, type XmppJsClient } from '../helpers/xmppjs.js';

const NS_SASL2 = 'urn:xmpp:sasl:2';
const NS_FAST = 'urn:xmpp:fast:0';
const NS_SM = 'urn:xmpp:sm:3';

interface Token { mechanism: string; token: string; expiry: string }
interface Fast { fetch(): Promise<Token | undefined>; fetchToken(): Promise<Token | undefined>; saveToken(t: Token): Promise<void> }
type Done = (credentials: { username: string; password?: string; token?: Token }, mechanism: string, userAgent: XmlEl) => Promise<void>;

/**
 * A page that keeps only the FAST token (the demo's way): its credentials
 * callback counts how often it had to ask for the password.
 */
function page(tt: Parameters<typeof createClient>[0], server: Parameters<typeof createClient>[1], agentId: string, store: { token?: Token }, keepsPassword = false) {
  const asked = { password: 0 };
  const agent = xml('user-agent', { id: agentId });
  const s = createClient(tt, server, {
    resource: 'page',
    credentials: (async (done: Done, mechanisms: string[], fast: Fast | null) => {
      const token = await fast?.fetch();
      // With the password at hand too, xmpp.js falls back to it when the token is refused.
      if (token) return done({ username: 'alice', token, password: keepsPassword ? 'alice-pw' : undefined }, mechanisms[0]!, agent);
      asked.password++;
      return done({ username: 'alice', password: 'alice-pw' }, mechanisms[0]!, agent);
    }) as never,
  });
  const fast = (s.xmpp as unknown as { fast: Fast }).fast;
  fast.fetchToken = async () => store.token;
  fast.saveToken = async (token) => { store.token = token; };
  return { s, asked };
}

const successes = (s: XmppJsClient, from = 0): XmlEl[] => s.received.slice(from).filter((el) => el.is('success', NS_SASL2));
const authenticates = (s: XmppJsClient, from = 0): XmlEl[] => s.sent.slice(from).filter((el) => el.is('authenticate', NS_SASL2));

t.test('a token is issued at the first login and a new page logs in with it alone; after a cut socket it resumes inline without the password', async (t) => {
  const server = await withUsers(t, ['alice'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true' });
  const store: { token?: Token } = {};
  const agentId = '5d9f6f0e-6a4b-4c3d-9e2f-1a2b3c4d5e6f';
  const first = page(t, server, agentId, store);
  await start(first.s, 'alice with her password');
  t.equal(first.asked.password, 1, 'the first login needs the password');
  t.equal(authenticates(first.s)[0]?.getChild('request-token', NS_FAST)?.attrs.mechanism, 'HT-SHA-256-NONE', 'xmpp.js asked for a HT-SHA-256-NONE token');
  const issued = successes(first.s)[0]?.getChild('token', NS_FAST);
  t.ok(issued?.attrs.token, '<success/> carries <token/>');
  t.ok(Date.parse(issued?.attrs.expiry ?? '') > Date.now() + 13 * 86400_000, 'expiring in FAST_TOKEN_TTL (14 days by default)');
  t.equal(store.token?.token, issued?.attrs.token, 'xmpp.js saved it');
  await first.s.xmpp.stop();

  const second = page(t, server, agentId, store);
  await start(second.s, 'alice with her token');
  t.equal(second.asked.password, 0, 'the password was not asked');
  const auth = authenticates(second.s)[0];
  t.equal(auth?.attrs.mechanism, 'HT-SHA-256-NONE', 'the login used HT-SHA-256-NONE');
  t.ok(auth?.getChild('fast', NS_FAST), 'with <fast/>');
  t.ok(successes(second.s)[0]?.getChildText('additional-data'), 'the server proved it knows the token (xmpp.js checked the Responder HMAC)');
  await ping(second.s);

  const jid = String(second.s.xmpp.jid);
  second.s.xmpp.reconnect.delay = 100;
  const resumed = new Promise<void>((resolve) => second.s.xmpp.streamManagement.once('resumed', resolve));
  const from = second.s.received.length;
  const sentFrom = second.s.sent.length;
  cutOff(second.s);
  await serverHibernates(server, jid);
  await within(resumed, 'the inline resumption with the token');
  t.equal(second.asked.password, 0, 'still no password after the cut');
  const again = authenticates(second.s, sentFrom)[0];
  t.equal(again?.attrs.mechanism, 'HT-SHA-256-NONE', 'the reconnection authenticated with the token');
  t.ok(again?.getChild('resume', NS_SM), 'and resumed inline');
  t.ok(successes(second.s, from)[0]?.getChild('resumed', NS_SM), 'in one round trip: <resumed/> inside <success/>');
});

t.test('an expired token is refused with credentials-expired and xmpp.js falls back to its password, getting a new token', async (t) => {
  const server = await withUsers(t, ['alice'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true', FAST_TOKEN_TTL: '1' });
  const store: { token?: Token } = {};
  const agentId = '6e0a7a1f-7b5c-4d4e-8f30-2b3c4d5e6f70';
  const first = page(t, server, agentId, store);
  await start(first.s, 'alice with her password');
  const old = store.token!;
  t.ok(old, 'a token was issued');
  await first.s.xmpp.stop();
  await sleep(1100);
  // xmpp.js skips a token it knows has expired; this page's store hides the expiry, so the server must refuse it.
  const second = page(t, server, agentId, { token: { ...old, expiry: new Date(Date.now() + 86400_000).toISOString() } }, true);
  const credentials = second.s.xmpp as unknown as { fast: Fast };
  let fetched = 0;
  const fetchToken = credentials.fast.fetchToken;
  credentials.fast.fetchToken = async () => (fetched++ === 0 ? fetchToken() : undefined);
  const saved: Token[] = [];
  credentials.fast.saveToken = async (token) => { saved.push(token); };
  await start(second.s, 'alice with an expired token');
  const failure = second.s.received.find((el) => el.is('failure', NS_SASL2));
  t.ok(failure?.getChild('credentials-expired', 'urn:ietf:params:xml:ns:xmpp-sasl'), 'the token login failed with credentials-expired');
  const auths = authenticates(second.s);
  t.same(auths.map((a) => a.attrs.mechanism), ['HT-SHA-256-NONE', 'SCRAM-SHA-1'], 'then xmpp.js logged in with SCRAM');
  t.ok(auths[1]?.getChild('request-token', NS_FAST), 'asking for a new token');
  t.equal(saved.length, 1, 'and got one');
  t.not(saved[0]?.token, old.token, 'a different token');
});

t.test('rotation: a token past half its life gets a successor at login, the successor logs in, and the first token replayed is refused and counted', async (t) => {
  const server = await withUsers(t, ['alice'], { SASL2_ENABLED: 'true', ALLOW_INSECURE_PLAIN: 'true', FAST_TOKEN_TTL: '4' });
  const store: { token?: Token } = {};
  const agentId = '7f1b8b2a-8c6d-4e5f-9a41-3c4d5e6f7a8b';
  const first = page(t, server, agentId, store);
  await start(first.s, 'alice with her password');
  const t1 = store.token!;
  await first.s.xmpp.stop();
  await sleep(2100);

  const second = page(t, server, agentId, store);
  await start(second.s, 'alice with her first token, past half its life');
  t.equal(second.asked.password, 0, 'no password');
  t.notOk(authenticates(second.s)[0]?.getChild('request-token', NS_FAST), 'xmpp.js did not ask for a token');
  const t2 = successes(second.s)[0]?.getChild('token', NS_FAST)?.attrs.token;
  t.ok(t2 && t2 !== t1.token, 'the server rotated it: a new token in <success/>');
  t.equal(store.token?.token, t2, 'xmpp.js saved the new token');
  await second.s.xmpp.stop();

  const third = page(t, server, agentId, store);
  await start(third.s, 'alice with the rotated token');
  t.equal(third.asked.password, 0, 'the new token logs in');
  t.equal(authenticates(third.s)[0]?.attrs.mechanism, 'HT-SHA-256-NONE');
  await third.s.xmpp.stop();

  const metric = async (): Promise<number> => Number(/xmpp_fast_tokens_total\{event="replayed"\} (\d+)/.exec(await (await fetch(`${server.httpUrl}/metrics`)).text())?.[1] ?? 0);
  const before = await metric();
  const replay = page(t, server, agentId, { token: { ...t1, expiry: new Date(Date.now() + 86400_000).toISOString() } }, true);
  await start(replay.s, 'alice replaying her first token');
  const failure = replay.s.received.find((el) => el.is('failure', NS_SASL2));
  t.ok(failure?.getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-sasl'), 'the first token, replayed after its successor was used, is refused');
  t.equal(await metric(), before + 1, 'and counted as replayed');
  t.same(authenticates(replay.s).map((a) => a.attrs.mechanism), ['HT-SHA-256-NONE', 'SCRAM-SHA-1'], 'the client fell back to its password');
});
