/**
 * Debian packages the tests drive (chromium, nginx): when `path` is missing
 * the package is installed with apt-get if we run as root, as CI does, under
 * one lock so parallel test files wait for a single install; otherwise the
 * test fails with one line naming the package. Never a silent skip.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export function ensureDebianPackage(path: string, pkg: string, what = pkg): string {
  if (existsSync(path)) return path;
  if (process.getuid?.() !== 0) {
    throw new Error(`${what} is missing at ${path}: install the Debian package "${pkg}" (apt-get install ${pkg})`);
  }
  const script = `test -x ${path} || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${pkg}; }`;
  try {
    execFileSync('flock', ['/tmp/xmpp-web-gateway-apt.lock', 'sh', '-c', script], { stdio: 'ignore', timeout: 600_000 });
  } catch (err) {
    throw new Error(`${what} is missing and "apt-get install ${pkg}" failed: ${(err as Error).message.split('\n')[0]}`);
  }
  if (!existsSync(path)) throw new Error(`"apt-get install ${pkg}" ran but ${path} is still missing`);
  return path;
}
