/**
 * xmpp_build_info (issue 17 item 7): which version and commit a pod runs. The
 * commit is fixed at build time (scripts/build-info.mjs, GIT_COMMIT in the
 * image build), since the image has no git at run time.
 */
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBuildInfo } from '../../src/metrics/build-info.js';
import { withServer } from '../helpers/server.js';
import { ROOT } from '../helpers/built.js';

const SCRIPT = join(ROOT, 'scripts', 'build-info.mjs');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

function runScript(t: Test, env: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'xwg-build-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'build-info.json');
  execFileSync(process.execPath, [SCRIPT, out], { env: { PATH: process.env.PATH, ...env }, cwd: ROOT });
  return out;
}

t.test('the build records GIT_COMMIT when given', async (t) => {
  t.same(loadBuildInfo(runScript(t, { GIT_COMMIT: 'abc1234' })), { version: VERSION, commit: 'abc1234' });
});

t.test('without GIT_COMMIT a git checkout records its HEAD', async (t) => {
  const head = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  t.same(loadBuildInfo(runScript(t, {})), { version: VERSION, commit: head });
});

t.test('without a build-info file the version still comes from package.json', async (t) => {
  t.same(loadBuildInfo(join(ROOT, 'no-such-build-info.json')), { version: VERSION, commit: 'unknown' });
});

t.test('/metrics has xmpp_build_info with the version, the commit and the Node.js version', async (t) => {
  const server = await withServer(t, {}, undefined, { buildInfo: { version: '9.8.7', commit: 'deadbeef' } });
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  t.match(text, `xmpp_build_info{version="9.8.7",commit="deadbeef",node="${process.version}"} 1`);
  const plain = await withServer(t);
  t.match(await (await fetch(`${plain.httpUrl}/metrics`)).text(), new RegExp(`^xmpp_build_info\\{version="${VERSION.replace(/\./g, '\\.')}",`, 'm'), 'by default, this build');
});
