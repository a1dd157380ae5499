/**
 * BOSH without sticky sessions (issue 14 item 4, src/cluster/bosh-forward.ts):
 * two gateways on one Redis database, and BOSH requests of one session that
 * land on either, as behind a round-robin balancer. The node that does not
 * hold the session forwards the request to the one that does.
 */
import t, { type Test } from 'tap';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { startServer, type TestServer } from '../helpers/server.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { RawBoshClient, payloads, post, terminalCondition, type BoshResponse, type PostOptions } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';
import { NS, parseXml, serialize, x, type XmlElement } from '../../src/xml/index.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import { joinCluster, type ClusterNode } from '../../src/cluster/node.js';
import { advertisedUrl, CONNECT_TIMEOUT_MS, createBoshForwarder, forwardLimits, OWNER_URL_WAIT_MS, type ClusterBoshForwarder } from '../../src/cluster/bosh-forward.js';
import { HOP_HEADER } from '../../src/transports/bosh/index.js';
import { loadConfig } from '../../src/config/index.js';
import { scrape, value } from '../helpers/metrics-text.js';

let redis: TestRedis;
t.before(async () => { redis = await startRedis(); });
t.teardown(async () => { await redis.stop(); });

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const USERS = { alice: 'alice-pw', bob: 'bob-pw' };

interface Gateway {
  readonly server: TestServer;
  readonly node: ClusterNode;
  readonly forwarder: ClusterBoshForwarder;
  readonly redis: Redis;
  /** The BOSH endpoint. */
  readonly bosh: string;
  /** What the forwarder warned of, each with its message (`msg`). */
  readonly warnings: object[];
}

async function gateway(url: string, id: string, env: Record<string, string>, sidTtlMs?: number, advertise = true): Promise<Gateway> {
  const client = await connectRedis(url, quiet, id);
  const node = await joinCluster(client, { id, prefix: keyPrefix(url), ttlMs: 5000, log: quiet });
  const settings = { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '10', ...env };
  // The bounds CLUSTER=redis derives from the same settings (src/cluster/index.ts).
  const warnings: object[] = [];
  const log = { warn: (obj: object, msg: string) => void warnings.push({ ...obj, msg }) };
  const forwarder = createBoshForwarder(node, { log, ...forwardLimits(loadConfig(settings)), sidTtlMs });
  const server = await startServer(settings, undefined, { boshForwarder: forwarder });
  for (const [name, password] of Object.entries(USERS)) await server.addUser(name, password);
  if (advertise) await forwarder.advertise(advertisedUrl(server.config, server.port));
  return { server, node, forwarder, redis: client, bosh: `${server.httpUrl}/http-bind`, warnings };
}

/**
 * Two gateways on a database of their own, closed when `t` ends. One that does not advertise its URL is a node
 * just started: its first publish (Fastify's onListen, which does not hold up listen()) still on its way.
 */
async function cluster(t: Test, env: Record<string, string> = {}, sidTtlMs?: number, advertise = { a: true, b: true }): Promise<[Gateway, Gateway]> {
  const url = redis.url();
  const a = await gateway(url, 'a', env, sidTtlMs, advertise.a);
  const b = await gateway(url, 'b', env, sidTtlMs, advertise.b);
  t.teardown(async () => {
    for (const g of [a, b]) {
      if (g.server.app.http.server.listening) await g.server.close();
      await g.forwarder.stop();
      await g.node.stop();
      await g.redis.quit();
    }
  });
  return [a, b];
}

/** A raw BOSH client whose requests go to each URL in turn: a round-robin balancer. */
class Alternating extends RawBoshClient {
  readonly landed: string[] = [];
  #n = 0;

  constructor(readonly urls: readonly string[]) { super(urls[0]!); }

