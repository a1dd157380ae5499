/**
 * The chart's operational parts (issue 17 item 4), rendered by a real helm
 * (test/helpers/helm.ts) and parsed as YAML: the pod's security context with
 * the image's user, public routes that never reach /metrics, the metrics port
 * and ServiceMonitor, the optional PDB, NetworkPolicy and HPA (refused on
 * SQLite), values.schema.json (its env part generated from the config schema)
 * and NOTES.txt. Not checked: the objects against a live API server, and the
 * CRDs (ServiceMonitor, HTTPRoute) against their own schemas.
 */
import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderHelmEnvNames, renderHelmEnvSchema, renderHelmSecretNames } from '../../src/config/env-example.js';
import { READY_STORAGE_TIMEOUT_MS } from '../../src/http/monitoring.js';
import { CHART, createHelm, renderChart } from '../helpers/helm.js';
import { ROOT } from '../helpers/built.js';

type Obj = Record<string, any>;
const helm = createHelm();
const CLUSTER_VALUES = join(ROOT, 'helm', 'ci', 'cluster-values.yaml');
const render = (...args: string[]) => renderChart(helm, args);
const workload = (objs: Obj[]) => objs.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')!;
const ofKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const podSpec = (objs: Obj[]) => workload(objs).spec.template.spec as Obj;
const container = (objs: Obj[]) => podSpec(objs).containers[0] as Obj;

/** The first line of helm's refusal, or '(rendered)'. */
function refusal(...args: string[]): string {
  const r = helm(['template', 'chat', CHART, ...args]);
  return r.ok ? '(rendered)' : r.stderr.split('\n').find((l) => l.trim() !== '') ?? '';
}

const imageUid = Number(/^USER (\d+)/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1]);

