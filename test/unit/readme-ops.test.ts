/**
 * The README's Deploy, Monitor and Operate sections (issue 17 item 8) say only
 * what runs: each `helm install`/`helm upgrade` command they show is rendered
 * by a real helm (test/helpers/helm.ts) as `helm template` with the same
 * values, and the objects carry those values; the `kubectl exec` line is the
 * one the chart's NOTES print; the static host-meta is byte for byte the
 * gateway's answer; the alert table matches deploy/prometheus-rules.yaml.
 * Not run: the docker commands (no container engine here) and kubectl
 * against a cluster.
 */
import t from 'tap';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../helpers/built.js';
import { CHART, createHelm, podEnv, renderChart } from '../helpers/helm.js';
import { startServer } from '../helpers/server.js';

type Obj = Record<string, any>;
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const helm = createHelm();

/** The text of the `## title` section, up to the next `## ` heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  if (start === -1) throw new Error(`README.md has no "## ${title}" section`);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

/** The commands of the ```sh fences of `text`, continuation lines joined, comments dropped. */
function shellCommands(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => m[1]!.replace(/\\\n\s*/g, ' ').split('\n'))
    .map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '');
}

const DEPLOY_OPERATE = `${section('Deploy')}${section('Operate')}`;
const HELM_COMMANDS = shellCommands(`${DEPLOY_OPERATE}${section('Monitor')}`).filter((c) => /^helm (install|upgrade) /.test(c));

/** The values arguments of `helm install|upgrade chat ./helm/xmpp-web-gateway …`, for `helm template` (value files made absolute). */
function valuesArgs(command: string): string[] {
  const [, , name, chart, ...rest] = command.split(/\s+/);
  if (name !== 'chat' || chart !== './helm/xmpp-web-gateway') throw new Error(`${command}: not release chat of this repository's chart`);
  const args = rest.filter((a) => a !== '--reuse-values'); // helm template has no release to reuse: the defaults stand in
  return args.map((a, i) => (args[i - 1] === '-f' ? join(ROOT, a) : a));
}

t.test('the README has one Deploy, one Monitor and one Operate section, in that order, and no older copies', async (t) => {
  for (const s of ['Deploy', 'Monitor', 'Operate']) t.equal(README.split(`\n## ${s}\n`).length - 1, 1, `one "## ${s}"`);
  const at = ['Deploy', 'Monitor', 'Operate'].map((s) => README.indexOf(`\n## ${s}\n`));
  t.ok(at.every((i) => i > 0) && at[0]! < at[1]! && at[1]! < at[2]!, `sections at ${at.join(', ')}`);
  for (const old of ['Run the image', 'Deploy with Helm', 'Behind a reverse proxy (nginx)', 'Running on a real site', 'Operations']) {
    t.notOk(README.includes(`\n## ${old}\n`), `"## ${old}" is folded in`);
  }
  for (const sub of ['With Docker', 'With Helm', 'Behind ingress-nginx or a Gateway', 'Behind nginx', 'TLS at the proxy, host-meta on the bare domain']) {
    t.ok(section('Deploy').includes(`\n### ${sub}\n`), `Deploy: ${sub}`);
  }
  for (const sub of ['Health, readiness and shutdown', 'Users, sessions and backups', 'Upgrade and migrations', 'Troubleshooting']) {
    t.ok(section('Operate').includes(`\n### ${sub}\n`), `Operate: ${sub}`);
  }
  const monitor = section('Monitor');
  const a = monitor.indexOf('\n<!-- metrics-table:start -->\n');
  t.ok(a > 0 && monitor.indexOf('\n<!-- metrics-table:end -->\n') > a, 'the metrics table markers stand in Monitor, in order');
  for (const trouble of ['storage', '403 on /metrics', 'one IP', 'Origin refused', 'item-not-found']) t.match(section('Operate'), trouble, `troubleshooting: ${trouble}`);
});

