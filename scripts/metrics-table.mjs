// Regenerates the README's metrics table ("Monitor") from a real server's registry (after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
import { buildApp } from '../dist/app.js';
import { loadConfig } from '../dist/config/index.js';
import { replaceBetween } from '../dist/config/env-example.js';
import { METRICS_TABLE_MARKERS, renderMetricsTable } from '../dist/metrics/table.js';
import { createMemoryStorage } from '../dist/storage/index.js';

const app = await buildApp(loadConfig({ LOG_LEVEL: 'silent' }), createMemoryStorage(), { logger: false });
const table = renderMetricsTable(app.registry);
await app.shutdown();
const readme = new URL('../README.md', import.meta.url);
writeFileSync(readme, replaceBetween(readFileSync(readme, 'utf8'), ...METRICS_TABLE_MARKERS, table));