  override raw(body: XmlElement | string | Buffer, opts: PostOptions = {}): Promise<BoshResponse> {
    const url = this.urls[this.#n++ % this.urls.length]!;
    this.landed.push(url);
    return post(url, typeof body === 'string' || Buffer.isBuffer(body) ? body : serialize(body), { agent: this.agent, ...opts });
  }
}

const ping = (id: string): XmlElement => x('iq', { xmlns: NS.CLIENT, type: 'get', id }, x('ping', { xmlns: NS.PING }));
const ids = (res: BoshResponse): string[] => payloads(res.body).map((el) => el.attr('id') ?? '');

async function direct(t: Test, g: Gateway, user: keyof typeof USERS): Promise<{ c: RawBoshClient; jid: string }> {
  const c = new RawBoshClient(g.bosh);
  t.teardown(() => c.destroy());
  return { c, jid: await c.login(user, USERS[user], 'direct', { wait: 2 }) };
}

t.test('a node that has not advertised yet (just started: its onListen write still on its way) forwards all the same', async (t) => {
  const [a, b] = await cluster(t, {}, undefined, { a: true, b: false });
  const alice = new Alternating([a.bosh, b.bosh]);
  t.teardown(() => alice.destroy());
  // Creation on a, SASL on b: b takes the hop secret from Redis, where a put it, and relays.
  t.equal(await alice.login('alice', USERS.alice, 'early', { wait: 2 }), 'alice@localhost/early');
  t.same(ids(await alice.send({}, ping('p1'))), ['p1']);
  t.same(b.forwarder.stats(), { forwarded: 2, notFound: 0, unreachable: 0, refused: 0 }, 'b relayed SASL and bind, reaching a');
});

t.test('a session made on a node that has not advertised yet is served through another node once it does, not ended with item-not-found', async (t) => {
  const [a, b] = await cluster(t, {}, undefined, { a: false, b: true });
  const alice = new Alternating([a.bosh, b.bosh]);
  t.teardown(() => alice.destroy());
  // Creation on a (in Redis, a's URL not yet), SASL on b: b waits for a's URL, which comes 300 ms later.
  const started = Date.now();
  const advertised = new Promise<void>((resolve) => {
    setTimeout(() => void a.forwarder.advertise(advertisedUrl(a.server.config, a.server.port)).then(resolve), 300);
  });
  t.equal(await alice.login('alice', USERS.alice, 'early-owner', { wait: 2 }), 'alice@localhost/early-owner');
  await advertised;
  t.ok(Date.now() - started >= 300, 'the login waited for the URL');
  t.same(ids(await alice.send({}, ping('p1'))), ['p1']);
  t.same(b.forwarder.stats(), { forwarded: 2, notFound: 0, unreachable: 0, refused: 0 }, 'b relayed SASL and bind to a');
  t.same(b.warnings, [], 'nothing to warn of');
});

t.test('a live node that never advertises its URL: a request for its session gets item-not-found after OWNER_URL_WAIT_MS, and the other node says why', async (t) => {
  const [a, b] = await cluster(t, {}, undefined, { a: false, b: true });
  const alice = new RawBoshClient(a.bosh);
  t.teardown(() => alice.destroy());
  await alice.create({ wait: 2 });
  t.ok(alice.sid, 'a session on a');
  const started = Date.now();
  const res = await post(b.bosh, serialize(alice.body()));
  t.equal(terminalCondition(res), 'item-not-found');
  t.ok(Date.now() - started >= OWNER_URL_WAIT_MS, `answered after waiting ${OWNER_URL_WAIT_MS} ms for the URL`);
  t.match(b.warnings, [{ event: 'bosh-owner-without-url', node: 'a' }]);
  t.same(b.forwarder.stats().notFound, 1);
});

t.test('requests of one session alternate between two nodes: login, a held poll, pings in rid order, terminate', async (t) => {
  const [a, b] = await cluster(t);
  const alice = new Alternating([a.bosh, b.bosh]);
  t.teardown(() => alice.destroy());
  // Creation on a, SASL on b, restart on a, bind on b.
  const jid = await alice.login('alice', USERS.alice, 'rr', { wait: 3 });
  t.match(jid, /^alice@localhost\/rr$/);
  t.same([a.server.app.bosh.stats().sessions, b.server.app.bosh.stats().sessions], [1, 0], 'the session lives on the node that created it');

  // A poll held through b, answered by a message that reaches a (bob's session is there).
  const poll = post(b.bosh, serialize(alice.body()), { agent: alice.agent });
  await eventually(() => a.server.app.bosh.stats().held === 1 && b.server.app.bosh.stats().openRequests === 1, { message: 'the poll held on the owner' });
  const bob = await direct(t, a, 'bob');
  // Bob's own request is held up to his 'wait' (nothing comes back to him): not awaited first.
  const sent = bob.c.send({}, x('message', { xmlns: NS.CLIENT, to: jid, type: 'chat', id: 'm1' }, x('body', {}, 'over the hop')));
  const answered = await poll;
  await sent;
  t.equal(answered.status, 200);
  t.equal(answered.headers['content-type'], 'text/xml; charset=utf-8');
  t.equal(payloads(answered.body).find((el) => el.name === 'message')?.getChildText('body'), 'over the hop');

  // Pings, one at a time, on alternating nodes: each answered with its own result.
  for (const id of ['p1', 'p2', 'p3', 'p4']) t.same(ids(await alice.send({}, ping(id))), [id], `${id} answered`);

  // §14.2 across nodes: the later rid reaches a node first and waits on the owner for the earlier one.
  const first = alice.body({}, ping('early'));
  const second = alice.body({}, ping('late'));
  const later = post(b.bosh, serialize(second), { agent: alice.agent });
  await eventually(() => a.server.app.bosh.stats().pending === 1, { message: 'the later rid pending on the owner' });
  const earlier = post(a.bosh, serialize(first), { agent: alice.agent });
  t.same([...ids(await earlier), ...ids(await later)].sort(), ['early', 'late']);

  const bye = await alice.terminate();
  t.equal(bye.body?.attr('type'), 'terminate');
  // Bob's session stays.
  await eventually(() => a.server.app.bosh.stats().sessions === 1, { message: "alice's session gone on the owner" });
  t.equal(await a.redis.exists(`${a.node.prefix}bosh:${alice.sid}`), 0, 'its entry is gone from Redis');
  for (const g of [a, b]) {
    const after = await post(g.bosh, serialize(alice.body()), { agent: alice.agent });
    t.equal(terminalCondition(after), 'item-not-found', `an ended sid on ${g === a ? 'the owner' : 'the other node'}`);
  }
  t.ok(alice.landed.includes(a.bosh) && alice.landed.includes(b.bosh), 'requests reached both nodes');
});

t.test('a forwarded request is counted once in the cluster: one request, its bytes in and out once', async (t) => {
  // Prometheus sums the nodes: the node the client reached counts what the client sent and got;
  // the owner, which got it from a peer, must not count it again.
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  const totals = async () => {
    const [sa, sb] = [await scrape(a.server), await scrape(b.server)];
    const sum = (name: string, labels: Record<string, string> = {}) => value(sa, name, labels) + value(sb, name, labels);
    return {
      requests: sum('xmpp_bosh_requests_total'),
      in: sum('xmpp_received_bytes_total', { transport: 'bosh' }),
      out: sum('xmpp_sent_bytes_total', { transport: 'bosh' }),
    };
  };
  const before = await totals();
  const body = serialize(alice.body({}, ping('hop')));
  const res = await post(b.bosh, body, { agent: alice.agent });
  t.same(ids(res), ['hop'], 'answered through the other node');
  const after = await totals();
  t.equal(after.requests - before.requests, 1, 'one BOSH request');
  t.equal(after.in - before.in, Buffer.byteLength(body), 'the bytes the client sent, once');
  t.equal(after.out - before.out, Buffer.byteLength(res.text), 'the bytes the client got, once');
});

t.test('a sid no node holds gets item-not-found on either node, and reaches no other node', async (t) => {
  const [a, b] = await cluster(t);
  const spy = await headerSpy(t, a.server.httpUrl);
  await a.forwarder.advertise(spy.url);
  const { c: alice } = await direct(t, a, 'alice');
  for (const g of [a, b]) {
    const guess = new RawBoshClient(g.bosh, { sid: 'AAAAAAAAAAAAAAAAAAAAAA', rid: alice.rid });
    t.teardown(() => guess.destroy());
    t.equal(terminalCondition(await guess.send({}, ping('guess'))), 'item-not-found');
  }
  t.equal(spy.seen.length, 0, 'no guess was forwarded');
  // The same request with the real sid, on the node that does not hold it.
  t.same(ids(await post(b.bosh, serialize(alice.body({}, ping('real'))), { agent: alice.agent })), ['real']);
  t.equal(spy.seen.length, 1, 'forwarded to the owner');
});

t.test('a body over the pre-auth limit goes to the owner unparsed: an authenticated session is served through the other node, a sid no node holds gets item-not-found', async (t) => {
  const [a, b] = await cluster(t, { PRE_AUTH_MAX_STANZA_SIZE: '2048' });
  const { c: alice } = await direct(t, a, 'alice');
  const pad = 'x'.repeat(4000);
  const big = x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'big' }, x('ping', { xmlns: NS.PING, pad }));
  t.same(ids(await post(b.bosh, serialize(alice.body({}, big)), { agent: alice.agent })), ['big'], "an authenticated session's large body, through the other node");
  // Not well-formed after the limit: parsed (as it was on the node it reached), it got bad-request.
  const guess = `<body xmlns='${NS.HTTPBIND}' rid='1' sid='AAAAAAAAAAAAAAAAAAAAAA'><message xmlns='jabber:client'><body>${pad}</wrong></message></body>`;
  for (const g of [a, b]) t.equal(terminalCondition(await post(g.bosh, guess)), 'item-not-found', `a guessed sid on ${g === a ? 'a' : 'b'}`);
});

