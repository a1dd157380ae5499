/**
 * The Helm chart rendered by a real helm (test/helpers/helm.ts) with the
 * values a user would give, every document parsed as YAML, and the fields that
 * decide whether the pods work checked: the kind per mode, volumes, the
 * environment against the config schema, probes, grace period, and the render
 * refusals (issue 14 item 8). Not checked here: the objects against a live
 * API server (no cluster), and the pods actually running.
 */
import t, { type Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { SCHEMA } from '../../src/config/index.js';
import { createHelm, podEnv } from '../helpers/helm.js';

const CHART = new URL('../../helm/xmpp-web-gateway', import.meta.url).pathname;
const CLUSTER_VALUES = new URL('../../helm/ci/cluster-values.yaml', import.meta.url).pathname;
const helm = createHelm();
const ENV_NAMES: readonly string[] = Object.values(SCHEMA).map((s) => s.env);

type Obj = Record<string, any>;

function render(...args: string[]): Obj[] {
  const r = helm(['template', 'chat', CHART, ...args]);
  if (!r.ok) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    return doc.toJS() as Obj;
  }).filter((o) => o !== null);
}

const kinds = (objs: Obj[]) => objs.map((o) => o.kind as string).sort();
const workload = (objs: Obj[]) => objs.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')!;
const container = (w: Obj) => w.spec.template.spec.containers[0] as Obj;
const envVar = (objs: Obj[], name: string) => podEnv(objs).filter((e) => e.name === name);

/** Each variable once across the ConfigMap (envFrom) and env (the Secrets' keys, the computed ones). */
function everySettingOnce(t: Test, objs: Obj[]): void {
  for (const name of ENV_NAMES) t.equal(envVar(objs, name).length, 1, `${name} is set once`);
  // POD_IP only feeds CLUSTER_ADVERTISE_URL ($(POD_IP) expansion); the gateway ignores it.
  t.same(podEnv(objs).map((e) => e.name).filter((n) => !ENV_NAMES.includes(n) && n !== 'POD_IP'), [], 'nothing the config does not know');
}

/** Everything `helm template` refuses to render, with the first line of its message. */
function refusal(...args: string[]): string {
  const r = helm(['template', 'chat', CHART, ...args]);
  if (r.ok) return '(rendered)';
  return r.stderr.split('\n')[0]!;
}

t.test('the default is one StatefulSet with a volume for SQLite, as before', async (t) => {
  const objs = render();
  t.same(kinds(objs), ['ConfigMap', 'Secret', 'Service', 'StatefulSet'], 'the config in a ConfigMap, the secret variables in a Secret');
  const w = workload(objs);
  t.equal(w.spec.replicas, 1);
  t.equal(w.spec.volumeClaimTemplates[0].metadata.name, 'data');
  t.same(container(w).volumeMounts, [{ name: 'data', mountPath: '/data' }, { name: 'tmp', mountPath: '/tmp' }]);
  t.same(envVar(objs, 'STORAGE'), [{ name: 'STORAGE', value: 'sqlite' }]);
  t.same(envVar(objs, 'CLUSTER'), [{ name: 'CLUSTER', value: 'none' }]);
  t.same(envVar(objs, 'SM_BACKEND'), [{ name: 'SM_BACKEND', value: 'memory' }]);
  everySettingOnce(t, objs);
});

t.test('replicaCount > 1 is a Deployment on Redis and PostgreSQL, with no PVC', async (t) => {
  const objs = render('-f', CLUSTER_VALUES);
  t.same(kinds(objs), ['ConfigMap', 'Deployment', 'Secret', 'Secret', 'Service'], 'the server secret and the env Secret');
  const w = workload(objs);
  t.equal(w.spec.replicas, 3);
  t.equal(w.spec.volumeClaimTemplates, undefined, 'no volume claim');
  t.notOk(objs.some((o) => o.kind === 'PersistentVolumeClaim'), 'no PVC');
  t.same(w.spec.template.spec.volumes.find((v: Obj) => v.name === 'data'), { name: 'data', emptyDir: {} });
  t.same(w.spec.strategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 }, 'the new pod is ready before the old one leaves');
  t.same(envVar(objs, 'CLUSTER'), [{ name: 'CLUSTER', value: 'redis' }]);
  t.same(envVar(objs, 'SM_BACKEND'), [{ name: 'SM_BACKEND', value: 'redis' }]);
  t.same(envVar(objs, 'STORAGE'), [{ name: 'STORAGE', value: 'postgres' }]);
  t.same(envVar(objs, 'NODE_ID'), [{ name: 'NODE_ID', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }], 'NODE_ID is the pod name');
  t.same(envVar(objs, 'REDIS_URL'), [{ name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: 'xwg-urls', key: 'REDIS_URL' } } }]);
  t.same(envVar(objs, 'DATABASE_URL'), [{ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'xwg-urls', key: 'DATABASE_URL' } } }]);
  everySettingOnce(t, objs);
});

