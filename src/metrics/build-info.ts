import { existsSync, readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';

export interface BuildInfo {
  readonly version: string;
  readonly commit: string;
}

// dist/build-info.json, written by scripts/build-info.mjs at `npm run build`.
const BUILD_INFO = new URL('../build-info.json', import.meta.url);
const PACKAGE_JSON = new URL('../../package.json', import.meta.url);

/**
 * The version and commit this code was built from. Running from the sources
 * (tests), there is no build-info.json: the version comes from package.json and
 * the commit is "unknown".
 */
export function loadBuildInfo(file: URL | string = BUILD_INFO): BuildInfo {
  if (existsSync(file)) {
    const { version, commit } = JSON.parse(readFileSync(file, 'utf8')) as Partial<BuildInfo>;
    return { version: String(version ?? 'unknown'), commit: String(commit ?? 'unknown') };
  }
  const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: string };
  return { version: String(version ?? 'unknown'), commit: 'unknown' };
}

/** xmpp_build_info{version,commit,node} 1: the Prometheus idiom for "which build runs where". */
export function registerBuildInfo(registry: Registry, info: BuildInfo): void {
  const gauge = new Gauge({
    name: 'xmpp_build_info', help: 'Always 1; the labels say which build runs: version, commit, Node.js version',
    labelNames: ['version', 'commit', 'node'], registers: [registry],
    // WORKERS > 1 (metrics/workers.ts): 1 per build, however many workers run it.
    aggregator: 'max',
  });
  gauge.set({ version: info.version, commit: info.commit, node: process.version }, 1);
}
