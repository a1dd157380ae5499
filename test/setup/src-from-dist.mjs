/**
 * Loaded into every test process (package.json "tap"."node-arg"). A test that
 * imports ../../src/… gets the module `npm run build` compiled from it, dist/…:
 * the same code (dist is what `npm start` and the tests' spawned gateways run),
 * loaded without ts-node. Each of the suite's ~270 test processes used to have
 * ts-node resolve and compile the ~250 source modules again, and every import
 * went through each loader hook in turn: 4.0 CPU-s to start a file that runs a
 * server in-process, 3.3 s this way.
 *
 * Only when every src/**.ts has its dist/**.js, built after it (`npm test`
 * builds first): otherwise, with a change not built yet, every module comes
 * from the sources through ts-node, as before, so a test never mixes the two.
 */
import { readdirSync, statSync } from 'node:fs';
import { register } from 'node:module';

const ROOT = new URL('../../', import.meta.url);
const SRC = new URL('src/', ROOT);
const DIST = new URL('dist/', ROOT);

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

if (built()) register('./src-from-dist-hooks.mjs', import.meta.url, { data: { src: SRC.href, dist: DIST.href } });
