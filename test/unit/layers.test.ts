import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/**
 * The layers of docs/ARCHITECTURE.md, enforced: dependency-cruiser runs the
 * import rules of .dependency-cruiser.cjs on src/, and a TypeScript scan
 * checks what is not an import (only main.ts and cli/ exit the process or
 * read the environment). Both also run on test/fixtures/layers/src, a tree
 * with one break of each rule, so a rule that stopped matching fails here
 * instead of passing silently forever.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONFIG = '.dependency-cruiser.cjs';
const CLI = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const FIXTURE = 'test/fixtures/layers/src';

interface CruiseViolation {
  readonly from: string;
  readonly to: string;
  readonly rule: { readonly name: string };
  readonly cycle?: ReadonlyArray<{ readonly name: string }>;
}

/** One line per violation: `rule: from → to` (a cycle lists every step), paths relative to `dir`. */
function cruise(dir: string): string[] {
  const run = spawnSync(process.execPath, [CLI, '--config', CONFIG, '--output-type', 'json', dir], {
    cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024,
  });
  if (!run.stdout) throw new Error(`dependency-cruiser did not run (exit ${run.status}): ${run.stderr}`);
  const result = JSON.parse(run.stdout) as { summary: { violations: CruiseViolation[] } };
  const short = (path: string) => path.startsWith(`${dir}/`) ? path.slice(dir.length + 1) : path;
  return result.summary.violations.map((v) => {
    const steps = v.cycle ? [v.from, ...v.cycle.map((c) => c.name)] : [v.from, v.to];
    return `${v.rule.name}: ${steps.map(short).join(' → ')}`;
  }).sort();
}

function* typescriptFiles(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* typescriptFiles(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

/**
 * `process.exit` and `process.env` outside main.ts and cli/ (ARCHITECTURE.md:
 * main.ts is the only place that exits; no process.env outside the entry
 * points, which hand it to config/). Read from the syntax tree, so comments
 * and strings that mention them do not count.
 */
function processUses(dir: string): string[] {
  const found: string[] = [];
  for (const file of typescriptFiles(join(ROOT, dir))) {
    const name = relative(join(ROOT, dir), file).split(sep).join('/');
    if (name === 'main.ts' || name.startsWith('cli/')) continue;
    const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
    const visit = (node: ts.Node): void => {
      if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'process'
        && (node.name.text === 'exit' || node.name.text === 'env')) {
        const line = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
        found.push(`${name}:${line} process.${node.name.text}`);
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found;
}

t.test('src/ keeps to its layers: no import breaks a rule of .dependency-cruiser.cjs', async (t) => {
  t.same(cruise('src'), [], 'every line is an import against the layers (docs/ARCHITECTURE.md)');
});

t.test('only main.ts and cli/ exit the process or read the environment', async (t) => {
  t.same(processUses('src'), []);
});

t.test('every rule fires on a tree that breaks it', async (t) => {
  const found = cruise(FIXTURE);
  t.same(found, [
    'base-imports-nothing-above: xml/element.ts → xmpp/session.ts',
    'base-uses-no-server-library: util/server.ts → node_modules/fastify/fastify.js',
    'config-read-by-the-outer-layers: transports/websocket.ts → config/index.ts',
    'core-imports-storage-ports-only: xmpp/core.ts → storage/index.ts',
    'core-knows-no-cluster: xmpp/directory.ts → cluster/index.ts',
    'core-knows-no-transport-http-or-metrics: xmpp/core.ts → transports/websocket.ts',
    'no-circular-at-runtime: xmpp/features/stream-management/flow.ts → xmpp/features/stream-management/index.ts → xmpp/features/stream-management/flow.ts',
    'no-circular: jid/a.ts → jid/b.ts → jid/a.ts',
    'no-unresolvable: app.ts → ./missing.js',
    'only-main-starts-the-app: http/routes.ts → app.ts',
    'pg-only-in-storage-postgres: storage/pool.ts → node_modules/pg/lib/index.js',
    'redis-only-in-cluster: storage/cache.ts → node_modules/@redis/client/dist/index.js',
    'storage-below-the-core: storage/memory.ts → xmpp/session.ts',
    'transports-are-adapters: transports/websocket.ts → xmpp/features/stream-management/index.ts',
  ]);
  // A rule added to the config without a break in the fixture would be unproven.
  const rules = (createRequire(import.meta.url)(join(ROOT, CONFIG)) as { forbidden: Array<{ name: string }> }).forbidden;
  const fired = new Set(found.map((line) => line.slice(0, line.indexOf(':'))));
  t.same(rules.map((r) => r.name).filter((name) => !fired.has(name)), [], 'no rule goes untested');
  t.same(processUses(FIXTURE), ['xmpp/exits.ts:3 process.exit', 'xmpp/exits.ts:3 process.env']);
});