t.test('a body that does not parse reaches the owner of the sid its start tag names, which ends the session with bad-request (XEP-0124 §17.2)', async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  const broken = `<body xmlns='${NS.HTTPBIND}' rid='${alice.rid}' sid='${alice.sid}'><message xmlns='jabber:client'></body>`;
  t.equal(terminalCondition(await post(b.bosh, broken)), 'bad-request', 'answered through the other node');
  await eventually(() => a.server.app.bosh.stats().sessions === 0, { message: 'the session ended on its owner' });
  t.equal(terminalCondition(await post(b.bosh, serialize(alice.body()))), 'item-not-found', 'its sid is gone from the cluster');
});

t.test("the hop header from a client is refused, a peer's request makes no second hop, and a client cannot choose the address the owner sees", async (t) => {
  // No trusted proxy: the client's own X-Forwarded-For must count for nothing anywhere.
  const [a, b] = await cluster(t, { TRUSTED_PROXIES: 'none' });
  const spy = await headerSpy(t, a.server.httpUrl);
  await a.forwarder.advertise(spy.url);
  const { c: alice } = await direct(t, a, 'alice');
  for (const [g, token] of [[a, 'forged'], [b, 'forged'], [b, '']] as const) {
    const res = await post(g.bosh, serialize(alice.body({}, ping('hop'))), { agent: alice.agent, headers: { [HOP_HEADER]: token } });
    t.equal(res.status, 403);
    t.equal(terminalCondition(res), 'policy-violation', `a forged hop to ${g === a ? 'the owner' : 'the other node'} is refused`);
    alice.rid--;
  }
  t.equal(spy.seen.length, 0, 'nothing forged was forwarded');
  // A genuine hop (what a peer sends) to a node that does not hold the sid: answered there, never a second hop.
  const secret = (await b.redis.get(`${b.node.prefix}bosh-hop-secret`))!;
  const hop = await post(b.bosh, serialize(alice.body({}, ping('hop'))), { agent: alice.agent, headers: { [HOP_HEADER]: secret } });
  t.equal(terminalCondition(hop), 'item-not-found');
  t.equal(spy.seen.length, 0, 'a forwarded request is not forwarded again');
  alice.rid--;
  const res = await post(b.bosh, serialize(alice.body({}, ping('real'))), {
    agent: alice.agent, headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https' },
  });
  t.same(ids(res), ['real'], 'the session still works through the other node');
  t.equal(spy.seen.length, 1);
  t.equal(spy.seen[0]!['x-forwarded-for'], '127.0.0.1', "the owner is told the client's real address");
  t.equal(spy.seen[0]!['x-forwarded-proto'], 'http');
  t.equal(String(spy.seen[0]![HOP_HEADER]).length, 64, 'with the cluster proof');
});

