import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// test/setup/compile-tests.mjs, in a tree of its own: every test/**.ts (but fixtures) compiled beside it, its
// imports of ../../src/x.js pointed at dist/x.js, built first when a source is newer than its build.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function tree(t: Test): string {
  const root = t.testdir();
  for (const dir of ['test/setup', 'test/unit', 'test/helpers', 'test/fixtures', 'src', 'dist']) mkdirSync(join(root, dir), { recursive: true });
  copyFileSync(join(ROOT, 'test', 'setup', 'compile-tests.mjs'), join(root, 'test', 'setup', 'compile-tests.mjs'));
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'));
  // `npm run build` here: dist/a.js from src/a.ts's text, and a trace of the run.
  writeFileSync(join(root, 'package.json'), JSON.stringify({
    type: 'module',
    scripts: { build: "node -e \"const f=require('fs');f.writeFileSync('dist/a.js','export const a = '+JSON.stringify('rebuilt')+';\\n');f.writeFileSync('built','')\"" },
  }));
  writeFileSync(join(root, 'src', 'a.ts'), "export const a: string = 'src';\n");
  writeFileSync(join(root, 'dist', 'a.js'), "export const a = 'dist';\n");
  writeFileSync(join(root, 'test', 'helpers', 'h.ts'), "import { a } from '../../src/a.js';\nexport const h = (): string => `helper ${a}`;\n");
  writeFileSync(join(root, 'test', 'unit', 'x.test.ts'), [
    "import { h } from '../helpers/h.js';",
    "const { a }: { a: string } = await import('../../src/a.js');",
    "const text = \"import('../../src/a.js')\";",
    'process.stdout.write(`${h()} ${a} ${text}`);',
    '',
  ].join('\n'));
  writeFileSync(join(root, 'test', 'fixtures', 'f.ts'), 'export const f: number = 1;\n');
  const past = new Date(Date.now() - 60_000);
  utimesSync(join(root, 'src', 'a.ts'), past, past);
  return root;
}

const compile = (root: string) => spawnSync(process.execPath, [join(root, 'test', 'setup', 'compile-tests.mjs')], { cwd: root, encoding: 'utf8' });
const run = (root: string, file: string) => spawnSync(process.execPath, ['--enable-source-maps', join(root, file)], { cwd: root, encoding: 'utf8' });

t.test('each test .ts is compiled beside it, its imports of src/ pointed at dist/, and runs with no loader', async (t) => {
  const root = tree(t);
  const c = compile(root);
  t.equal(c.status, 0, c.stderr);
  const r = run(root, 'test/unit/x.test.js');
  t.equal(r.stdout, "helper dist dist import('../../src/a.js')", `the helper and the test both import dist/a.js, statically and dynamically; a string is left as it is\n${r.stderr}`);
  t.match(readFileSync(join(root, 'test', 'unit', 'x.test.js'), 'utf8'), /import\('\.\.\/\.\.\/dist\/a\.js'\)/);
  t.notOk(existsSync(join(root, 'test', 'fixtures', 'f.js')), 'fixtures are left alone');
  t.notOk(existsSync(join(root, 'built')), 'dist/ was current: no build');
});

t.test('a source newer than its build: dist/ is built first', async (t) => {
  const root = tree(t);
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'src', 'a.ts'), later, later);
  t.equal(compile(root).status, 0);
  t.ok(existsSync(join(root, 'built')), 'npm run build ran');
  t.equal(run(root, 'test/unit/x.test.js').stdout, "helper rebuilt rebuilt import('../../src/a.js')");
});

t.test('a changed test is compiled again; one removed loses its compiled file; a .js not made here is never overwritten', async (t) => {
  const root = tree(t);
  t.equal(compile(root).status, 0);
  writeFileSync(join(root, 'test', 'unit', 'x.test.ts'), "process.stdout.write('changed');\n");
  const later = new Date(Date.now() + 60_000);
  utimesSync(join(root, 'test', 'unit', 'x.test.ts'), later, later);
  t.equal(compile(root).status, 0);
  t.equal(run(root, 'test/unit/x.test.js').stdout, 'changed');
  unlinkSync(join(root, 'test', 'helpers', 'h.ts'));
  t.equal(compile(root).status, 0);
  t.notOk(existsSync(join(root, 'test', 'helpers', 'h.js')), 'the helper\'s compiled file is gone with it');
  writeFileSync(join(root, 'test', 'helpers', 'own.js'), 'export {};\n');
  writeFileSync(join(root, 'test', 'helpers', 'own.ts'), 'export {};\n');
  const refused = compile(root);
  t.not(refused.status, 0, 'the compile stops');
  t.match(refused.stderr, /test\/helpers\/own\.js exists and was not compiled here/);
  t.equal(readFileSync(join(root, 'test', 'helpers', 'own.js'), 'utf8'), 'export {};\n', 'and leaves that file as it was');
});

t.test('a stack trace of a compiled test names the TypeScript line', async (t) => {
  const root = tree(t);
  writeFileSync(join(root, 'test', 'unit', 'throws.test.ts'), 'interface Shape {\n  sides: number;\n}\nconst s: Shape = { sides: 3 };\nthrow new Error(`sides ${s.sides}`);\n');
  t.equal(compile(root).status, 0);
  const r = run(root, 'test/unit/throws.test.js');
  t.match(r.stderr, /Error: sides 3/, 'it ran');
  t.match(r.stderr, /throws\.test\.ts:5:7/, 'line 5 of the .ts, not of the JavaScript SWC made of it');
});
