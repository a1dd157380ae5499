/**
 * The cluster's configuration (src/config/load.ts cross-checks): CLUSTER=redis
 * needs REDIS_URL, STORAGE=postgres and SM_BACKEND=redis; SM_BACKEND=redis
 * needs CLUSTER=redis. Each refusal names its variable, all are reported at
 * once, and a REDIS_URL with a password is never echoed.
 */
import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config/index.js';

const CLUSTER = { CLUSTER: 'redis', REDIS_URL: 'redis://127.0.0.1:6379/0', STORAGE: 'postgres', DATABASE_URL: 'postgres://u@127.0.0.1/db', SM_BACKEND: 'redis' };

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

t.test('a complete cluster configuration loads, with the cluster defaults', async (t) => {
  const c = loadConfig({ ...CLUSTER, NODE_ID: 'gw-0' });
  t.equal(c.cluster, 'redis');
  t.equal(c.nodeId, 'gw-0');
  t.equal(c.clusterNodeTtl, 10000);
  t.equal(c.clusterInboxMaxEntries, 100000);
  t.equal(c.clusterInboxMaxBytes, 64 * 1024 * 1024);
  t.equal(c.clusterDeliveryMaxAttempts, 5);
});

t.test('CLUSTER=redis without REDIS_URL is refused naming REDIS_URL', async (t) => {
  const { REDIS_URL: _, ...env } = CLUSTER;
  t.same(problems(env), ['REDIS_URL is required when CLUSTER=redis: expected a redis://[user:password@]host:port[/db] URL']);
});

t.test('CLUSTER=redis with STORAGE=sqlite is refused naming STORAGE', async (t) => {
  t.same(problems({ ...CLUSTER, STORAGE: 'sqlite' }), ['STORAGE=sqlite is invalid with CLUSTER=redis: expected STORAGE=postgres (the nodes share one database)']);
});

t.test('CLUSTER=redis with SM_BACKEND=memory (or unset) is refused naming SM_BACKEND', async (t) => {
  const expected = ['SM_BACKEND=memory is invalid with CLUSTER=redis: expected SM_BACKEND=redis (a session must resume on any node)'];
  t.same(problems({ ...CLUSTER, SM_BACKEND: 'memory' }), expected);
  const { SM_BACKEND: _, ...unset } = CLUSTER;
  t.same(problems(unset), expected, 'the default is memory');
});

t.test('CLUSTER_DRAIN_TIMEOUT must be less than SHUTDOWN_TIMEOUT (a rolling restart leaves within the shutdown)', async (t) => {
  t.equal(loadConfig(CLUSTER).clusterDrainTimeout, 5, 'default 5 s, under the default SHUTDOWN_TIMEOUT of 10');
  t.same(problems({ ...CLUSTER, CLUSTER_DRAIN_TIMEOUT: '10' }), [
    'CLUSTER_DRAIN_TIMEOUT=10 is invalid with SHUTDOWN_TIMEOUT=10: expected less than SHUTDOWN_TIMEOUT (the node must leave the cluster before the shutdown is cut short)',
  ]);
  t.same(problems({ ...CLUSTER, CLUSTER_DRAIN_TIMEOUT: '10', SHUTDOWN_TIMEOUT: '20' }), [], 'fine with a longer shutdown');
});

t.test('SM_BACKEND=redis alone (CLUSTER=none) is refused naming CLUSTER', async (t) => {
  t.same(problems({ SM_BACKEND: 'redis' }), ['SM_BACKEND=redis is invalid with CLUSTER=none: expected CLUSTER=redis and REDIS_URL']);
});

t.test('CLUSTER=redis alone reports every missing piece at once', async (t) => {
  const found = problems({ CLUSTER: 'redis' });
  t.equal(found.length, 3);
  t.match(found.join('\n'), /REDIS_URL is required[\s\S]*STORAGE=sqlite is invalid[\s\S]*SM_BACKEND=memory is invalid/);
});

t.test('bad cluster values name the variable; a REDIS_URL is not echoed (it may hold a password)', async (t) => {
  const bad = problems({ ...CLUSTER, REDIS_URL: 'http://user:s3cret@host/0', NODE_ID: '-bad id', CLUSTER_NODE_TTL: '100', CLUSTER_INBOX_MAX_ENTRIES: '0', CLUSTER_DELIVERY_MAX_ATTEMPTS: 'many' });
  const text = bad.join('\n');
  t.match(text, /REDIS_URL/);
  t.notMatch(text, /s3cret/, 'the password stays out of the error');
  t.match(text, /NODE_ID="-bad id" is invalid/);
  t.match(text, /CLUSTER_NODE_TTL="100" is invalid: expected an integer from 500/);
  t.match(text, /CLUSTER_INBOX_MAX_ENTRIES="0" is invalid/);
  t.match(text, /CLUSTER_DELIVERY_MAX_ATTEMPTS="many" is invalid/);
});