t.test("the pod runs as the image's user, non-root, read-only, without capabilities, with seccomp", async (t) => {
  t.ok(imageUid > 0, `the image's USER is ${imageUid}`);
  for (const args of [[], ['-f', CLUSTER_VALUES]]) {
    const objs = render(...args);
    const pod = podSpec(objs).securityContext;
    t.match(pod, { runAsNonRoot: true, runAsUser: imageUid, fsGroup: imageUid, seccompProfile: { type: 'RuntimeDefault' } }, `${workload(objs).kind}: pod`);
    t.same(container(objs).securityContext, { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    t.same(container(objs).volumeMounts.find((m: Obj) => m.mountPath === '/tmp'), { name: 'tmp', mountPath: '/tmp' }, 'a writable /tmp');
    t.same(podSpec(objs).volumes.find((v: Obj) => v.name === 'tmp'), { name: 'tmp', emptyDir: {} });
  }
});

const XMPP_PATHS = [
  { path: '/xmpp-websocket', pathType: 'Exact' }, { path: '/http-bind', pathType: 'Exact' }, { path: '/.well-known/', pathType: 'Prefix' },
];
const PUBLIC_FILES = readdirSync(join(ROOT, 'public')).sort();
const ingressPaths = (objs: Obj[]) => ofKind(objs, 'Ingress')[0].spec.rules[0].http.paths.map((p: Obj) => ({ path: p.path, pathType: p.pathType }));

t.test('the Ingress routes the XMPP endpoints and the demo page only, never /metrics', async (t) => {
  const objs = render('--set', 'ingress.enabled=true');
  const paths = ingressPaths(objs) as Array<{ path: string; pathType: string }>;
  t.same(paths.slice(0, 4), [...XMPP_PATHS, { path: '/', pathType: 'Exact' }]);
  t.same(paths.slice(4).map((p) => p.path.slice(1)).sort(), PUBLIC_FILES, 'every file of public/ and nothing else');
  t.ok(paths.slice(4).every((p) => p.pathType === 'Exact'), 'each file exactly');
  for (const p of paths) t.notOk(p.pathType === 'Prefix' && p.path === '/', 'no catch-all');
  for (const hidden of ['/metrics', '/healthz', '/readyz']) t.notOk(paths.some((p) => p.path === hidden), `${hidden} not routed`);
  const ingress = ofKind(objs, 'Ingress')[0];
  t.equal(ingress.spec.rules[0].http.paths[0].backend.service.port.name, 'http');
  const a = ingress.metadata.annotations;
  t.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600, 'WebSocket sessions are not cut by ingress-nginx');
  t.ok(Number.parseInt(a['nginx.ingress.kubernetes.io/proxy-body-size'], 10) * 1024 >= 262144, 'a full BOSH body passes');
  t.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
  t.same(ingressPaths(render('--set', 'ingress.enabled=true', '--set', 'ingress.demoPage=false')), XMPP_PATHS, 'without the demo page');
});

t.test('the HTTPRoute alternative routes the same paths', async (t) => {
  const objs = render('--set', 'httpRoute.enabled=true', '--set', 'httpRoute.parentRefs[0].name=public');
  const route = ofKind(objs, 'HTTPRoute')[0];
  t.same(route.spec.parentRefs, [{ name: 'public' }]);
  const matches = route.spec.rules[0].matches.map((m: Obj) => ({ path: m.path.value, pathType: m.path.type === 'PathPrefix' ? 'Prefix' : m.path.type }));
  t.same(matches, ingressPaths(render('--set', 'ingress.enabled=true')));
  t.same(route.spec.rules[0].backendRefs, [{ name: 'chat-xmpp-web-gateway', port: 5280 }]);
});

t.test('METRICS_PORT gets a container port, a Service port and the ServiceMonitor', async (t) => {
  const objs = render('--set', 'env.METRICS_PORT=9464', '--set', 'env.METRICS_HOST=0.0.0.0', '--set', 'serviceMonitor.enabled=true');
  t.same(container(objs).ports.find((p: Obj) => p.name === 'metrics'), { name: 'metrics', containerPort: 9464 });
  t.same(ofKind(objs, 'Service')[0].spec.ports.find((p: Obj) => p.name === 'metrics'), { name: 'metrics', port: 9464, targetPort: 'metrics' });
  t.match(ofKind(objs, 'ServiceMonitor')[0].spec, { endpoints: [{ port: 'metrics', path: '/metrics' }], selector: { matchLabels: { 'app.kubernetes.io/instance': 'chat' } } });
  t.equal(workload(objs).spec.template.metadata.annotations['prometheus.io/port'], '9464');
  t.match(ofKind(render('--set', 'serviceMonitor.enabled=true'), 'ServiceMonitor')[0].spec.endpoints, [{ port: 'http' }], 'without it, the HTTP port');
  t.same(ofKind(render(), 'ServiceMonitor'), [], 'off by default');
  t.match(refusal('--set', 'env.METRICS_PORT=9464', '--set', 'serviceMonitor.enabled=true'), /^Error: .*needs env\.METRICS_HOST=0\.0\.0\.0 .*cannot reach 127\.0\.0\.1$/);
});

t.test('PodDisruptionBudget and NetworkPolicy when enabled', async (t) => {
  const objs = render('-f', CLUSTER_VALUES, '--set', 'podDisruptionBudget.enabled=true', '--set', 'networkPolicy.enabled=true',
    '--set', 'env.METRICS_PORT=9464', '--set', 'networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.name=monitoring');
  t.match(ofKind(objs, 'PodDisruptionBudget')[0].spec, { maxUnavailable: 1, selector: { matchLabels: { 'app.kubernetes.io/instance': 'chat' } } });
  const np = ofKind(objs, 'NetworkPolicy')[0].spec;
  t.same(np.policyTypes, ['Ingress']);
  t.same(np.ingress, [
    { ports: [{ port: 'http' }] },
    { ports: [{ port: 'metrics' }], from: [{ namespaceSelector: { matchLabels: { name: 'monitoring' } } }] },
  ]);
  t.same([...ofKind(render(), 'PodDisruptionBudget'), ...ofKind(render(), 'NetworkPolicy')], [], 'off by default');
});

t.test('the HPA scales the cluster Deployment, and is refused on SQLite', async (t) => {
  const hpa = ofKind(render('-f', CLUSTER_VALUES, '--set', 'autoscaling.enabled=true'), 'HorizontalPodAutoscaler')[0];
  t.match(hpa.spec, { scaleTargetRef: { kind: 'Deployment', name: 'chat-xmpp-web-gateway' }, minReplicas: 2, maxReplicas: 6 });
  // The HPA owns the count: a replicas field would put it back to replicaCount at every helm upgrade.
  t.equal(workload(render('-f', CLUSTER_VALUES, '--set', 'autoscaling.enabled=true')).spec.replicas, undefined, 'no replicas beside the HPA');
  t.equal(workload(render('-f', CLUSTER_VALUES)).spec.replicas, 3, 'replicaCount without it');
  t.match(refusal('--set', 'autoscaling.enabled=true'), /^Error: .*autoscaling\.enabled needs the cluster mode .*SQLite/);
});

t.test('values.schema.json: env is exactly the config schema, and wrong values fail the install', async (t) => {
  const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Obj;
  t.same(schema.properties.env, renderHelmEnvSchema(), 'in sync (npm run env-example)');
  t.match(refusal('--set', 'env.TRUSTED_PROXY=10.0.0.0/8'), /values don't meet the specifications/, 'a misspelt variable');
  t.match(refusal('--set', 'replicaCount=0'), /values don't meet the specifications/);
  t.match(refusal('--set', 'ingress.enabled=yes'), /values don't meet the specifications/);
  t.match(refusal('--set', 'ingres.enabled=true'), /values don't meet the specifications/, 'a misspelt key');
  t.equal(refusal('--set', 'env.PORT=8080', '--set', 'env.SM_BUFFER=false'), '(rendered)', '--set numbers and booleans are fine');
});

t.test('NOTES.txt: the first user, Converse.js, and a warning while TRUSTED_PROXIES is loopback behind an ingress', async (t) => {
  const notes = (...args: string[]) => {
    const r = helm(['install', 'chat', CHART, '--dry-run=client', '--namespace', 'im', '--set', 'env.XMPP_DOMAIN=example.com', ...args]);
    if (!r.ok) throw new Error(r.stderr);
    return r.stdout.slice(r.stdout.indexOf('NOTES:'));
  };
  const behind = notes('--set', 'ingress.enabled=true', '--set', 'ingress.tlsSecretName=tls');
  t.match(behind, 'kubectl exec -it -n im chat-xmpp-web-gateway-0 -- node bin/xmpp-web-gateway.js user add alice@example.com');
  t.match(behind, 'websocket_url: "wss://chat.example.com/xmpp-websocket"');
  t.match(behind, /WARNING: env\.TRUSTED_PROXIES is loopback/);
  t.notMatch(notes('--set', 'ingress.enabled=true', '--set', 'env.TRUSTED_PROXIES=10.244.0.0/16'), /WARNING/, 'no warning once set');
  t.match(notes('-f', CLUSTER_VALUES), 'kubectl exec -it -n im deploy/chat-xmpp-web-gateway --', 'a cluster: any pod');
});

t.test('secret variables given in clear go into a Secret of the chart, never into the pod spec', async (t) => {
  t.equal(readFileSync(join(CHART, 'templates', '_secret-env.tpl'), 'utf8'), renderHelmSecretNames(), 'the names are in sync (npm run env-example)');
  const url = 'postgres://xwg:s3cret@pg:5432/xwg';
  const objs = render('--set', 'env.STORAGE=postgres', '--set', `env.DATABASE_URL=${url}`);
  const secret = ofKind(objs, 'Secret').find((o) => o.metadata.name === 'chat-xmpp-web-gateway-env');
  t.same(secret?.stringData, { DATABASE_URL: url, REDIS_URL: '', JWT_SECRET: '' }, 'the set one and the empty ones');
  t.notMatch(JSON.stringify(workload(objs)), /s3cret/, 'the password is not in the pod spec');
  t.notMatch(JSON.stringify(ofKind(objs, 'ConfigMap')), /s3cret/, 'nor in the ConfigMap');
  const checksum = (o: Obj[]) => workload(o).spec.template.metadata.annotations['checksum/env-secret'] as string | undefined;
  t.match(checksum(objs), /^[0-9a-f]{64}$/);
  t.not(checksum(render('--set', 'env.STORAGE=postgres', '--set', 'env.DATABASE_URL=postgres://xwg:other@pg:5432/xwg')), checksum(objs), 'a new URL rolls the pods');
  const external = render('--set', 'env.STORAGE=postgres', '--set', 'databaseUrlFrom.secretName=pg');
  t.same(ofKind(external, 'Secret').find((o) => o.metadata.name === 'chat-xmpp-web-gateway-env')?.stringData, { REDIS_URL: '', JWT_SECRET: '' },
    'not the URL that comes from an existing Secret');
});

/** The variable names of .env.example, in its order. */
const ENV_EXAMPLE = [...readFileSync(join(ROOT, '.env.example'), 'utf8').matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!);

t.test('a ConfigMap and the Secret mirror .env.example one to one, read with envFrom', async (t) => {
  t.equal(readFileSync(join(CHART, 'templates', '_env-names.tpl'), 'utf8'), renderHelmEnvNames(), 'the names are in sync (npm run env-example)');
  t.ok(ENV_EXAMPLE.length > 50, `${ENV_EXAMPLE.length} variables in .env.example`);
  const objs = render();
  const map = ofKind(objs, 'ConfigMap')[0];
  const secret = ofKind(objs, 'Secret').find((o) => o.metadata.name === 'chat-xmpp-web-gateway-env')!;
  const inMap = Object.keys(map.data);
  const inSecret = Object.keys(secret.stringData);
  for (const name of ENV_EXAMPLE) t.equal(Number(inMap.includes(name)) + Number(inSecret.includes(name)), 1, `${name}: once across ConfigMap and Secret`);
  t.same([...inMap, ...inSecret].filter((n) => !ENV_EXAMPLE.includes(n)), [], 'nothing .env.example does not have');
  t.same(inMap, ENV_EXAMPLE.filter((n) => !inSecret.includes(n)), "in .env.example's order");
  t.match(map.data, { PORT: '5280', DATA_DIR: '/data', STORAGE: 'sqlite', TRUSTED_PROXIES: '127.0.0.1,::1' }, "values.yaml's values, as strings");
  const numbers = ofKind(render('--set-json', 'env.CLUSTER_INBOX_MAX_BYTES=67108864', '--set-json', 'env.SM_BUFFER=false'), 'ConfigMap')[0].data;
  t.match(numbers, { CLUSTER_INBOX_MAX_BYTES: '67108864', SM_BUFFER: 'false' }, 'a number of a values file is written whole, not 6.7108864e+07');
  t.same(container(objs).envFrom, [{ configMapRef: { name: map.metadata.name } }]);
  t.same(container(objs).env.map((e: Obj) => [e.name, e.valueFrom.secretKeyRef]), inSecret.map((n) => [n, { name: secret.metadata.name, key: n }]),
    'env: only the Secret, each key once');
});

t.test('in a cluster every variable is still set once: ConfigMap, the Secrets, the pod-computed ones', async (t) => {
  const objs = render('-f', CLUSTER_VALUES, '--set', 'env.CLUSTER_ADVERTISE_URL=');
  const names = [...Object.keys(ofKind(objs, 'ConfigMap')[0].data), ...container(objs).env.map((e: Obj) => e.name as string)];
  for (const name of ENV_EXAMPLE) t.equal(names.filter((n) => n === name).length, 1, `${name} once`);
  t.same(ofKind(objs, 'ConfigMap')[0].data.CLUSTER, 'redis', 'the chart sets the cluster mode');
  t.same(names.filter((n) => !ENV_EXAMPLE.includes(n)), ['POD_IP'], 'only POD_IP beside them, for $(POD_IP) expansion');
});

t.test('a changed config value rolls the pods (checksum/env-config)', async (t) => {
  const checksum = (...args: string[]) => workload(render(...args)).spec.template.metadata.annotations['checksum/env-config'] as string;
  const base = checksum();
  t.match(base, /^[0-9a-f]{64}$/);
  t.equal(checksum(), base, 'the same values, the same checksum');
  t.not(checksum('--set', 'env.LOG_LEVEL=debug'), base, 'LOG_LEVEL changed');
  t.equal(checksum('--set', 'env.JWT_SECRET=0123456789abcdef0123456789abcdef'), base, 'a secret is not in the ConfigMap');
});

t.test("the readiness probe waits longer than /readyz gives the store, so a slow store is a 503 with its reason", async (t) => {
  const probe = container(render()).readinessProbe;
  t.ok(probe.timeoutSeconds * 1000 > READY_STORAGE_TIMEOUT_MS, `timeoutSeconds ${probe.timeoutSeconds} > ${READY_STORAGE_TIMEOUT_MS} ms`);
});