t.test('a request for a secure session over plain HTTP that reaches the other node is not read there either: the connection is closed, the session goes on (XEP-0124 §19.1)', async (t) => {
  const [a, b] = await cluster(t, { TRUSTED_PROXIES: '127.0.0.1' });
  const tls = { 'x-forwarded-proto': 'https' };
  // A client behind a TLS-terminating proxy: every request says https.
  class Secure extends RawBoshClient {
    override raw(body: XmlElement | string | Buffer, opts: PostOptions = {}): Promise<BoshResponse> {
      return super.raw(body, { ...opts, headers: { ...tls, ...opts.headers } });
    }
  }
  const alice = new Secure(a.bosh);
  t.teardown(() => alice.destroy());
  await alice.login('alice', USERS.alice, 'tls', { wait: 2 });
  const body = serialize(alice.body({}, ping('p')));
  const plain = await post(b.bosh, body, { agent: alice.agent }).then((r) => `HTTP ${r.status}: ${r.text}`, (err: Error) => err);
  t.type(plain, Error, 'the other node closed the connection: no response, no terminate');
  t.same(ids(await post(b.bosh, body, { agent: alice.agent, headers: tls })), ['p'], 'the same rid over HTTPS through the other node: the session lives');
});

t.test('a dead owner gives item-not-found at once; an unreachable live owner remote-connection-failed', async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  const key = `${a.node.prefix}bosh:${alice.sid}`;
  // Unreachable: a's advertised address has nobody listening.
  await a.forwarder.advertise(`http://127.0.0.1:${await closedPort()}`);
  t.equal(terminalCondition(await post(b.bosh, serialize(alice.body()), { agent: alice.agent, timeout: 5000 })), 'remote-connection-failed');
  // Dead: a's lease is gone (what the others see of a crash) while its sid entry is still there.
  await a.node.stop();
  t.equal(await b.redis.exists(key), 1, 'the entry outlives its node until its TTL');
  t.equal(terminalCondition(await post(b.bosh, serialize(alice.body()), { agent: alice.agent, timeout: 5000 })), 'item-not-found');
});

t.test('an owner that dies while it holds a forwarded request (its machine gone: no answer, no cut): the client is let go at once, and the rid again gets item-not-found', async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  // a's machine as it vanishes: the connection is made, the request goes, nothing ever comes back.
  const hole = await silentServer(t);
  await a.forwarder.advertise(hole.url);
  const body = serialize(alice.body({}, ping('held')));
  const started = Date.now();
  const first = post(b.bosh, body, { agent: alice.agent, timeout: 60_000 }).then((r) => `HTTP ${r.status}: ${r.text}`, (err: Error) => err);
  await eventually(() => hole.requests === 1, { message: 'the request went to the owner' });
  // Its lease gone: what the others see of it once it is declared dead.
  await a.node.stop();
  t.match(await first, { message: /socket hang up/ }, 'the client sees a broken connection and sends the rid again');
  const waited = Date.now() - started;
  t.ok(waited < forwardLimits({ boshMaxWait: 10 }).timeoutMs / 2, `let go long before the relay bound (${waited} ms)`);
  t.match(b.warnings, [{ err: { message: /the owner a is gone/ } }], 'cut for its owner, not by the relay bound');
  t.equal(terminalCondition(await post(b.bosh, body, { agent: alice.agent, timeout: 5000 })), 'item-not-found', 'the rid again: no live node holds the session');
});

