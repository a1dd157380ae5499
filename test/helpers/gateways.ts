/**
 * Several in-process gateways forming one cluster (CLUSTER=redis): one
 * Redis database and one PostgreSQL database shared, a NODE_ID each, every
 * gateway on its own port with its own storage pool. For tests of the
 * directory and cross-node IM; kill -9 scenarios need real processes
 * (test/helpers/cluster.ts).
 */
import type { Test } from 'tap';
import pino from 'pino';
import { loadConfig } from '../../src/config/index.js';
import { openPostgresStorage } from '../../src/storage/postgres/index.js';
import { deriveStoredCredentials } from '../../src/storage/index.js';
import { startCluster, type Cluster } from '../../src/cluster/index.js';
import type { Log } from '../../src/xmpp/log.js';
import type { Feature } from '../../src/server.js';
import { MANY_CLIENTS, PRE_SASL2, startServer, type TestServer } from './server.js';
import { startRedis, type TestRedis } from './redis.js';
import { startPostgres, type TestPostgres } from './postgres.js';
import { RawWsClient } from './ws-client.js';
import { SmPeer } from './sm-peer.js';
import { eventually } from './eventually.js';

export interface Gateway {
  readonly server: TestServer;
  readonly cluster: Cluster;
  /** Leaves the cluster cleanly and closes the server (idempotent). */
  stop(): Promise<void>;
  /** The in-process kill -9 of a node: its Redis connection goes, its lease is no longer renewed; stop() then only closes the server. */
  crash(): void;
}

export interface GatewayOptions {
  readonly redisUrl: string;
  readonly databaseUrl: string;
  /** More environment for every gateway. */
  readonly env?: Readonly<Record<string, string>>;
  /** More features, registered after the cluster's. */
  readonly features?: readonly Feature[];
}

