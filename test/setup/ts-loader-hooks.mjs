/** The hooks of ts-loader.mjs (read that first). They run on Node's loader thread. */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

let root;
let src;
/** dist/'s URL when the build is current, else undefined (the sources are loaded). */
let dist;
let swc;

export function initialize(data) {
  ({ root, src, dist } = data);
}

/** The project's own files: not its dependencies. */
const own = (url) => url.startsWith(root) && !url.includes('/node_modules/');

export async function resolve(specifier, context, next) {
  const parent = context.parentURL;
  if (parent !== undefined && own(parent) && (specifier.startsWith('./') || specifier.startsWith('../'))) {
    const url = new URL(specifier, parent).href;
    if (dist !== undefined && url.startsWith(src) && url.endsWith('.js')) return { url: `${dist}${url.slice(src.length)}`, format: 'module', shortCircuit: true };
    if (url.endsWith('.js') && own(url) && !existsSync(new URL(url))) {
      const ts = `${url.slice(0, -3)}.ts`;
      if (existsSync(new URL(ts))) return { url: ts, format: 'module', shortCircuit: true };
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts') || !own(url)) return next(url, context);
  swc ??= createRequire(root)('@swc/core');
  const filename = fileURLToPath(url);
  // tsconfig.json's target and module, with the options ts-node gave SWC for them.
  const { code } = swc.transformSync(await readFile(filename, 'utf8'), {
    filename, swcrc: false, sourceMaps: 'inline',
    module: { type: 'es6', strictMode: true },
    jsc: {
      parser: { syntax: 'typescript', tsx: false, dynamicImport: true, importAssertions: true },
      target: 'es2022', keepClassNames: true, transform: { legacyDecorator: true },
    },
  });
  return { format: 'module', source: code, shortCircuit: true };
}
