/**
 * tap's `before` program (package.json "tap"): compiles the suite's
 * TypeScript to JavaScript next to it, test/**\/x.ts → test/**\/x.js, so that
 * tap runs the compiled test files (its "include" is test/**\/*.test.js) and
 * no test process registers a module loader.
 *
 * Why: a loader's hooks run on a thread of their own (Node 20), and every
 * import of a test process, tap's and the gateway's included, is a round trip
 * to that thread. Measured on the 2-core machine, a file that runs a server
 * in-process spent 0.75 of its 1.9 CPU-s in the loader; ~270 files do.
 *
 * - Each file is compiled by SWC alone, as ts-loader-hooks.mjs does it (the
 *   options ts-node gave SWC; `npm run typecheck` checks the types), with an
 *   inline source map, so stack traces and tap's excerpts name the .ts line.
 * - A relative import that lands in src/ (static, re-export or a literal
 *   dynamic import) is pointed at dist/, which `npm test` builds first: the
 *   same code the spawned gateways run. A dist/ older than any source is
 *   built here first (`npm run build`), so a test never runs stale code.
 * - Only what changed is compiled again (the .js older than its .ts, or than
 *   this program); a compiled file whose .ts is gone is removed. Every file
 *   written starts with MARK, and only such files are ever overwritten or
 *   removed (git ignores them: .gitignore). test/fixtures/ is left alone (its .ts files are data, or are run
 *   by ts-loader.mjs, which a test file given as .ts still uses).
 */
import { readdirSync, readFileSync, statSync, writeFileSync, unlinkSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TEST = join(ROOT, 'test');
const SRC = join(ROOT, 'src');
const DIST = join(ROOT, 'dist');
const SELF = fileURLToPath(import.meta.url);
/** Before the first line (not a line of its own, which would move every line of the source map by one). */
export const MARK = '/* Compiled from the .ts beside it by test/setup/compile-tests.mjs: edit that one. */ ';

function* walk(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== join(TEST, 'fixtures')) yield* walk(path);
    } else yield path;
  }
}

/** Whether every source has its build, made after the source's last change (as ts-loader.mjs asks). */
function built() {
  for (const file of readdirSync(SRC, { recursive: true })) {
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
    const js = join(DIST, `${file.slice(0, -3)}.js`);
    if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(SRC, file)).mtimeMs) return false;
  }
  return true;
}

const mtime = (path) => { try { return statSync(path).mtimeMs; } catch { return -1; } };
const compiledHere = (path) => { try { return readFileSync(path, 'utf8').startsWith(MARK); } catch { return false; } };

/** `specifier`, imported from `file`, pointed at dist/ when it lands in src/. */
function toDist(file, specifier) {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return specifier;
  const target = join(dirname(file), specifier);
  if (!target.startsWith(SRC + sep)) return specifier;
  const rel = relative(dirname(file), join(DIST, relative(SRC, target))).split(sep).join('/');
  return rel.startsWith('.') ? rel : `./${rel}`;
}

/**
 * `source` with its imports of src/ pointed at dist/: every import, re-export
 * and dynamic import with a literal, as TypeScript's scanner finds them (not a
 * text search, which would also rewrite a string that only looks like one).
 * The lines stay where they are, for the source map.
 */
function pointAtDist(ts, file, source) {
  const imports = ts.preProcessFile(source, true, true).importedFiles;
  let out = source;
  for (const { fileName, pos } of [...imports].sort((x, y) => y.pos - x.pos)) {
    const to = toDist(file, fileName);
    if (to === fileName) continue;
    // `pos` is the literal's opening quote.
    const start = out.startsWith(fileName, pos + 1) ? pos + 1 : pos;
    if (!out.startsWith(fileName, start)) throw new Error(`${relative(ROOT, file)}: cannot find the import of ${fileName} at ${pos}`);
    out = out.slice(0, start) + to + out.slice(start + fileName.length);
  }
  return out;
}

export function compileTests() {
  if (!built()) {
    const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
    if (build.status !== 0) throw new Error('npm run build failed: the tests run dist/, which must be built from src/');
  }
  const require = createRequire(join(ROOT, 'package.json'));
  const swc = require('@swc/core');
  let ts;
  const self = mtime(SELF);
  let compiled = 0;
  const files = [...walk(TEST)];
  for (const file of files) {
    if (file.endsWith('.js') && !existsSync(`${file.slice(0, -3)}.ts`) && compiledHere(file)) unlinkSync(file);
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
    const out = `${file.slice(0, -3)}.js`;
    const at = mtime(out);
    if (at >= 0 && !compiledHere(out)) throw new Error(`${relative(ROOT, out)} exists and was not compiled here: rename it or its .ts`);
    if (at >= mtime(file) && at >= self) continue;
    ts ??= require('typescript');
    const { code } = swc.transformSync(pointAtDist(ts, file, readFileSync(file, 'utf8')), {
      filename: file, swcrc: false, sourceMaps: 'inline',
      module: { type: 'es6', strictMode: true },
      jsc: {
        parser: { syntax: 'typescript', tsx: false, dynamicImport: true, importAssertions: true },
        target: 'es2022', keepClassNames: true, transform: { legacyDecorator: true },
      },
    });
    writeFileSync(out, MARK + code);
    compiled++;
  }
  return compiled;
}

if (process.argv[1] === SELF) {
  const started = Date.now();
  const n = compileTests();
  if (n > 0) process.stderr.write(`compiled ${n} test files in ${Date.now() - started} ms\n`);
}
