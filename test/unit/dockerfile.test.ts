/**
 * The image's promises (issue 17 item 5), read from the Dockerfile with
 * dockerfile-ast (the parser of VS Code's Docker support): a supported Node
 * LTS pinned by minor, dependencies installed before the sources, no dev
 * dependencies in the final stage, a numeric non-root user owning /data,
 * a HEALTHCHECK that works (its script is run against a real server here),
 * and tini as PID 1. Not checked: that the image builds and runs (no
 * container engine on this machine).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { withServer } from '../helpers/server.js';
import { ROOT } from '../helpers/built.js';

const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));

/** The instructions of each stage, split at FROM. */
function stages(): Instruction[][] {
  const out: Instruction[][] = [];
  for (const i of dockerfile.getInstructions()) {
    if (i.getKeyword() === 'FROM') out.push([]);
    out.at(-1)?.push(i);
  }
  return out;
}
const all = stages();
const build = all[0]!;
const final = all.at(-1)!;
const args = (i: Instruction) => i.getArgumentsContent() ?? '';
const named = (stage: Instruction[], keyword: string) => stage.filter((i) => i.getKeyword() === keyword);
const fromFlag = (i: Instruction) => (i as unknown as { getFlags(): Array<{ getName(): string; getValue(): string | null }> })
  .getFlags().find((f) => f.getName() === 'from')?.getValue() ?? undefined;
const indexOf = (stage: Instruction[], pred: (i: Instruction) => boolean) => stage.findIndex(pred);

t.test('every stage is Node 22 or 24 on Debian bookworm-slim, pinned by minor or digest', async (t) => {
  t.ok(all.length >= 2, 'multi-stage');
  for (const from of dockerfile.getFROMs()) {
    t.equal(from.getImageName(), 'node');
    t.ok(/^(22|24)\.\d+(\.\d+)?-bookworm-slim$/.test(from.getImageTag() ?? '') || /^sha256:[0-9a-f]{64}$/.test(from.getImageDigest() ?? ''),
      `${from.getImage() ?? ''} is pinned`);
  }
});

t.test('dependencies are installed from the lockfile before the sources are copied', async (t) => {
  const manifest = indexOf(build, (i) => i.getKeyword() === 'COPY' && /package\.json/.test(args(i)) && /package-lock\.json/.test(args(i)));
  const ci = indexOf(build, (i) => i.getKeyword() === 'RUN' && /\bnpm ci\b/.test(args(i)));
  const src = indexOf(build, (i) => i.getKeyword() === 'COPY' && /^src\b/.test(args(i)));
  t.ok(manifest >= 0 && ci > manifest, 'package.json and the lockfile, then npm ci');
  t.ok(src > ci, 'src/ only after npm ci');
  t.notOk(build.some((i) => i.getKeyword() === 'RUN' && /\bnpm (install|i)\b/.test(args(i))), 'no npm install (it may change the lockfile)');
});

t.test('the final stage has no dev dependencies and no sources', async (t) => {
  t.notOk(final.some((i) => i.getKeyword() === 'RUN' && /\bnpm (ci|install|i)\b/.test(args(i)) && !/--omit=dev/.test(args(i))), 'nothing installed with dev dependencies');
  const modules = named(final, 'COPY').find((i) => /node_modules/.test(args(i)));
  t.equal(modules && fromFlag(modules), 'build', 'node_modules come from the build stage');
  const npmRuns = build.filter((i) => i.getKeyword() === 'RUN' && /\bnpm\b/.test(args(i)));
  t.match(args(npmRuns.at(-1)!), /npm prune --omit=dev\s*$/, 'where the last npm command prunes the dev dependencies');
  for (const copy of named(final, 'COPY').filter((i) => fromFlag(i) === undefined)) {
    const [source = ''] = args(copy).split(/\s+/);
    t.notMatch(source, /^(\.|src|test|bench|node_modules)\/?$/, `COPY ${source} takes nothing of the sources or the host's modules`);
    t.ok(existsSync(join(ROOT, source)), `${source} exists`);
  }
});

t.test('it runs as a numeric non-root user, who owns the /data volume', async (t) => {
  const user = named(final, 'USER').at(-1);
  const match = /^(\d+)(?::(\d+))?$/.exec(user ? args(user) : '');
  t.ok(match, 'a numeric USER (runAsNonRoot can check it)');
  const uid = match?.[1] ?? '0';
  t.not(uid, '0', 'not root');
  t.ok(named(final, 'RUN').some((i) => /mkdir -p \/data\b/.test(args(i)) && new RegExp(`chown ${uid}(:\\d+)? /data\\b`).test(args(i))), `/data made and given to ${uid}`);
  t.ok(named(final, 'VOLUME').some((i) => /(^|[\s"[])\/data\b/.test(args(i))), 'VOLUME /data');
  t.ok(named(final, 'ENV').some((i) => /\bDATA_DIR=\/data\b/.test(args(i))), 'DATA_DIR=/data');
});

t.test('SIGTERM reaches Node: tini is PID 1 and the command is in exec form', async (t) => {
  const entry = JSON.parse(args(named(final, 'ENTRYPOINT').at(-1)!)) as string[];
  t.match(entry[0], /\/tini$/);
  t.ok(named(final, 'RUN').some((i) => /apt-get install .*\btini\b/.test(args(i))), 'tini installed');
  const cmd = JSON.parse(args(named(final, 'CMD').at(-1)!)) as string[];
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string };
  t.same(cmd, ['node', pkg.main], 'node runs the package main directly, no shell in between');
});

t.test("the HEALTHCHECK's own script passes against a live server and fails against none", async (t) => {
  const check = named(final, 'HEALTHCHECK').at(-1);
  if (!check) return t.fail('no HEALTHCHECK');
  const command = JSON.parse(args(check).replace(/^CMD\s+/, '')) as string[];
  t.same(command.slice(0, 2), ['node', '-e']);
  t.match(command[2], /\/healthz/);
  const server = await withServer(t);
  // Asynchronously: the server answering it runs in this process.
  const run = async (port: number) => {
    const child = spawn(process.execPath, ['-e', command[2]!], { env: { PORT: String(port) }, timeout: 20_000 });
    const [code] = await once(child, 'exit') as [number | null];
    return code;
  };
  t.equal(await run(server.port), 0, 'healthy');
  await server.close();
  t.equal(await run(server.port), 1, 'unhealthy once the server is gone');
});

t.test('.dockerignore keeps the host modules, build output, git history, data and secrets out', async (t) => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const entry of ['node_modules', 'dist', '.git', 'data', '.env', '*.sqlite']) t.ok(ignored.includes(entry), entry);
});