/** Starts gateway `id`; stopped when `t` ends unless stopped before. */
export async function startGateway(t: Test, id: string, opts: GatewayOptions): Promise<Gateway> {
  const env = {
    CLUSTER: 'redis', REDIS_URL: opts.redisUrl, NODE_ID: id, STORAGE: 'postgres', DATABASE_URL: opts.databaseUrl,
    SM_BACKEND: 'redis', CLUSTER_NODE_TTL: '1000', ...opts.env,
  };
  const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', SCRAM_ITERATIONS: '4096', ...PRE_SASL2, ...MANY_CLIENTS, ...env });
  const log = pino({ level: process.env.CLUSTER_TEST_LOG ?? 'silent' }) as unknown as Log;
  const cluster = await startCluster(config, log);
  const storage = await openPostgresStorage({ url: opts.databaseUrl });
  // buildApp registers the cluster's features (and its SM registry) and starts it.
  const server = await startServer(env, storage, { cluster, features: opts.features ?? [] });
  let stopped: Promise<void> | undefined;
  let crashed = false;
  const stop = (): Promise<void> => (stopped ??= (async () => {
    // A killed process stops reading at once; bounded, so that the server and the cluster are closed whatever
    // the inbox's handed entries wait for.
    if (crashed) await Promise.race([cluster.delivery.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    else await cluster.leave();
    await server.close();
    await cluster.close();
  })());
  t.teardown(stop);
  return {
    server, cluster, stop,
    crash() {
      crashed = true;
      cluster.node.redis.destroy();
    },
  };
}

/**
 * Waits until node `id` has been declared dead: out of the member set, which
 * a survivor's removal does once `id`'s lease ran out, just before that
 * survivor runs its down handlers (directory, inbox, SM takeover). How long
 * that takes is a lease plus the survivors' heartbeats, which a loaded
 * machine stretches: a test waits for it here, then gives what follows from
 * the death its own time. `survivor`: any live gateway, whose connection asks.
 */
export async function declaredDead(survivor: Gateway, id: string): Promise<void> {
  const { redis, prefix } = survivor.cluster.node;
  await eventually(async () => !(await redis.sIsMember(`${prefix}nodes`, id)), { timeout: 60_000, interval: 50, message: `${id} to be declared dead (out of the member set)` });
}

/** Creates `name` (password `<name>-pw`) in the shared database. */
export async function addUsers(gateway: Gateway, names: readonly string[]): Promise<void> {
  for (const name of names) {
    await gateway.server.storage.users.create('localhost', name, await deriveStoredCredentials(`${name}-pw`, 4096));
  }
}

/**
 * Two gateways on `opts`, alice and bob subscribed to each other (`both`), and bob
 * logged in on n2 (resource desk) and available, which n1 sees: the start of the
 * tests in which alice's session moves between the nodes with bob watching.
 */
/** Gateways named `names` on `opts`, with alice and bob as each other's contacts (subscription both). */
export async function contactNodes(t: Test, opts: GatewayOptions, names: readonly string[]): Promise<Gateway[]> {
  const nodes: Gateway[] = [];
  for (const name of names) nodes.push(await startGateway(t, name, opts));
  const [first] = nodes;
  await addUsers(first, ['alice', 'bob']);
  const item = (jid: string) => ({ jid, name: undefined, subscription: 'both' as const, ask: false, approved: false, groups: [] });
  await first.server.storage.rosters.putItem('localhost', 'alice', item('bob@localhost'), 1);
  await first.server.storage.rosters.putItem('localhost', 'bob', item('alice@localhost'), 1);
  return nodes;
}

/** Two nodes, bob/desk logged in on n2 and alice/phone's resumable session on n1 (her acks sent by hand). */
export async function smPairOnTwoNodes(t: Test, opts: GatewayOptions): Promise<{ n1: Gateway; n2: Gateway; alice: SmPeer; bob: RawWsClient }> {
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  return { n1, n2, ...await smPairOn(t, n1, n2) };
}

/** alice and bob added (through `aliceNode`), bob/desk logged in on `bobNode` and alice/phone's resumable session on `aliceNode` (acks by hand). */
export async function smPairOn(t: Test, aliceNode: Gateway, bobNode: Gateway): Promise<{ alice: SmPeer; bob: RawWsClient }> {
  await addUsers(aliceNode, ['alice', 'bob']);
  const bob = await RawWsClient.connect(bobNode.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  const alice = await SmPeer.login(aliceNode.server.wsUrl, 'alice', 'alice-pw', 'phone', { autoAck: false });
  t.teardown(() => alice.c.close());
  return { alice, bob };
}

export async function contactsOnTwoNodes(t: Test, opts: GatewayOptions): Promise<{ n1: Gateway; n2: Gateway; bob: RawWsClient }> {
  const [n1, n2] = await contactNodes(t, opts, ['n1', 'n2']);
  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  bob.send("<presence xmlns='jabber:client'/>");
  await eventually(() => n1.server.app.sessions.get('localhost', 'bob', 'desk')?.presence, { message: 'n1 sees bob available' });
  return { n1, n2, bob };
}

export interface Backends {
  /** A fresh Redis database and PostgreSQL database for one test's gateways, with `env`. */
  options(env?: Readonly<Record<string, string>>): Promise<GatewayOptions>;
}

/** One redis-server and one PostgreSQL for the test file `t` (started before its tests, stopped at its end). */
export function clusterBackends(t: Test): Backends {
  let redis: TestRedis | undefined;
  let pg: TestPostgres | undefined;
  t.before(async () => { [redis, pg] = await Promise.all([startRedis(), startPostgres()]); });
  t.teardown(async () => {
    await redis?.stop();
    await pg?.stop();
  });
  return {
    async options(env) {
      return { redisUrl: redis!.url(), databaseUrl: await pg!.createDatabase(), env };
    },
  };
}

/**
 * `user`/`resource` logged in on `gateway` with XEP-0198 (acks by hand), available, holding one stored
 * message (id stored-1) it was sent and has not acked: a delivery of stored messages waits for its ack
 * (offline/delivery.ts), and the account's delivery line on `gateway` with it. `user` must exist.
 */
export async function unackedStoredPage(t: Test, gateway: Gateway, user: string, resource: string): Promise<SmPeer> {
  await gateway.server.storage.offline.push('localhost', user,
    `<message xmlns='jabber:client' from='alice@localhost/a' to='${user}@localhost' type='chat' id='stored-1'><body>hi</body></message>`, 100);
  const peer = await SmPeer.login(gateway.server.wsUrl, user, `${user}-pw`, resource, { autoAck: false });
  t.teardown(() => peer.c.close());
  peer.c.send("<presence xmlns='jabber:client'/>");
  await eventually(() => peer.messageIds().includes('stored-1'), { message: `${user}/${resource} got the stored message` });
  return peer;
}
