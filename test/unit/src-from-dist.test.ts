import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// test/setup/src-from-dist.mjs, in a tree of its own: a test's import of ../../src/x.js loads dist/x.js while every
// source has its build, built after it; otherwise the sources, every one of them.
const SETUP = fileURLToPath(new URL('../setup/', import.meta.url));

function tree(t: Test): string {
  const root = t.testdir();
  mkdirSync(join(root, 'test', 'setup'), { recursive: true });
  for (const file of ['src-from-dist.mjs', 'src-from-dist-hooks.mjs']) copyFileSync(join(SETUP, file), join(root, 'test', 'setup', file));
  for (const dir of ['src/util', 'dist/util', 'test/unit']) mkdirSync(join(root, dir), { recursive: true });
  // Plain JavaScript under src/ stands in for what ts-node would load from src/*.ts.
  writeFileSync(join(root, 'src', 'a.ts'), '');
  writeFileSync(join(root, 'src', 'util', 'b.ts'), '');
  writeFileSync(join(root, 'src', 'a.js'), "import { b } from './util/b.js';\nexport const a = `src ${b}`;\n");
  writeFileSync(join(root, 'src', 'util', 'b.js'), "export const b = 'src';\n");
  writeFileSync(join(root, 'dist', 'a.js'), "import { b } from './util/b.js';\nexport const a = `dist ${b}`;\n");
  writeFileSync(join(root, 'dist', 'util', 'b.js'), "export const b = 'dist';\n");
  writeFileSync(join(root, 'test', 'unit', 'x.mjs'), "const { a } = await import('../../src/a.js');\nprocess.stdout.write(a);\n");
  const past = new Date(Date.now() - 60_000);
  for (const file of ['src/a.ts', 'src/util/b.ts']) utimesSync(join(root, file), past, past);
  return root;
}

const run = (root: string) => spawnSync(process.execPath, [`--import=${join(root, 'test', 'setup', 'src-from-dist.mjs')}`, join(root, 'test', 'unit', 'x.mjs')], { encoding: 'utf8' });

t.test('with every source built after its last change, a test imports the build', async (t) => {
  const r = run(tree(t));
  t.equal(r.stdout, 'dist dist', r.stderr);
});

t.test('with one source changed after the build, a test imports the sources, all of them', async (t) => {
  const root = tree(t);
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'src', 'util', 'b.ts'), later, later);
  t.equal(run(root).stdout, 'src src');
});

t.test('with a source that has no build, a test imports the sources', async (t) => {
  const root = tree(t);
  writeFileSync(join(root, 'src', 'c.ts'), '');
  utimesSync(join(root, 'src', 'c.ts'), new Date(0), new Date(0));
  t.equal(run(root).stdout, 'src src');
});
