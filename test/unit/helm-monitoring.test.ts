/**
 * The chart ships deploy/'s alert rules and dashboard when asked
 * (prometheusRule.enabled, dashboard.configMap.enabled; issue 17 item 3),
 * rendered by a real helm (test/helpers/helm.ts) from the copies in the
 * chart's files/ (helm reads nothing outside the chart), which must equal
 * deploy/'s. Not checked: a live Prometheus Operator or Grafana sidecar.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CHART, createHelm, renderChart } from '../helpers/helm.js';
import { ROOT } from '../helpers/built.js';

type Obj = Record<string, any>;
const helm = createHelm();
const render = (...args: string[]) => renderChart(helm, args);
const ofKind = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);
const DEPLOY = (f: string) => readFileSync(join(ROOT, 'deploy', f), 'utf8');

t.test("the chart's files/ are deploy/'s files (npm run env-example copies them)", async (t) => {
  for (const f of ['grafana-dashboard.json', 'prometheus-rules.yaml']) t.equal(readFileSync(join(CHART, 'files', f), 'utf8'), DEPLOY(f), f);
});

t.test('prometheusRule.enabled renders the alert rules of deploy/ as a PrometheusRule', async (t) => {
  t.same(ofKind(render(), 'PrometheusRule'), [], 'off by default');
  const rule = ofKind(render('--set', 'prometheusRule.enabled=true', '--set', 'prometheusRule.labels.release=kube-prometheus'), 'PrometheusRule')[0];
  t.equal(rule?.apiVersion, 'monitoring.coreos.com/v1');
  t.match(rule.metadata.labels, { 'app.kubernetes.io/instance': 'chat', release: 'kube-prometheus' }, "the ruleSelector's label");
  t.same(rule.spec, (parseYaml(DEPLOY('prometheus-rules.yaml')) as Obj).spec, "the file's groups, Prometheus templates untouched");
});

t.test('dashboard.configMap.enabled renders the dashboard for the Grafana sidecar, its datasource filled in', async (t) => {
  t.same(ofKind(render(), 'ConfigMap').filter((o) => o.metadata.name.endsWith('-dashboard')), [], 'off by default');
  const dashboard = (...args: string[]) => ofKind(render('--set', 'dashboard.configMap.enabled=true', ...args), 'ConfigMap')
    .find((o) => o.metadata.name === 'chat-xmpp-web-gateway-dashboard')!;
  const map = dashboard();
  t.equal(map.metadata.labels.grafana_dashboard, '1', "the sidecar's default label");
  const json = map.data['xmpp-web-gateway.json'] as string;
  t.notMatch(json, '${DS_PROMETHEUS}', 'no import input left: the sidecar does not fill it');
  t.same(JSON.parse(json), JSON.parse(DEPLOY('grafana-dashboard.json').replaceAll('${DS_PROMETHEUS}', 'prometheus')));
  const mine = JSON.parse(dashboard('--set', 'dashboard.datasourceUid=my-prom').data['xmpp-web-gateway.json']) as Obj;
  t.ok(mine.panels.filter((p: Obj) => p.type !== 'row').every((p: Obj) => p.datasource.uid === 'my-prom'), 'datasourceUid reaches every panel');
  const r = helm(['template', 'chat', CHART, '--set', 'dashboard.datasourceUid=']);
  t.match(r.stderr, /values don't meet the specifications/, 'an empty datasource uid is refused');
});
