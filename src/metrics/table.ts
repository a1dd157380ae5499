import type { Registry } from 'prom-client';

export const METRICS_TABLE_MARKERS = ['<!-- metrics-table:start -->', '<!-- metrics-table:end -->'] as const;

/** What prom-client's metric objects carry besides what its types declare. */
interface Described {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  readonly constructor: { readonly name: string };
}

/**
 * The README's metrics table (issue 17 item 8, "Monitor"): every xmpp_*
 * metric of a server's registry, with its type, labels and help, generated
 * by `npm run metrics-table`; a test keeps it in sync. prom-client's default
 * process metrics are named in one line, not listed.
 */
export function renderMetricsTable(registry: Registry): string {
  const rows = (registry.getMetricsAsArray() as unknown as Described[])
    .filter((m) => m.name.startsWith('xmpp_'))
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((m) => `| \`${m.name}\` | ${m.constructor.name.toLowerCase()} | ${(m.labelNames ?? []).join(', ') || '–'} | ${m.help.replaceAll('|', '\\|').replaceAll('<', '&lt;')} |`);
  return [
    '| name | type | labels | help |',
    '|---|---|---|---|',
    ...rows,
    '',
    'Also prom-client\'s default process metrics (`process_cpu_seconds_total`, `nodejs_eventloop_lag_p99_seconds`, heap and GC);',
    'with `CLUSTER=redis`, the `xmpp_cluster_*` metrics of src/cluster/metrics.ts.',
  ].join('\n');
}
