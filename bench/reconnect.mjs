#!/usr/bin/env node
// Scenario `reconnect` (issue 15 item 8): what a reloaded page pays before
// its XEP-0198 session is back, with 50 ms added per direction by a delaying
// TCP proxy (bench/lib/delay-proxy.mjs), so round trips show as time.
//
//   classic:  <open/> → features, SCRAM-SHA-1 first → challenge, final → <success/>, restart <open/> → features,
//             <resume previd h/> → <resumed/>  (as every RFC 6120 client does, each step waits for the answer)
//   fast:     <open/> and SASL2 <authenticate mechanism='HT-SHA-256-NONE'> with the FAST token and an inline
//             <resume/> in one flight (XEP-0388, XEP-0484, XEP-0198 in SASL2) → <success> holding <resumed/>
//
// Round trips are client flights seen by the proxy after the WebSocket opened (the HTTP upgrade is not
// counted): what the client sends after the server last spoke. Times are medians over --reps reconnects,
// from the WebSocket's open to the resumed session, and from the connect (TCP + upgrade) to it.
//
//   node bench/reconnect.mjs [--reps 20] [--delay 50] [--no-write] [--build]
//
// Writes its section into bench/RESULTS.md (between the reconnect markers) unless --no-write.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Gateway, ROOT, run } from './lib/servers.mjs';
import { WsXmpp } from './lib/client.mjs';
import { KeyCache } from './lib/scram.mjs';
import { median } from './lib/stats.mjs';
import { startDelayProxy } from './lib/delay-proxy.mjs';
import { fastAvailable, fastLogin, fastReconnect } from './lib/fast-client.mjs';

const PASSWORD = 'bench-Pa55word';
const argv = process.argv.slice(2);
const opt = (name, dflt) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : dflt; };
const flag = (name) => argv.includes(name);
const REPS = opt('--reps', 20);
const DELAY_MS = opt('--delay', 50);
const TIMEOUT_MS = 10000;
const log = (s) => process.stderr.write(`[reconnect] ${s}\n`);

/**
 * One classic reconnect: a session made resumable on a direct connection
 * and cut, then resumed through the proxy, each step waiting for its answer.
 */
async function classic(gw, proxy, user, cache) {
  const first = new WsXmpp(gw.wsUrl);
  await first.login(user, cache, { sm: 'resume', timeout: TIMEOUT_MS });
  const previd = first.smid;
  first.cut();
  return measure(proxy, async (onOpen) => {
    const c = new WsXmpp(`ws://127.0.0.1:${proxy.port}/xmpp-websocket`);
    const connect = c.connect.bind(c);
    c.connect = async (ms) => { await connect(ms); onOpen(); };
    await c.login(user, cache, { resume: { previd, h: 0 }, timeout: TIMEOUT_MS });
    c.cut();
  });
}

/** One FAST reconnect: SASL2 login with a token request and Bind2's <enable/>, cut, then the token and an inline resume. */
async function fast(gw, proxy, user, cache) {
  const { token, previd } = await fastLogin(gw.wsUrl, user, cache, TIMEOUT_MS);
  return measure(proxy, (onOpen) => fastReconnect(`ws://127.0.0.1:${proxy.port}/xmpp-websocket`, user, token, previd, onOpen, TIMEOUT_MS));
}

/** Runs `work` through the proxy: round trips after the open, and the times to the end of `work`. */
async function measure(proxy, work) {
  const t0 = performance.now();
  let tOpen = NaN;
  let flightsAtOpen = 0;
  const before = proxy.connections.length;
  await work(() => {
    tOpen = performance.now();
    flightsAtOpen = proxy.connections[before].flights.length;
  });
  const t1 = performance.now();
  return { roundTrips: proxy.connections[before].flights.length - flightsAtOpen, fromOpenMs: t1 - tOpen, fromConnectMs: t1 - t0 };
}

function summarize(name, runs) {
  return {
    name, n: runs.length,
    roundTrips: median(runs.map((r) => r.roundTrips)),
    roundTripsMax: Math.max(...runs.map((r) => r.roundTrips)),
    fromOpenMs: median(runs.map((r) => r.fromOpenMs)),
    fromConnectMs: median(runs.map((r) => r.fromConnectMs)),
  };
}

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : 1) : '–');