t.test("every helm command the README shows renders, with the values it sets", async (t) => {
  t.ok(HELM_COMMANDS.length >= 4, `${HELM_COMMANDS.length} helm commands`);
  for (const command of HELM_COMMANDS) {
    const args = valuesArgs(command);
    const objs = renderChart(helm, args);
    const env = new Map(podEnv(objs).map((e) => [e.name, e.value]));
    const sets = args.flatMap((a, i) => (args[i - 1] === '--set' ? [a] : []));
    for (const set of sets) {
      const [key, value] = [set.slice(0, set.indexOf('=')), set.slice(set.indexOf('=') + 1)];
      if (key.startsWith('env.')) t.equal(env.get(key.slice(4)), value, `${key} reaches the container`);
      if (key === 'ingress.host') t.equal(objs.find((o) => o.kind === 'Ingress')?.spec.rules[0].host, value, 'the Ingress has the host');
      if (key === 'serviceMonitor.enabled') t.ok(objs.some((o) => o.kind === 'ServiceMonitor'), 'a ServiceMonitor');
      if (key === 'prometheusRule.enabled') t.ok(objs.some((o) => o.kind === 'PrometheusRule'), 'a PrometheusRule');
      if (key.startsWith('prometheusRule.labels.')) t.equal(objs.find((o) => o.kind === 'PrometheusRule')?.metadata.labels[key.split('.')[2]!], value, key);
      if (key === 'dashboard.configMap.enabled') t.ok(objs.some((o) => o.metadata.name === 'chat-xmpp-web-gateway-dashboard'), 'the dashboard ConfigMap');
      if (key.startsWith('image.')) t.match(objs.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment')!.spec.template.spec.containers[0].image, value, key);
    }
    t.pass(`rendered: ${command}`);
  }
});

t.test("the README's kubectl exec for the first user is the one the chart's NOTES print", async (t) => {
  const r = helm(['install', 'chat', CHART, '--dry-run=client', '--set', 'env.XMPP_DOMAIN=example.com']);
  t.ok(r.ok, r.stderr);
  const fromNotes = /kubectl exec .*/.exec(r.stdout.slice(r.stdout.indexOf('NOTES:')))![0].replace(' -n default', '');
  const shown = shellCommands(DEPLOY_OPERATE).filter((c) => c.startsWith('kubectl exec'));
  t.same(shown, [fromNotes]);
  t.ok(section('Operate').includes(`\`${fromNotes}\``), 'Operate names the same command');
});

t.test('the static host-meta of the README is what the gateway answers', async (t) => {
  const at = README.indexOf('<!-- host-meta: static -->');
  const block = /```xml\n([\s\S]*?)\n```/.exec(README.slice(at))?.[1];
  t.ok(at > 0 && block, 'the marked block');
  const server = await startServer({ XMPP_DOMAIN: 'example.com', PUBLIC_URL: 'https://chat.example.com' });
  t.teardown(() => server.close());
  const res = await fetch(`${server.httpUrl}/.well-known/host-meta`);
  t.equal(await res.text(), block);
  t.match(res.headers.get('content-type'), /^application\/xrd\+xml/);
  t.equal(res.headers.get('access-control-allow-origin'), '*', 'as the README tells the static file to be served');
});

t.test("Monitor's alert table is deploy/prometheus-rules.yaml, and the files it names exist", async (t) => {
  const monitor = section('Monitor');
  for (const file of ['deploy/grafana-dashboard.json', 'deploy/prometheus-rules.yaml']) {
    t.ok(monitor.includes(file) && existsSync(join(ROOT, file)), file);
  }
  const rules = parseYaml(readFileSync(join(ROOT, 'deploy', 'prometheus-rules.yaml'), 'utf8')) as Obj;
  const fromFile = (rules.spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]).map((r) => [r.alert, r.for, r.labels.severity]);
  const fromTable = [...monitor.matchAll(/^\| `(Xmpp\w+)` \| [^|]+ \| (\w+) \| (\w+) \|$/gm)].map((m) => [m[1], m[2], m[3]]);
  t.same(fromTable, fromFile);
});
