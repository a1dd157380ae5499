import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// test/setup/ts-loader.mjs, in a tree of its own: a test's import of ../../src/x.js loads dist/x.js while every
// source has its build, built after it; otherwise the sources, every one of them, compiled from TypeScript.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function tree(t: Test): string {
  const root = t.testdir();
  mkdirSync(join(root, 'test', 'setup'), { recursive: true });
  for (const file of ['ts-loader.mjs', 'ts-loader-hooks.mjs']) copyFileSync(join(ROOT, 'test', 'setup', file), join(root, 'test', 'setup', file));
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  for (const dir of ['src/util', 'dist/util', 'test/unit']) mkdirSync(join(root, dir), { recursive: true });
  writeFileSync(join(root, 'src', 'a.ts'), "import { b } from './util/b.js';\nexport const a: string = `src ${b}`;\n");
  writeFileSync(join(root, 'src', 'util', 'b.ts'), "type Where = 'src';\nexport const b: Where = 'src';\n");
  writeFileSync(join(root, 'dist', 'a.js'), "import { b } from './util/b.js';\nexport const a = `dist ${b}`;\n");
  writeFileSync(join(root, 'dist', 'util', 'b.js'), "export const b = 'dist';\n");
  writeFileSync(join(root, 'test', 'unit', 'x.test.ts'), "const { a }: { a: string } = await import('../../src/a.js');\nprocess.stdout.write(a);\n");
  const past = new Date(Date.now() - 60_000);
  for (const file of ['src/a.ts', 'src/util/b.ts']) utimesSync(join(root, file), past, past);
  return root;
}

const run = (root: string, file = 'x.test.ts') => spawnSync(process.execPath, ['--enable-source-maps', `--import=${join(root, 'test', 'setup', 'ts-loader.mjs')}`, join(root, 'test', 'unit', file)], { encoding: 'utf8' });

t.test('with every source built after its last change, a test imports the build', async (t) => {
  const r = run(tree(t));
  t.equal(r.stdout, 'dist dist', r.stderr);
});

t.test('with one source changed after the build, a test imports the sources, all of them, compiled', async (t) => {
  const root = tree(t);
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'src', 'util', 'b.ts'), later, later);
  const r = run(root);
  t.equal(r.stdout, 'src src', r.stderr);
});

t.test('with a source that has no build, a test imports the sources', async (t) => {
  const root = tree(t);
  writeFileSync(join(root, 'src', 'c.ts'), '');
  utimesSync(join(root, 'src', 'c.ts'), new Date(0), new Date(0));
  const r = run(root);
  t.equal(r.stdout, 'src src', r.stderr);
});

t.test('a stack trace names the TypeScript line', async (t) => {
  const root = tree(t);
  writeFileSync(join(root, 'test', 'unit', 'throws.test.ts'), 'interface Shape {\n  sides: number;\n}\nconst s: Shape = { sides: 3 };\nthrow new Error(`sides ${s.sides}`);\n');
  const r = run(root, 'throws.test.ts');
  t.match(r.stderr, /Error: sides 3/, 'it ran');
  t.match(r.stderr, /throws\.test\.ts:5:7/, 'line 5 of the .ts, not of the JavaScript SWC made of it');
});