function section(rows, meta) {
  const [c, f] = rows;
  const lines = [
    '<!-- reconnect:begin (bench/reconnect.mjs writes this section) -->',
    '## Reconnect after a reload (issue 15 item 8)',
    '',
    `\`node bench/reconnect.mjs --reps ${REPS} --delay ${DELAY_MS}\` on ${meta.finished}, gateway commit ${meta.commit}. A session is made resumable,`,
    `its socket cut, and a new WebSocket resumes it through a TCP proxy adding ${DELAY_MS} ms per direction (so a round trip`,
    `costs about ${2 * DELAY_MS} ms). Round trips: client flights after the WebSocket opened. Medians of ${REPS} reconnects.`,
    `Machine load while measuring (1-minute load average, ${meta.cores} cores): ${meta.load.map((l) => l.toFixed(2)).join(' → ')}. The round trips are`,
    'fixed by the protocols; the times move with the load (run it again on a quiet machine: `npm run build && npm run bench -- --scenarios reconnect`).',
    '',
    '| path | round trips after open | open → resumed (ms) | connect → resumed (ms) |',
    '|---|---|---|---|',
    ...rows.filter(Boolean).map((r) => `| ${r.name} | ${r.roundTrips}${r.roundTripsMax !== r.roundTrips ? ` (max ${r.roundTripsMax})` : ''} | ${fmt(r.fromOpenMs)} | ${fmt(r.fromConnectMs)} |`),
    '',
  ];
  if (f) {
    const met = f.roundTrips <= 1 && c.roundTrips >= 4;
    lines.push(`Goal (FAST 1 round trip after the open, classic ≥ 4): **${met ? 'met' : 'not met'}**; FAST saves ${fmt(c.fromOpenMs - f.fromOpenMs)} ms per reload here.`, '');
  } else {
    lines.push('FAST: **not measured**: the gateway measured offers no SASL2 with FAST (XEP-0484) yet.', '');
  }
  lines.push('<!-- reconnect:end -->');
  return lines.join('\n');
}

/** Replaces the reconnect section of RESULTS.md (or appends it), leaving the rest as bench/run.mjs wrote it. */
function writeSection(text) {
  const file = join(ROOT, 'bench', 'RESULTS.md');
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const re = /<!-- reconnect:begin[\s\S]*?<!-- reconnect:end -->/;
  writeFileSync(file, re.test(old) ? old.replace(re, text) : `${old.trimEnd()}\n\n${text}\n`);
  log(`wrote ${file.slice(ROOT.length)}`);
}

async function main() {
  if (flag('--build')) await run('npm', ['run', 'build'], { cwd: ROOT });
  const work = mkdtempSync(join(tmpdir(), 'bench-reconnect-'));
  const gw = new Gateway({ dir: work, port: 0, log });
  // FAST (XEP-0484 §6) is for secure streams only; this loopback has no TLS (a TLS-terminating proxy
  // in front would make the stream secure), so the gateway is told to take it as it takes PLAIN.
  gw.extraEnv = { ALLOW_INSECURE_PLAIN: 'true' };
  // Port 0 cannot be read back from the child: pick one the OS says is free.
  gw.port = await freePort();
  const users = Array.from({ length: 2 * REPS }, (_, i) => `r${i}`);
  const load = [loadavg()[0]];
  let proxy;
  try {
    await gw.createUsers(users, PASSWORD);
    await gw.start();
    proxy = await startDelayProxy({ target: { host: '127.0.0.1', port: gw.port }, delayMs: DELAY_MS });
    const cache = new KeyCache(PASSWORD);
    const classicRuns = [];
    for (let i = 0; i < REPS; i++) classicRuns.push(await classic(gw, proxy, users[i], cache));
    const rows = [summarize('classic: SCRAM-SHA-1 + restart + `<resume/>`', classicRuns)];
    if (await fastAvailable(gw.wsUrl, TIMEOUT_MS)) {
      const fastRuns = [];
      for (let i = 0; i < REPS; i++) fastRuns.push(await fast(gw, proxy, users[REPS + i], cache));
      rows.push(summarize('SASL2 + FAST token + inline resume', fastRuns));
    } else {
      log('the gateway offers no SASL2 FAST: only the classic path is measured');
    }
    load.push(loadavg()[0]);
    const commit = (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT })).stdout.trim();
    const text = section(rows, { finished: new Date().toISOString(), commit, load, cores: (await import('node:os')).cpus().length });
    process.stdout.write(`${text}\n`);
    if (!flag('--no-write')) writeSection(text);
  } finally {
    await proxy?.close();
    await gw.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

async function freePort() {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

await main();