t.test('an owner whose connection is never made (packets dropped, no refusal): remote-connection-failed after CONNECT_TIMEOUT_MS, not the relay bound', async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  await a.forwarder.advertise(await unansweredAddress(t));
  const started = Date.now();
  const res = await post(b.bosh, serialize(alice.body({}, ping('never'))), { agent: alice.agent, timeout: 20_000 });
  const waited = Date.now() - started;
  t.equal(terminalCondition(res), 'remote-connection-failed');
  t.ok(waited >= CONNECT_TIMEOUT_MS - 100 && waited < forwardLimits({ boshMaxWait: 10 }).timeoutMs / 2, `after the connect timeout (${waited} ms)`);
  t.match(b.warnings, [{ err: { message: /no connection within/ } }]);
  t.equal(b.forwarder.stats().unreachable, 1);
});

t.test("an owner's advertised URL that reaches another node (HOST 0.0.0.0 advertises 127.0.0.1 on every machine): remote-connection-failed and an error naming CLUSTER_ADVERTISE_URL, not item-not-found for a session that lives", async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  // Two machines left with the default: each advertises http://127.0.0.1:5280, which on b's machine is b.
  await a.forwarder.advertise(b.server.httpUrl);
  const body = serialize(alice.body({}, ping('misrouted')));
  const res = await post(b.bosh, body, { agent: alice.agent });
  t.equal(terminalCondition(res), 'remote-connection-failed', 'the owner was not reached; the session is not said to be gone');
  t.match(b.warnings, [{ event: 'bosh-forward-misrouted', owner: 'a', url: b.server.httpUrl, msg: /CLUSTER_ADVERTISE_URL/ }], 'the operator is told, the variable named');
  t.same(ids(await post(a.bosh, body, { agent: alice.agent })), ['misrouted'], 'the rid never reached the owner, which takes it now');
});

t.test('a forwarded request whose answer is lost between the nodes: the client sends the rid again and gets the answer; the session is not ended for it (XEP-0124 §14.3)', async (t) => {
  const [a, b] = await cluster(t);
  const lossy = await lossyRelay(t, a.server.httpUrl);
  await a.forwarder.advertise(lossy.url);
  const { c: alice } = await direct(t, a, 'alice');
  const body = serialize(alice.body({}, ping('lost')));
  // The owner processes the ping and answers; the answer never reaches b.
  const first = await post(b.bosh, body, { agent: alice.agent }).then((r) => `HTTP ${r.status}: ${r.text}`, (err: Error) => err);
  t.equal(lossy.lost, 1, 'the owner answered and the answer was lost between the nodes');
  t.type(first, Error, 'the client sees a broken connection, not a terminal condition for a session that lives on');
  // §14.3: the same request again, through either node: the owner's buffered answer.
  t.same(ids(await post(a.bosh, body, { agent: alice.agent })), ['lost'], 'the resent rid gets the ping result');
  t.same(ids(await alice.send({}, ping('after'))), ['after'], 'the session goes on');
});

t.test('an answer cut between the nodes after part of it reached the client: its connection is dropped, never ended as if whole; the rid again gets it all (XEP-0124 §14.3)', async (t) => {
  const [a, b] = await cluster(t);
  const lossy = await lossyRelay(t, a.server.httpUrl, 200);
  await a.forwarder.advertise(lossy.url);
  const { c: alice } = await direct(t, a, 'alice');
  const body = serialize(alice.body({}, ping(`cut-${'x'.repeat(2000)}`)));
  const first = await post(b.bosh, body, { agent: alice.agent }).then((r) => `HTTP ${r.status}: ${r.text}`, (err: Error) => err);
  t.equal(lossy.lost, 1, 'the owner answered and only the start of it passed');
  t.type(first, Error, 'the client sees a broken connection, not a response that ends early');
  t.same(ids(await post(a.bosh, body, { agent: alice.agent })), [`cut-${'x'.repeat(2000)}`], 'the resent rid gets the whole answer');
  t.same(ids(await alice.send({}, ping('after'))), ['after'], 'the session goes on');
  t.equal(b.forwarder.stats().unreachable, 1, 'counted as an answer lost on the way');
});

