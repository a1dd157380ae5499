/**
 * The README's metrics table ("Monitor") is generated from a real server's
 * registry by `npm run metrics-table`: this fails when a metric was added,
 * renamed or re-described without regenerating it.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import { METRICS_TABLE_MARKERS, renderMetricsTable } from '../../src/metrics/table.js';

t.test('the README metrics table matches the registry', async (t) => {
  const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent' }), createMemoryStorage(), { logger: false });
  t.teardown(() => app.shutdown());
  const table = renderMetricsTable(app.registry);
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const [start, end] = METRICS_TABLE_MARKERS;
  const i = readme.indexOf(start);
  const j = readme.indexOf(end);
  t.ok(i !== -1 && j > i, 'the markers are in README.md');
  t.equal(readme.slice(i + start.length, j).trim(), table.trim(), 'up to date: run `npm run metrics-table`');
  t.match(table, /\| `xmpp_sm_resumes_total` \| counter \| outcome, from, to \|/, 'a row per metric, with its labels');
});
