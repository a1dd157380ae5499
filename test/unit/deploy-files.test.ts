/**
 * deploy/grafana-dashboard.json and deploy/prometheus-rules.yaml (issue 17
 * item 3): both parse, the dashboard has the panels the README promises with
 * its datasource as an import input, every alert has what an on-call needs
 * (for, severity, summary, description, runbook), every PromQL expression
 * parses with Prometheus' own grammar (@prometheus-io/lezer-promql, the parser
 * of the Prometheus UI), and every metric they name is a `# TYPE` line of a
 * real /metrics of a started server. Not checked: the queries against a live
 * Prometheus, and the dashboard in a live Grafana (neither runs here).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { ROOT } from '../helpers/built.js';
import { startServer } from '../helpers/server.js';

type Obj = Record<string, any>;
const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana-dashboard.json'), 'utf8')) as Obj;
const rules = parseYaml(readFileSync(join(ROOT, 'deploy', 'prometheus-rules.yaml'), 'utf8')) as Obj;

const panels = (dashboard.panels as Obj[]).filter((p) => p.type !== 'row');
const dashboardExprs = panels.flatMap((p) => (p.targets as Obj[]).map((q) => ({ where: `panel "${p.title}" ${q.refId}`, expr: q.expr as string })));
const alerts = (rules.spec.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
const ruleExprs = alerts.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr as string }));
const ALL = [...dashboardExprs, ...ruleExprs];

/** Grafana's interval variables, replaced by durations before parsing as PromQL. */
const plain = (expr: string) => expr.replace(/\$__(rate_interval|interval|range)\b/g, '5m');

interface Analysis {
  readonly errors: number[];
  readonly metrics: string[];
  /** Label names of selectors ({metric, label}) and of by/without groupings (metric undefined). */
  readonly labels: Array<{ metric: string | undefined; label: string }>;
}

/** The syntax errors of `expr` (their offsets), the metric names of its vector selectors, and the label names it uses. */
function analyse(expr: string): Analysis {
  const out: Analysis = { errors: [], metrics: [], labels: [] };
  const text = plain(expr);
  parser.parse(text).iterate({
    enter: (n) => {
      if (n.type.isError) out.errors.push(n.from);
      if (n.name === 'Identifier' && n.node.parent?.name === 'VectorSelector') out.metrics.push(text.slice(n.from, n.to));
      if (n.name !== 'LabelName') return;
      const selector = n.node.parent?.parent?.parent;
      const metric = selector?.name === 'VectorSelector' ? selector.getChild('Identifier') : null;
      out.labels.push({ metric: metric ? text.slice(metric.from, metric.to) : undefined, label: text.slice(n.from, n.to) });
    },
  });
  return out;
}

t.test('the PromQL check itself refuses what Prometheus refuses', async (t) => {
  t.same(analyse('sum by (le) (rate(xmpp_sm_queue_depth_bucket{a="b"}[$__rate_interval]))'),
    { errors: [], metrics: ['xmpp_sm_queue_depth_bucket'], labels: [{ metric: undefined, label: 'le' }, { metric: 'xmpp_sm_queue_depth_bucket', label: 'a' }] });
  t.not(analyse('sum(rate(xmpp_sessions[5m])').errors.length, 0, 'an unclosed bracket');
  t.not(analyse('rates(xmpp_sessions[5m])').errors.length, 0, 'an unknown function');
  t.not(analyse('xmpp_sessions{transport="ws"').errors.length, 0, 'an unclosed matcher');
});

t.test('every expression of the dashboard and the rules is valid PromQL', async (t) => {
  t.ok(ALL.length >= 25, `${ALL.length} expressions`);
  for (const { where, expr } of ALL) t.same(analyse(expr).errors, [], `${where}: ${expr.replace(/\s+/g, ' ').trim()}`);
});