t.test('every pod of a cluster mounts one server secret', async (t) => {
  const objs = render('-f', CLUSTER_VALUES);
  const secret = objs.find((o) => o.kind === 'Secret' && o.metadata.name === 'chat-xmpp-web-gateway-server-secret')!;
  t.equal(Buffer.from(secret.data['server-secret'], 'base64').length, 32, '32 random bytes');
  t.equal(secret.metadata.annotations['helm.sh/resource-policy'], 'keep');
  const w = workload(objs);
  t.same(container(w).volumeMounts.find((m: Obj) => m.name === 'server-secret'),
    { name: 'server-secret', mountPath: '/data/server-secret', subPath: 'server-secret', readOnly: true }, 'at DATA_DIR/server-secret');
  t.equal(w.spec.template.spec.volumes.find((v: Obj) => v.name === 'server-secret').secret.secretName, secret.metadata.name);
  t.equal(w.spec.template.spec.securityContext.fsGroup, 1000, 'readable by the image user');

  const own = render('-f', CLUSTER_VALUES, '--set', 'serverSecret.existingSecret=my-salt');
  t.same(own.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name), ['chat-xmpp-web-gateway-env'], 'no server secret generated when one is given');
  t.equal(workload(own).spec.template.spec.volumes.find((v: Obj) => v.name === 'server-secret').secret.secretName, 'my-salt');
});

t.test('the URLs may be given in clear in env: the chart keeps them in a Secret of its own', async (t) => {
  const objs = render('--set', 'replicaCount=2', '--set', 'env.STORAGE=postgres',
    '--set', 'env.REDIS_URL=redis://redis:6379/0', '--set', 'env.DATABASE_URL=postgres://u:p@pg:5432/x');
  t.equal(workload(objs).kind, 'Deployment');
  t.same(envVar(objs, 'REDIS_URL'), [{ name: 'REDIS_URL', valueFrom: { secretKeyRef: { name: 'chat-xmpp-web-gateway-env', key: 'REDIS_URL' } } }]);
  t.same(envVar(objs, 'DATABASE_URL'), [{ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'chat-xmpp-web-gateway-env', key: 'DATABASE_URL' } } }]);
  everySettingOnce(t, objs);
});

t.test("CLUSTER_ADVERTISE_URL (BOSH forwarding), when the config has it, is the pod's IP", async (t) => {
  // The key exists once the BOSH forwarding branch adds it to the schema; --set stands in for it until then.
  const w = render('-f', CLUSTER_VALUES, '--set', 'env.CLUSTER_ADVERTISE_URL=');
  const names = podEnv(w).map((e) => e.name);
  t.same(envVar(w, 'POD_IP'), [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }]);
  t.same(envVar(w, 'CLUSTER_ADVERTISE_URL'), [{ name: 'CLUSTER_ADVERTISE_URL', value: 'http://$(POD_IP):5280' }]);
  t.ok(names.indexOf('POD_IP') < names.indexOf('CLUSTER_ADVERTISE_URL'), 'POD_IP comes first, as $(POD_IP) expansion needs');
  const v6 = render('-f', CLUSTER_VALUES, '--set', 'env.CLUSTER_ADVERTISE_URL=', '--set', 'ipv6PodNetwork=true', '--set', 'env.HOST=::');
  t.same(envVar(v6, 'CLUSTER_ADVERTISE_URL'), [{ name: 'CLUSTER_ADVERTISE_URL', value: 'http://[$(POD_IP)]:5280' }]);
  const given = render('-f', CLUSTER_VALUES, '--set', 'env.CLUSTER_ADVERTISE_URL=http://gw.internal:5280');
  t.same(envVar(given, 'CLUSTER_ADVERTISE_URL'), [{ name: 'CLUSTER_ADVERTISE_URL', value: 'http://gw.internal:5280' }], 'a value given is kept');
  t.same(envVar(given, 'POD_IP'), []);
  const single = render('--set', 'env.CLUSTER_ADVERTISE_URL=');
  t.same(envVar(single, 'POD_IP'), [], 'one process forwards nothing');
  t.same(envVar(single, 'CLUSTER_ADVERTISE_URL'), [{ name: 'CLUSTER_ADVERTISE_URL', value: '' }]);
});

t.test('env.CLUSTER=redis with one replica is a cluster of one', async (t) => {
  const objs = render('-f', CLUSTER_VALUES, '--set', 'replicaCount=1', '--set', 'env.CLUSTER=redis');
  const w = workload(objs);
  t.equal(w.kind, 'Deployment');
  t.equal(w.spec.replicas, 1);
  t.same(envVar(objs, 'SM_BACKEND'), [{ name: 'SM_BACKEND', value: 'redis' }]);
});

t.test('a single process may use PostgreSQL and keeps its StatefulSet', async (t) => {
  const objs = render('--set', 'env.STORAGE=postgres', '--set', 'databaseUrlFrom.secretName=pg');
  t.equal(workload(objs).kind, 'StatefulSet');
  t.same(envVar(objs, 'DATABASE_URL'), [{ name: 'DATABASE_URL', valueFrom: { secretKeyRef: { name: 'pg', key: 'DATABASE_URL' } } }]);
  t.same(envVar(objs, 'CLUSTER'), [{ name: 'CLUSTER', value: 'none' }]);
});

