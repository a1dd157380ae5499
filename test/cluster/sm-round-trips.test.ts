/**
 * What a resumption costs Redis in a cluster (SM_BACKEND=redis; issue 14
 * item 6, resumes per CPU-second), watched with MONITOR, which shows each
 * command a client sends and, apart (`lua`), the calls of the scripts it
 * runs. A resumption on another node sends one command that names the
 * session (the claim: record read, account check, the old owner's lease and
 * the notice to it in one script), and the old owner, told, sends one
 * (its final h, published once what it took before the claim is handled:
 * sm-takeover-h.test.ts), to the directory none (the new owner's bind took the entry over); a
 * page reload that resumes on the same node at once does not mark the record
 * hibernating only to unmark it, while a session nobody resumes is marked.
 */
import t, { type Test } from 'tap';
import { NS } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { SmPeer } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';
import { smKeys } from '../../src/cluster/sm-scripts.js';

const backends = clusterBackends(t);
const quiet = { warn: () => undefined };

async function cluster(t: Test): Promise<{ n1: Gateway; n2: Gateway; redisUrl: string }> {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice']);
  return { n1, n2, redisUrl: opts.redisUrl };
}

/** Every line MONITOR shows from now on: `… [0 127.0.0.1:port] "EVAL" …` sent by a client, `… [0 lua] "HSET" …` run by a script. */
async function monitor(t: Test, redisUrl: string): Promise<string[]> {
  const lines: string[] = [];
  const mon: Redis = await connectRedis(redisUrl, quiet, 'monitor');
  t.teardown(() => mon.destroy());
  await mon.monitor((line) => { lines.push(String(line)); });
  return lines;
}

const sentByClient = (line: string): boolean => !/\[\d+ lua\]/.test(line);
const command = (line: string): string => /\] "([^"]+)"/.exec(line)?.[1]?.toUpperCase() ?? '';

t.test('a resumption on another node names the session in one command to Redis, the old owner one (its final h), and the journal one once bound', async (t) => {
  const { n1, n2, redisUrl } = await cluster(t);
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  t.teardown(() => alice.c.close());
  const smid = alice.smid!;
  const lines = await monitor(t, redisUrl);
  const { peer, answer } = await SmPeer.resume(n2.server.wsUrl, 'alice', 'alice-pw', smid, { autoAck: true, h: alice.h });
  t.teardown(() => peer.c.close());
  t.equal(answer.local, 'resumed', answer.toString());
  await alice.c.until((el) => el.local === 'close' && el.ns === NS.FRAMING);
  await eventually(() => ![...n1.server.app.sessions.all].some((s) => s.full_jid === 'alice@localhost/phone'), { message: 'node 1 let go' });
  // What node 1 would send on letting go (its end of the session) has had time to reach Redis.
  await sleep(300);
  const naming = lines.filter((l) => sentByClient(l) && l.includes(smid));
  // The last: the claimer's journal clears the record's `unbound` mark once the session is bound here (its
  // directory entry written; a death before that leaves the unavailable to the survivor), in its write
  // batch, with whatever else the session writes then.
  t.same(naming.map(command), ['EVAL', 'PUBLISH', 'EVAL'], `one script names the session, then the old owner's final h, then the bound mark (${naming.map(command).join(', ')})`);
  const inside = lines.filter((l) => !sentByClient(l)).map(command);
  t.ok(inside.includes('PUBLISH'), 'the old owner is told from within the claim');
  t.ok(inside.includes('EXISTS'), 'the old owner\'s lease is read within the claim');
  t.equal(n2.server.app.sessions.get('localhost', 'alice', 'phone')?.transport, 'websocket', 'node 2 holds the session');
  // The directory: node 2's bind took the resource out of node 1's set, so node 1 has nothing to remove
  // when it lets go of the entry it kept for the move (MOVED_ENTRY_MS, 5 s, in directory-module.ts).
  const r = await connectRedis(redisUrl, quiet, 'look');
  t.teardown(() => r.destroy());
  const prefix = keyPrefix(redisUrl);
  await eventually(() => r.sIsMember(`${prefix}dir-node:n2`, 'alice@localhost/phone'), { message: 'bound on node 2' });
  t.notOk(await r.sIsMember(`${prefix}dir-node:n1`, 'alice@localhost/phone'), 'no longer in node 1\'s set');
  await sleep(5500);
  // (The SISMEMBER above is this test's own.)
  const fromN1 = lines.filter((l) => sentByClient(l) && l.includes(`${prefix}dir-node:n1`) && command(l) !== 'SISMEMBER');
  t.same(fromN1.map(command), [], 'node 1 sent no directory removal');
  t.equal(await r.hLen(`${prefix}dir:alice@localhost`), 1, 'the entry stays, node 2\'s');
});

t.test('a page reload resumed at once on the same node does not mark the record hibernating; a session nobody resumes is marked', async (t) => {
  const { n1, redisUrl } = await cluster(t);
  const keys = smKeys(keyPrefix(redisUrl));
  const alice = await SmPeer.login(n1.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: true });
  const smid = alice.smid!;
  const lines = await monitor(t, redisUrl);
  alice.c.ws.terminate();
  await alice.c.waitClosed();
  const { peer, answer } = await SmPeer.resume(n1.server.wsUrl, 'alice', 'alice-pw', smid, { autoAck: true, h: alice.h });
  t.equal(answer.local, 'resumed', answer.toString());
  await sleep(300);
  const record = keys.record(smid);
  const marks = lines.filter((l) => l.includes(record) && (l.includes('hibernated_at') || ['PEXPIRE', 'PERSIST'].includes(command(l))));
  t.same(marks, [], 'no hibernated_at written, no TTL set or cleared');
  const r = await connectRedis(redisUrl, quiet, 'look');
  t.teardown(() => r.destroy());
  t.equal(await r.hGet(record, 'hibernated_at'), '0', 'the record says connected');
  t.equal(await r.pTTL(record), -1, 'and does not expire');
  // Not resumed this time: the record is marked, so that it expires and a survivor counts its resume time from the cut.
  peer.c.ws.terminate();
  await peer.c.waitClosed();
  await eventually(async () => Number(await r.hGet(record, 'hibernated_at')) > 0, { timeout: 8000, message: 'marked hibernating' });
  t.ok(await r.pTTL(record) > 0, 'with a TTL');
});