t.test('a poll forwarded to the owner whose client connection closes: the message that comes meanwhile is in the answer to the rid sent again through the other node (XEP-0124 §14.3)', async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice, jid } = await direct(t, a, 'alice');
  const poll = serialize(alice.body());
  // A connection of its own, closed while the owner holds the poll b forwarded (the client's network going away).
  const abort = new AbortController();
  const first = post(b.bosh, poll, { signal: abort.signal }).catch((err: Error) => err);
  await eventually(() => a.server.app.bosh.stats().held === 1, { message: 'the owner to hold the forwarded poll' });
  abort.abort();
  t.type(await first, Error, 'the client lost the connection of its poll');
  await eventually(() => a.server.app.bosh.stats().held === 0, { message: 'the owner to let the forwarded poll go' });
  const bob = await RawWsClient.connect(a.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', USERS.bob, 'ws');
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='meanwhile'><body>hi</body></message>`);
  await eventually(() => a.server.app.bosh.stats().queued > 0, { message: 'the message queued on the owner' });
  t.same(ids(await post(b.bosh, poll, { agent: alice.agent })), ['meanwhile'], 'the rid sent again gets the message, not the empty body that never went out');
  t.same(ids(await alice.send({}, ping('after'))), ['after'], 'the session goes on');
});

t.test('the terminate body of a session with three responses queued reaches the client through the other node; what did not fit in it is stored offline (XEP-0124 §13)', async (t) => {
  // The terminate body is a response like any other: BOSH_MAX_RESPONSE_BYTES, 4 KiB here, against 24 KiB queued.
  const [a, b] = await cluster(t, { BOSH_MAX_RESPONSE_BYTES: '4096', MAX_STANZA_SIZE: '4096' });
  const { c: alice, jid } = await direct(t, a, 'alice');
  const bob = await RawWsClient.connect(a.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', USERS.bob, 'sender');
  const sent = Array.from({ length: 24 }, (_, i) => `m${i}`);
  for (const id of sent) bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='${id}'><body>${'x'.repeat(900)}</body></message>`);
  await eventually(() => a.server.app.bosh.stats().queued === sent.length, { message: 'every message queued for alice on the owner' });
  // The owner ends the stream (a login with the same resource: conflict) while alice holds no request.
  const replacement = await RawWsClient.connect(a.server.wsUrl);
  t.teardown(() => replacement.close());
  await replacement.login('alice', USERS.alice, 'direct');
  await eventually(() => a.server.app.sessions.get('localhost', 'alice', 'direct')?.transport === 'websocket', { message: 'the BOSH session replaced' });

  const final = await post(b.bosh, serialize(alice.body()), { agent: alice.agent });
  t.equal(terminalCondition(final), 'remote-stream-error', 'the client gets the terminate body through the other node, not remote-connection-failed');
  const delivered = payloads(final.body).filter((el) => el.local === 'message').map((el) => el.attr('id'));
  const rest = sent.slice(delivered.length);
  t.ok(rest.length > 0, `the body carries part of the queue (${delivered.length} of ${sent.length})`);
  await eventually(async () => (await a.server.storage.offline.count('localhost', 'alice')) >= rest.length, { message: 'the rest stored offline' });
  const stored = (await a.server.storage.offline.list('localhost', 'alice')).map((m) => parseXml(m.stanza).attr('id'));
  t.same([...delivered, ...stored], sent, 'every message either in the terminate body or stored offline, once, in order');
});

