/**
 * Real nginx in front of the gateway: Debian's package, started as a child
 * process on loopback in a temporary directory of its own (config, pid file,
 * logs, temp paths; no system service), killed at the test's teardown.
 *
 * The location blocks are the README's, read from README.md at run time, so
 * what the tests prove is what operators copy. A test may only rewrite the
 * upstream address and scale timeouts down (see `readmeLocations`).
 *
 * When nginx is missing it is installed with apt-get if we run as root (as CI
 * does), under the same lock as Chromium; otherwise the test fails with one
 * line naming the package. Never a silent skip.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { ensureDebianPackage } from './apt.js';
import { eventually } from './eventually.js';

export const NGINX_PATH = process.env.NGINX_PATH ?? '/usr/sbin/nginx';
/** The address the README's blocks proxy to; tests replace it with the test gateway's. */
const README_UPSTREAM = 'http://127.0.0.1:5280';

/** Makes sure Debian's nginx is installed (apt-get as root, under the lock Chromium's install uses too). */
export function ensureNginx(): string {
  return ensureDebianPackage(NGINX_PATH, 'nginx');
}

/**
 * The `location` blocks of the README's nginx examples (every ```nginx fence
 * that holds one), with the upstream pointed at `upstream` and each
 * `proxy_read_timeout` passed through `readTimeout` (by location path).
 */
export function readmeLocations(upstream: string, readTimeout: (path: string, value: string) => string = (_p, v) => v): string {
  const readme = readFileSync(join(process.cwd(), 'README.md'), 'utf8');
  const fences = [...readme.matchAll(/```nginx\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => b.includes('location '));
  if (fences.length === 0) throw new Error('README.md has no ```nginx block with a location');
  return fences.join('\n')
    .replaceAll(README_UPSTREAM, upstream)
    .replace(/location\s+(\S+)\s*\{[^}]*\}/g, (block, path: string) =>
      block.replace(/proxy_read_timeout\s+([^;]+);/, (_m, v: string) => `proxy_read_timeout ${readTimeout(path, v.trim())};`));
}

/** The `proxy_read_timeout` the README gives `path`, in seconds. */
export function readmeReadTimeout(path: string): number {
  let found: number | undefined;
  readmeLocations(README_UPSTREAM, (p, v) => {
    if (p === path) found = Number(/^(\d+)s?$/.exec(v)?.[1]);
    return v;
  });
  if (found === undefined || Number.isNaN(found)) throw new Error(`README.md gives ${path} no proxy_read_timeout in seconds`);
  return found;
}

/** A port free right now on 127.0.0.1 (nginx binds it a moment later). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function waitListening(port: number, deadlineMs: number, dir: string): Promise<void> {
  const listening = () => new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  const log = () => (existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : '');
  await eventually(listening, { timeout: deadlineMs, interval: 50, message: () => `nginx to listen on ${port}: ${log().split('\n').slice(-3).join(' ')}` });
}

export interface Nginx {
  /** http://127.0.0.1:port: nginx's plain-HTTP server ($scheme is http). */
  readonly httpUrl: string;
  /** https://127.0.0.1:port: the same locations behind TLS with a self-signed certificate ($scheme is https). */
  readonly httpsUrl: string;
  readonly dir: string;
}

/** Config of one nginx: both servers carry the same `locations`; `http` goes in the http block (an upstream, a log format). */
function nginxConf(dir: string, httpPort: number, httpsPort: number, locations: string, http: string): string {
  return `error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
worker_processes 1;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${http}
  server {
    listen 127.0.0.1:${httpPort};
${locations}
  }
  server {
    listen 127.0.0.1:${httpsPort} ssl;
    ssl_certificate ${dir}/cert.pem; ssl_certificate_key ${dir}/key.pem;
${locations}
  }
}
`;
}

/**
 * Starts nginx (foreground child, `-p DIR -c DIR/nginx.conf -g 'daemon off;'`)
 * with `locations` in a plain and a TLS server, and `http` (e.g. an upstream
 * of several gateways) at the http level; killed and its directory removed
 * at `t`'s teardown.
 */
export async function startNginx(t: Test, locations: string, http = ''): Promise<Nginx> {
  const bin = ensureNginx();
  const dir = mkdtempSync(join(tmpdir(), 'xwg-nginx-'));
  // Started as root (CI), nginx runs its worker as nobody, which writes a request body larger than
  // client_body_buffer_size (a BOSH body of 16 KiB: an OMEMO bundle, an avatar) to body/ here: mkdtemp's
  // 0700 let it in nowhere (open() EACCES, the client got 500). Traversal only: nginx owns what it creates.
  chmodSync(dir, 0o711);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-subj', '/CN=localhost', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, httpPort, httpsPort, locations, http));
  const child = spawn(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  await waitListening(httpPort, 5000, dir);
  await waitListening(httpsPort, 5000, dir);
  return { httpUrl: `http://127.0.0.1:${httpPort}`, httpsUrl: `https://127.0.0.1:${httpsPort}`, dir };
}
