// Writes dist/build-info.json (or the path given) after `tsc`: the version from
// package.json and the commit from GIT_COMMIT, else `git rev-parse HEAD`, else
// "unknown". The image has no git at run time (nor .git in its build context),
// so the Dockerfile passes GIT_COMMIT as a build argument.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const out = process.argv[2] ?? new URL('dist/build-info.json', root).pathname;
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

const commit = process.env.GIT_COMMIT?.trim() || gitCommit();
writeFileSync(out, `${JSON.stringify({ version, commit })}\n`);
