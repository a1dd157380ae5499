import { SCHEMA, type OptionSpec } from './schema.js';

function defaultText(spec: OptionSpec): string {
  if (spec.kind === 'list') return spec.default.join(',');
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
    '# Copy to .env (the real environment wins over .env). Generated from src/config/schema.ts.', ''];
  let group = '';
  for (const spec of Object.values(SCHEMA) as OptionSpec[]) {
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
