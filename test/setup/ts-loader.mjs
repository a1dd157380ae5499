/**
 * The suite's TypeScript loader, in every test process (package.json "tap":
 * "node-arg"; tap's own, @tapjs/typescript, is switched off there). tap runs
 * each test file in a process of its own, ~270 of them; with ts-node, about
 * half of a file's start was the loader itself (typescript.js loaded into two
 * threads, ts-node's resolver on every import) before any test ran: 2.0 CPU-s
 * for an empty test file, 1.0 s with this one, and 4.2 against 2.6 s for a file
 * that runs a server in-process (measured on the 2-core machine).
 *
 * What it does (ts-loader-hooks.mjs):
 * - a test's import of ../../src/… gets the module `npm run build` compiled from
 *   it, dist/… (the same code; dist is what `npm start` and the spawned gateways
 *   run), when every src/**.ts has its dist/**.js built after its last change
 *   (`npm test` builds first). Otherwise, with a change not built yet, every
 *   module comes from the sources, so a test never mixes the two;
 * - a relative import of x.js where only x.ts exists gets x.ts (NodeNext style);
 * - a .ts file of the project is compiled by SWC alone (transpile-only, as
 *   ts-node did with tsconfig.json's "swc": true; `npm run typecheck` checks the
 *   types), with an inline source map for the stack traces.
 */
import { readdirSync, statSync } from 'node:fs';
import { register } from 'node:module';

const ROOT = new URL('../../', import.meta.url);
const SRC = new URL('src/', ROOT);
const DIST = new URL('dist/', ROOT);

/** Whether every source has its build, made after the source's last change. */
function built() {
  for (const file of readdirSync(SRC, { recursive: true })) {
    if (!file.endsWith('.ts') || file.endsWith('.d.ts')) continue;
    let js;
    try {
      js = statSync(new URL(file.slice(0, -3) + '.js', DIST));
    } catch {
      return false;
    }
    if (js.mtimeMs < statSync(new URL(file, SRC)).mtimeMs) return false;
  }
  return true;
}

register('./ts-loader-hooks.mjs', import.meta.url, { data: { root: ROOT.href, src: SRC.href, dist: built() ? DIST.href : undefined } });