t.test('the dashboard: datasource as an import input, the panels the README names', async (t) => {
  t.match(dashboard.__inputs, [{ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }]);
  for (const p of panels) {
    t.same(p.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, `${p.title}: the imported datasource`);
    t.ok(p.targets.length > 0 && p.gridPos.w > 0 && p.gridPos.h > 0, `${p.title}: a query and a place`);
  }
  const titles = panels.map((p) => p.title as string);
  for (const title of ['Reloads survived', 'Sessions by transport and state', 'Logins/s', 'Resumes by outcome', 'Stanzas in/out', 'Bytes in/out',
    'BOSH held requests', 'SM queue depth', 'Offline backlog', 'Refusals by limit', 'Stream errors', 'Event-loop lag', 'Storage latency']) {
    t.ok(titles.includes(title), `panel "${title}"`);
  }
  const big = panels.find((p) => p.title === 'Reloads survived')!;
  t.equal(big.type, 'stat', 'reloads survived is the big number');
  t.match(big.targets[0].expr, /xmpp_sm_resumes_total\{outcome="resumed"\}.*\/.*xmpp_sm_resumes_total\[/s, 'resumed over all resumes');
  t.equal(new Set(panels.map((p) => p.id)).size, panels.length, 'panel ids are unique');
});

t.test('the PrometheusRule: the five alerts, each with for, severity, summary, description and a runbook hint', async (t) => {
  t.match(rules, { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'xmpp-web-gateway' } });
  t.same(alerts.map((r) => r.alert).sort(),
    ['XmppEventLoopLagHigh', 'XmppReadinessFlapping', 'XmppResumeFailureRatioHigh', 'XmppSaslFailureSpike', 'XmppStorageErrors']);
  for (const r of alerts) {
    t.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
    t.ok(['warning', 'critical'].includes(r.labels?.severity), `${r.alert}: severity ${r.labels?.severity}`);
    for (const key of ['summary', 'description', 'runbook']) t.ok(typeof r.annotations?.[key] === 'string' && r.annotations[key].length > 10, `${r.alert}: ${key}`);
  }
  t.match(alerts.find((r) => r.alert === 'XmppReadinessFlapping')!.expr, /xmpp_readiness_changes_total/);
});

/** `# TYPE name type` lines of a Prometheus text exposition. */
function types(exposition: string): Map<string, string> {
  return new Map([...exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** A name as exposed: itself, or a histogram's (or summary's) _bucket/_sum/_count series. */
function exposed(name: string, typed: Map<string, string>): boolean {
  if (typed.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const kind = m ? typed.get(m[1]!) : undefined;
  return kind === 'histogram' || (kind === 'summary' && m![2] !== 'bucket');
}

t.test("every metric the dashboard and the rules name is in a real server's /metrics", async (t) => {
  const server = await startServer();
  t.teardown(() => server.close());
  const res = await fetch(`${server.httpUrl}/metrics`);
  t.equal(res.status, 200);
  const typed = types(await res.text());
  t.ok(typed.has('xmpp_sessions') && typed.has('nodejs_eventloop_lag_p99_seconds'), 'the exposition is read');
  const named = new Set(ALL.flatMap(({ expr }) => analyse(expr).metrics));
  // The brief's regex over the raw text must find no name the parser missed.
  const byRegex = new Set(ALL.flatMap(({ expr }) => expr.match(/\b(?:xmpp|nodejs|process)_[a-z0-9_]+/g) ?? []));
  t.same([...byRegex].filter((n) => !named.has(n)), [], 'the parser found every name the regex finds');
  const missing = [...named].filter((n) => !exposed(n, typed)).sort();
  t.same(missing, [], `${named.size} metric names, all exposed`);
});

/** Labels Prometheus adds to every scraped series (the target's), and a histogram bucket's le. */
const SCRAPE_LABELS = ['instance', 'job', 'namespace', 'pod', 'service'];

t.test('every label the dashboard and the rules use is a label of the metric (its labelNames in the registry)', async (t) => {
  const server = await startServer();
  t.teardown(() => server.close());
  const labelsOf = (name: string): string[] => {
    const base = name.replace(/_(bucket|sum|count)$/, '');
    const metric = (server.app.registry.getSingleMetric(name) ?? server.app.registry.getSingleMetric(base)) as { labelNames?: string[] } | undefined;
    if (metric === undefined) return [];
    return [...(metric.labelNames ?? []), ...(name.endsWith('_bucket') ? ['le'] : [])];
  };
  let checked = 0;
  for (const { where, expr } of ALL) {
    const a = analyse(expr);
    const all = a.metrics.flatMap(labelsOf);
    for (const { metric, label } of a.labels) {
      if (SCRAPE_LABELS.includes(label)) continue;
      const known = metric === undefined ? all : labelsOf(metric);
      t.ok(known.includes(label), `${where}: ${label} is a label of ${metric ?? a.metrics.join(' or ')}`);
      checked++;
    }
  }
  t.ok(checked >= 30, `${checked} label uses checked`);
});