t.test("one stanza larger as written than the other node's relay bound still reaches the client through it (XEP-0124 §8: the response carries it whole)", async (t) => {
  // Each '"' of a single-quoted attribute is written back as &quot;: 3,500 bytes in, over 21,000 out, against the
  // 2 × (BOSH_MAX_RESPONSE_BYTES + MAX_STANZA_SIZE) = 16 KiB the other node relayed at most (then
  // remote-connection-failed, for a session that lived on; any user can send such a stanza to anyone). A PEP
  // items result is larger still at the defaults: up to PEP_MAX_ITEMS_PER_NODE × PEP_MAX_ITEM_BYTES.
  const [a, b] = await cluster(t, { BOSH_MAX_RESPONSE_BYTES: '4096', MAX_STANZA_SIZE: '4096', ALLOWED_ORIGINS: 'https://app.example' });
  const { c: alice, jid } = await direct(t, a, 'alice');
  const bob = await RawWsClient.connect(a.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', USERS.bob, 'sender');
  bob.send(`<message xmlns='jabber:client' to='${jid}' type='chat' id='quotes'><x xmlns='urn:example:q' q='${'"'.repeat(3500)}'/></message>`);
  await eventually(() => a.server.app.bosh.stats().queued === 1, { message: 'the message queued for alice on the owner' });
  const res = await post(b.bosh, serialize(alice.body()), { agent: alice.agent, headers: { origin: 'https://app.example' } });
  t.equal(terminalCondition(res), undefined, 'not a terminal condition for a session that lives on');
  t.equal(res.headers['access-control-allow-origin'], 'https://app.example', "the other node's CORS headers with it");
  t.equal(res.headers['cache-control'], 'no-store');
  const got = payloads(res.body).find((el) => el.local === 'message');
  t.equal(got?.attr('id'), 'quotes');
  t.ok(got?.firstElement?.attr('q') === '"'.repeat(3500), 'the stanza whole');
  t.same(ids(await post(b.bosh, serialize(alice.body({}, ping('after'))), { agent: alice.agent })), ['after'], 'the session goes on through the other node');
});

t.test('a node shutting down drops the requests it forwards, and the client sends them again to the owner', async (t) => {
  const [a, b] = await cluster(t);
  const { c: alice } = await direct(t, a, 'alice');
  const body = serialize(alice.body());
  const poll = post(b.bosh, body, { agent: alice.agent });
  await eventually(() => a.server.app.bosh.stats().held === 1 && b.server.app.bosh.stats().openRequests === 1, { message: 'the poll held on the owner' });
  await b.server.close();
  await t.rejects(poll, 'the connection dropped, not answered (system-shutdown would end the session on a)');
  t.equal(b.server.app.bosh.stats().openRequests, 0);
  // §14.3: the same rid again, to the owner: answered from its buffer, the session lives on.
  const again = await post(a.bosh, body, { agent: alice.agent });
  t.equal(again.status, 200);
  t.equal(terminalCondition(again), undefined);
  t.same(ids(await alice.send({}, ping('after'))), ['after']);
});

t.test('what Redis lost of forwarding (a sid, a URL, the hop secret) comes back at the next renewal', async (t) => {
  const [a, b] = await cluster(t, {}, 600);
  const { c: alice } = await direct(t, a, 'alice');
  t.same(ids(await post(b.bosh, serialize(alice.body({}, ping('before'))), { agent: alice.agent })), ['before']);
  const p = a.node.prefix;
  const secret = await a.redis.get(`${p}bosh-hop-secret`);
  t.equal(await a.redis.del([`${p}bosh:${alice.sid}`, `${p}node-url:a`, `${p}bosh-hop-secret`]), 3);
  let n = 0;
  await eventually(async () => {
    const res = await post(b.bosh, serialize(alice.body({}, ping(`after${n}`))), { agent: alice.agent });
    // Refused by b without reaching a: the owner never saw the rid, so it is sent again.
    if (terminalCondition(res) !== undefined) alice.rid--;
    return ids(res)[0] === `after${n++}`;
  }, { message: 'forwarding to work again' });
  // A renewal that read the secret just before the DEL writes the URL and the sid back after it: the secret itself
  // comes back at the next one. It must come back the same, never a new one.
  await eventually(async () => (await a.redis.get(`${p}bosh-hop-secret`)) !== null, { message: 'the hop secret back in Redis' });
  t.equal(await a.redis.get(`${p}bosh-hop-secret`), secret, 'the same secret, so no node refuses another');
});

t.test('CLUSTER=redis gateways forward by themselves: the cluster makes the forwarder, the app advertises its URL once listening', async (t) => {
  const url = redis.url();
  // One storage for both, as one PostgreSQL would be (the cross-checks want STORAGE=postgres; the store given is used).
  const storage = createMemoryStorage();
  const env = (id: string) => ({
    ALLOW_INSECURE_PLAIN: 'true', CLUSTER: 'redis', REDIS_URL: url, NODE_ID: id, SM_BACKEND: 'redis',
    STORAGE: 'postgres', DATABASE_URL: 'postgres://unused@127.0.0.1/unused',
  });
  const a = await startServer(env('a'), storage);
  const b = await startServer(env('b'), storage);
  t.teardown(async () => { await b.close(); await a.close(); });
  await a.addUser('alice', USERS.alice);
  const alice = new Alternating([`${a.httpUrl}/http-bind`, `${b.httpUrl}/http-bind`]);
  t.teardown(() => alice.destroy());
  t.equal(await alice.login('alice', USERS.alice, 'wired', { wait: 3 }), 'alice@localhost/wired');
  for (const id of ['w1', 'w2']) t.same(ids(await alice.send({}, ping(id))), [id]);
  t.same([a.app.bosh.stats().sessions, b.app.bosh.stats().sessions], [1, 0]);
  // What an operator sees on b: SASL, bind and a ping forwarded; one guess; one forged hop.
  t.equal(terminalCondition(await post(`${b.httpUrl}/http-bind`, serialize(x('body', { xmlns: NS.HTTPBIND, rid: 1, sid: 'guess' })))), 'item-not-found');
  const forged = await post(`${b.httpUrl}/http-bind`, serialize(alice.body()), { headers: { [HOP_HEADER]: 'forged' } });
  t.equal(forged.status, 403);
  const metrics = await (await fetch(`${b.httpUrl}/metrics`)).text();
  for (const [outcome, n] of [['forwarded', 3], ['not-found', 1], ['unreachable', 0], ['refused', 1]] as const) {
    t.match(metrics, new RegExp(`^xmpp_cluster_bosh_forward_total\\{outcome="${outcome}"\\} ${n}$`, 'm'), `${outcome}: ${n}`);
  }
});

t.test('Redis gone: a new session still gets its creation response, and works on the node it reached', async (t) => {
  const own = await startRedis();
  t.teardown(() => own.stop(true));
  const client = await connectRedis(own.url(0), quiet, 'alone');
  const node = await joinCluster(client, { id: 'alone', prefix: keyPrefix(own.url(0)), ttlMs: 5000, log: quiet });
  const forwarder = createBoshForwarder(node, { log: quiet, timeoutMs: 20_000 });
  const server = await startServer({ ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '10' }, undefined, { boshForwarder: forwarder });
  // Redis unreachable: commands wait in the client's offline queue, so nothing below may wait for them.
  t.teardown(async () => { await server.close(); client.destroy(); });
  await server.addUser('alice', USERS.alice);
  await forwarder.advertise(advertisedUrl(server.config, server.port));
  await own.stop(true);
  await eventually(() => !client.isReady, { message: 'the client to notice' });
  const alice = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => alice.destroy());
  t.equal(await alice.login('alice', USERS.alice, 'no-redis', { wait: 3 }), 'alice@localhost/no-redis');
});

