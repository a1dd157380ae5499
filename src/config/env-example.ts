import { SCHEMA, type OptionSpec } from './schema.js';

const SPECS = Object.values(SCHEMA) as OptionSpec[];

function defaultText(spec: OptionSpec): string {
  if (spec.kind === 'list') return spec.default.length === 0 ? '' : spec.default.join(',');
  if (spec.kind === 'int-or-infinity' && spec.default === Number.POSITIVE_INFINITY) return 'infinity';
  return String(spec.default);
}

function rangeText(spec: OptionSpec): string {
  switch (spec.kind) {
    case 'int': return ` (${spec.min}..${spec.max}${spec.unit ? ` ${spec.unit}` : ''})`;
    case 'int-or-infinity': return ` (${spec.min}..${spec.max} or infinity)`;
    case 'enum': return ` (${spec.values.join('|')})`;
    case 'bool': return ' (true|false)';
    default: return '';
  }
}

/** `.env.example`, generated from the schema so the two cannot drift (a unit test compares them). */
export function renderEnvExample(): string {
  const lines = ['# xmpp-web-gateway configuration. Every variable is optional; the value shown is the default.',
    '# Set but empty (NAME=) is the default only where the default is empty (shown as NAME=); elsewhere it is a bad',
    '# value and stops the start: unset the variable for its default (a list that may be empty takes none).',
    '# Copy to .env (the real environment wins over .env). Generated from src/config/schema.ts.', ''];
  let group = '';
  for (const spec of SPECS) {
    if (spec.group !== group) {
      if (group !== '') lines.push('');
      lines.push(`## ${spec.group}`);
      group = spec.group;
    }
    lines.push(`# ${spec.doc}${rangeText(spec)}`);
    lines.push(`${spec.env}=${defaultText(spec)}`);
  }
  return `${lines.join('\n')}\n`;
}

// A | in a GFM table row starts a new cell, even inside a code span: the enum ranges (sqlite|postgres) need it escaped too.
const escapeCell = (s: string): string => s.replace(/\|/g, '\\|').replace(/</g, '&lt;');

/** The README's configuration table. */
export function renderConfigTable(): string {
  const rows = SPECS.map((s) => `| \`${s.env}\` | \`${defaultText(s) || '(empty)'}\` | ${escapeCell(`${s.doc}${rangeText(s)}`)} |`);
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}

/** The `env:` block of the Helm chart's values.yaml. */
export function renderHelmEnv(): string {
  return ['env:', ...SPECS.map((s) => `  ${s.env}: ${JSON.stringify(s.env === 'DATA_DIR' ? '/data' : defaultText(s))}`)].join('\n');
}

/**
 * The `env` part of the chart's values.schema.json: exactly the variables of
 * the schema, so `--set env.TRUSTED_PROXY=…` (a typo) fails the install instead
 * of being ignored. Values are scalars: `--set env.PORT=8080` gives a number;
 * the gateway's own validation judges them at start.
 */
export function renderHelmEnvSchema(): Record<string, unknown> {
  const scalar = { type: ['string', 'number', 'boolean'] };
  return {
    type: 'object', additionalProperties: false,
    properties: Object.fromEntries(SPECS.map((s) => [s.env, { ...scalar, description: s.doc }])),
  };
}

/**
 * The chart's templates/_secret-env.tpl: the variables the schema marks
 * secret. The chart puts those not taken from an existing Secret into a
 * Secret of its own and refers to it, so no password stands in the pod spec
 * or its ConfigMap.
 */
export function renderHelmSecretNames(): string {
  const names = SPECS.filter((s) => s.kind === 'string' && s.secret === true).map((s) => s.env);
  return [
    '{{/* Generated from src/config/schema.ts by `npm run env-example`: the variables marked secret. */}}',
    `{{- define "xwg.secretEnvNames" -}}${names.join(' ')}{{- end -}}`,
    '',
  ].join('\n');
}

/**
 * The chart's templates/_env-names.tpl: every variable of .env.example, in its
 * order. The chart's ConfigMap (templates/configmap.yaml) is built from this
 * list, so it mirrors .env.example one to one: what the schema marks secret
 * goes to the Secret instead, never to both.
 */
export function renderHelmEnvNames(): string {
  return [
    '{{/* Generated from src/config/schema.ts by `npm run env-example`: every variable of .env.example, in order. */}}',
    `{{- define "xwg.envNames" -}}${SPECS.map((s) => s.env).join(' ')}{{- end -}}`,
    '',
  ].join('\n');
}

/** Replaces what stands between two marker lines of `text` with `body`. */
export function replaceBetween(text: string, begin: string, end: string, body: string): string {
  const i = text.indexOf(begin);
  const j = text.indexOf(end, i);
  if (i === -1 || j === -1) throw new Error(`markers ${begin} … ${end} not found`);
  return `${text.slice(0, i + begin.length)}\n${body}\n${text.slice(j)}`;
}

export const README_MARKERS = ['<!-- config-table: generated from src/config/schema.ts by `npm run env-example`; a test keeps it in sync -->', '<!-- end config-table -->'] as const;
export const HELM_MARKERS = ['# begin env', '# end env'] as const;