t.test('the render fails with one clear line on what the gateway would refuse', async (t) => {
  t.match(refusal('--set', 'replicaCount=3'),
    /^Error: .*replicaCount=3 \(or env\.CLUSTER=redis\) needs env\.STORAGE=postgres, not "sqlite": SQLite is a file in one pod's volume/, 'SQLite with replicas');
  t.match(refusal('--set', 'env.CLUSTER=redis', '--set', 'env.STORAGE=sqlite'), /needs env\.STORAGE=postgres, not "sqlite"/, 'SQLite with CLUSTER=redis');
  t.match(refusal('--set', 'replicaCount=3', '--set', 'env.STORAGE=postgres', '--set', 'databaseUrlFrom.secretName=pg'),
    /^Error: .*replicaCount=3 \(or env\.CLUSTER=redis\) needs a Redis: set redisUrlFrom\.secretName .* or env\.REDIS_URL$/, 'no Redis URL');
  t.match(refusal('--set', 'env.STORAGE=postgres'), /^Error: .*env\.STORAGE=postgres needs a database: set databaseUrlFrom\.secretName .* or env\.DATABASE_URL$/, 'no database URL');
  // The gateway refuses WORKERS > 1 without CLUSTER=redis; with it, the workers of a pod share the one
  // CLUSTER_ADVERTISE_URL the chart sets, so a BOSH request forwarded to the pod may miss its session's worker.
  for (const args of [['--set', 'env.WORKERS=2'], ['-f', CLUSTER_VALUES, '--set', 'env.WORKERS=4']]) {
    t.match(refusal(...args), /^Error: .*env\.WORKERS=\d is not supported by the chart: one gateway process per pod, scale with replicaCount/, `WORKERS > 1: ${args.join(' ')}`);
  }
  t.equal(refusal('--set', 'env.WORKERS=1'), '(rendered)', 'WORKERS=1 renders');
  // 0.0.0.0 is IPv4 only: on an IPv6 pod network nothing would answer the probes or the forwarded BOSH requests.
  t.match(refusal('-f', CLUSTER_VALUES, '--set', 'ipv6PodNetwork=true'), /^Error: .*ipv6PodNetwork=true needs env\.HOST=:: \(0\.0\.0\.0 listens on IPv4 only/, 'IPv6 pods on HOST=0.0.0.0');
  t.equal(refusal('-f', CLUSTER_VALUES), '(rendered)', 'the example renders');
});

t.test('probes on /healthz and /readyz, and a grace period above SHUTDOWN_TIMEOUT', async (t) => {
  for (const args of [[], ['-f', CLUSTER_VALUES], ['-f', CLUSTER_VALUES, '--set', 'env.SHUTDOWN_TIMEOUT=90']]) {
    const objs = render(...args);
    const w = workload(objs);
    const c = container(w);
    const port = c.ports.find((p: Obj) => p.name === 'http');
    t.equal(port.containerPort, 5280);
    t.same(c.readinessProbe.httpGet, { path: '/readyz', port: 'http' }, `${w.kind}: readiness on /readyz`);
    t.same(c.livenessProbe.httpGet, { path: '/healthz', port: 'http' }, `${w.kind}: liveness on /healthz`);
    t.same(c.startupProbe.httpGet, { path: '/healthz', port: 'http' }, `${w.kind}: startup on /healthz`);
    const shutdown = Number(envVar(objs, 'SHUTDOWN_TIMEOUT')[0]!.value);
    t.ok(w.spec.template.spec.terminationGracePeriodSeconds > shutdown,
      `${w.kind}: grace ${w.spec.template.spec.terminationGracePeriodSeconds} s > SHUTDOWN_TIMEOUT ${shutdown} s`);
  }
});

t.test("nodeOptions is the container's NODE_OPTIONS (docs/SCALING.md: V8's heap under the pod's memory limit)", async (t) => {
  t.same(envVar(render(), 'NODE_OPTIONS'), [], 'none by default: Node decides');
  for (const args of [[], ['-f', CLUSTER_VALUES]]) {
    const objs = render(...args, '--set', 'nodeOptions=--max-old-space-size=1536');
    t.same(envVar(objs, 'NODE_OPTIONS'), [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=1536' }], `${workload(objs).kind}: set once`);
  }
  t.match(helm(['template', 'chat', CHART, '--set', 'env.NODE_OPTIONS=--max-old-space-size=1536']).stderr,
    /additional properties 'NODE_OPTIONS' not allowed/, 'not an env key: the gateway does not read it');
});

t.test('helm lint --strict passes for both modes', async (t) => {
  for (const args of [[], ['-f', CLUSTER_VALUES]]) {
    const r = helm(['lint', '--strict', CHART, ...args]);
    t.ok(r.ok, `lint ${args.join(' ') || '(defaults)'}: ${r.stderr || 'clean'}`);
  }
});