t.test("CLUSTER_ADVERTISE_URL: a base URL or nothing (then HOST and the port listened on); anything else stops the start naming it", async (t) => {
  const config = (env: Record<string, string>) => loadConfig({ PORT: '5280', ...env });
  t.equal(advertisedUrl(config({}), 5280), 'http://127.0.0.1:5280', 'HOST 0.0.0.0 (the default): loopback');
  t.equal(advertisedUrl(config({ HOST: '10.1.2.3' }), 6000), 'http://10.1.2.3:6000');
  t.equal(advertisedUrl(config({ HOST: '::1' }), 6000), 'http://[::1]:6000');
  t.equal(advertisedUrl(config({ CLUSTER_ADVERTISE_URL: 'https://gw-2.internal:8443/' }), 5280), 'https://gw-2.internal:8443');
  for (const bad of ['gw-2:5280', 'ftp://gw-2', 'http://gw-2/http-bind']) {
    t.throws(() => config({ CLUSTER_ADVERTISE_URL: bad }), /CLUSTER_ADVERTISE_URL/, bad);
  }
});

/** An HTTP relay in front of `target` that records the headers of what it relays. */
async function headerSpy(t: Test, target: string): Promise<{ url: string; seen: http.IncomingHttpHeaders[] }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen };
}

/** An HTTP relay in front of `target` that passes the requests on and drops every answer: the connection to the sender is cut once the owner has answered. */
/** Between the nodes: the owner's answers never arrive whole; `passed` bytes of each (status line and headers first) do. */
async function lossyRelay(t: Test, target: string, passed = 0): Promise<{ url: string; lost: number }> {
  const state = { url: '', lost: 0 };
  const server = http.createServer((req, res) => {
    const up = http.request(`${target}${req.url}`, { method: req.method, headers: req.headers }, (r) => {
      let left = passed;
      // The part that passes is on its way to the other node before the connection is cut.
      let written = Promise.resolve();
      if (passed > 0) res.writeHead(r.statusCode!, r.headers);
      r.on('data', (chunk: Buffer) => {
        if (left > 0) written = new Promise((resolve) => res.write(chunk.subarray(0, left), () => resolve()));
        left -= Math.min(left, chunk.length);
      });
      r.on('end', () => void written.then(() => { state.lost++; res.destroy(); }));
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}

/** An HTTP server that takes requests and never answers nor closes them: an owner whose machine vanished mid-request. */
async function silentServer(t: Test): Promise<{ url: string; requests: number }> {
  const state = { url: '', requests: 0 };
  const server = http.createServer(() => { state.requests++; });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }));
  state.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return state;
}

/**
 * A URL whose connections are never made: a listening socket in a stopped process, its accept queue
 * (backlog 1) filled first, so that the kernel drops further SYNs as a vanished machine's network does.
 */
async function unansweredAddress(t: Test): Promise<string> {
  const child = spawn(process.execPath, ['-e', "require('net').createServer().listen({ port: 0, host: '127.0.0.1', backlog: 1 }, function () { console.log(this.address().port) })"], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  const port = Number(await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(String(d).trim()))));
  process.kill(child.pid!, 'SIGSTOP');
  const fillers: net.Socket[] = [];
  t.teardown(() => { for (const s of fillers) s.destroy(); });
  // Until one stays unconnected: the queue is full.
  for (;;) {
    const s = net.connect(port, '127.0.0.1');
    fillers.push(s);
    const made = await new Promise<boolean>((resolve) => { s.once('connect', () => resolve(true)); setTimeout(() => resolve(false), 500); });
    if (!made) return `http://127.0.0.1:${port}`;
    if (fillers.length > 16) throw new Error('the accept queue of a stopped process never filled');
  }
}

/** A port nothing listens on (just released). */
async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
