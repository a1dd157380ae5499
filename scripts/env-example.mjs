// Regenerates .env.example, the README's configuration table and the Helm
// values' env block, its part of values.schema.json and the chart's lists of
// variable names (the ConfigMap's, the Secret's) from the config schema (after `npm run build`).
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { HELM_MARKERS, README_MARKERS, renderConfigTable, renderEnvExample, renderHelmEnv, renderHelmEnvNames, renderHelmEnvSchema, renderHelmSecretNames, replaceBetween } from '../dist/config/env-example.js';

const at = (p) => new URL(`../${p}`, import.meta.url);
writeFileSync(at('.env.example'), renderEnvExample());
const readme = readFileSync(at('README.md'), 'utf8');
writeFileSync(at('README.md'), replaceBetween(readme, ...README_MARKERS, renderConfigTable()));
const helm = readFileSync(at('helm/xmpp-web-gateway/values.yaml'), 'utf8');
writeFileSync(at('helm/xmpp-web-gateway/values.yaml'), replaceBetween(helm, ...HELM_MARKERS, renderHelmEnv()));
const schemaFile = at('helm/xmpp-web-gateway/values.schema.json');
const schema = JSON.parse(readFileSync(schemaFile, 'utf8'));
schema.properties.env = renderHelmEnvSchema();
writeFileSync(schemaFile, `${JSON.stringify(schema, null, 2)}\n`);
writeFileSync(at('helm/xmpp-web-gateway/templates/_secret-env.tpl'), renderHelmSecretNames());
writeFileSync(at('helm/xmpp-web-gateway/templates/_env-names.tpl'), renderHelmEnvNames());
// The chart ships the dashboard and the alert rules (dashboard.configMap, prometheusRule): helm reads only files
// inside the chart, so it carries copies of deploy/'s (test/unit/helm-monitoring.test.ts compares them).
for (const f of ['grafana-dashboard.json', 'prometheus-rules.yaml']) copyFileSync(at(`deploy/${f}`), at(`helm/xmpp-web-gateway/files/${f}`));
