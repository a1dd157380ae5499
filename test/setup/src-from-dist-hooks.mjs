/**
 * The hooks of src-from-dist.mjs. A relative import of a src/**.js (which
 * ts-node would map to its .ts) resolves to dist/**.js, and so does one
 * between dist modules; both are loaded here, past the other loaders' hooks
 * (ts-node, tap's mock and processinfo), which have nothing to do for them.
 */
import { readFile } from 'node:fs/promises';

let src;
let dist;

export function initialize(data) {
  ({ src, dist } = data);
}

export async function resolve(specifier, context, next) {
  if (context.parentURL !== undefined && (specifier.startsWith('./') || specifier.startsWith('../'))) {
    let url = new URL(specifier, context.parentURL).href;
    if (url.startsWith(src) && url.endsWith('.js')) url = `${dist}${url.slice(src.length)}`;
    if (url.startsWith(dist) && url.endsWith('.js')) return { url, format: 'module', shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.startsWith(dist) && url.endsWith('.js')) return { format: 'module', source: await readFile(new URL(url)), shortCircuit: true };
  return next(url, context);
}
