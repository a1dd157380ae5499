// The gateway's and Redis's CPU per stanza in the SM write-through alone (issue 14 item 6), without
// the rest of the message path and without the machine's noise in a rate: the Redis SM journal of
// dist/ (src/cluster/sm-registry.ts, sm-batch.ts) against a redis-server started here on 127.0.0.1,
// driven as the bench's msg-throughput drives it (per stanza one push; per 5 stanzas one inbound
// counter and one ack), in turns of `--turn` stanzas over `--sessions` sessions, each turn's answers
// awaited before the next. Reports process.cpuUsage() and Redis's used_cpu per stanza and the
// commands Redis ran (INFO commandstats). Works on builds from before and after f6f4de4 (push answered
// by a promise, or by a PushWaiter), so an A/B can run the same file against two dist/ folders:
//   npm run build && node bench/sm-journal.mjs [--dist /tmp/before/dist] [--stanzas 200000] [--rounds 3]
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const opt = (name, dflt) => { const i = process.argv.indexOf(name); return i > 0 ? process.argv[i + 1] : dflt; };
const dist = resolve(opt('--dist', new URL('../dist', import.meta.url).pathname));
const STANZAS = Number(opt('--stanzas', '200000'));
const ROUNDS = Number(opt('--rounds', '3'));
const SESSIONS = Number(opt('--sessions', '40'));
const TURN = Number(opt('--turn', '70'));
const BODY = 'The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. 0123456789abcdef'.slice(0, 100);

const load = (m) => import(pathToFileURL(join(dist, m)).href);
const { connectRedis, keyPrefix } = await load('cluster/redis.js');
const { createRedisSmRegistry } = await load('cluster/sm-registry.js');
const { x } = await load('xml/index.js');

const port = await new Promise((res) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const dir = mkdtempSync(join(tmpdir(), 'xwg-smj-'));
const server = spawn('/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
const cli = (...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
for (let i = 0; ; i++) { try { if (cli('PING').trim() === 'PONG') break; } catch { if (i > 100) throw new Error('redis-server did not start'); } await new Promise((r) => setTimeout(r, 50)); }

const quiet = { info() {}, warn(o, m) { console.error(m, o); }, debug() {} };
const url = `redis://127.0.0.1:${port}/0`;
const redis = await connectRedis(url, quiet, 'smj');
const node = { id: 'n1', prefix: keyPrefix(url), redis, alive: async () => true };
const registry = createRedisSmRegistry({ node, stale: {}, log: quiet, marginSeconds: 60, release() {} });
const journal = registry.journal;
const waiterStyle = journal.push.length >= 3;
const smids = Array.from({ length: SESSIONS }, (_, i) => `smj-${i}`);
for (const [i, smid] of smids.entries()) {
  journal.open(smid, { host: 'localhost', username: `u${i}`, resource: 'r', anonymous: false, presence: undefined, priority: 0, interested: true, carbons: false }, 300);
}
await redis.ping();

const redisCpu = () => { const m = cli('INFO', 'cpu'); return ['used_cpu_sys', 'used_cpu_user'].reduce((s, k) => s + Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(m)[1]), 0); };
const commands = () => Object.fromEntries([...cli('INFO', 'commandstats').matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1], Number(m[2])]));

// The stanzas, built once (the journal does not change them): the figures are the journal's, not the builder's.
const POOL = Array.from({ length: 10 * TURN }, (_, i) => {
  const k = i % SESSIONS;
  return x('message', { xmlns: 'jabber:client', from: `u${k ^ 1}@localhost/r`, to: `u${k}@localhost/r`, type: 'chat', id: `m${i}` }, x('body', {}, BODY));
});

/** One turn: TURN pushes over the sessions, an inbound counter and an ack per 5 stanzas; resolves when every push is answered. */
function turn(t, unacked, received) {
  const answers = [];
  let left = TURN;
  let done;
  const all = new Promise((r) => { done = r; });
  const waiter = { pushed() { if (--left === 0) done(); } };
  for (let i = 0; i < TURN; i++) {
    const k = (t * TURN + i) % SESSIONS;
    const item = { stanza: POOL[(t * TURN + i) % POOL.length], at: Date.now() };
    if (waiterStyle) journal.push(smids[k], item, waiter);
    else answers.push(journal.push(smids[k], item));
    unacked[k]++;
    if (i % 5 === 0) {
      const r = (k + 1) % SESSIONS;
      journal.received(smids[r], ++received[r]);
      const a = (k + SESSIONS / 2) % SESSIONS;
      if (unacked[a] > 0) { journal.ack(smids[a], unacked[a], 0); unacked[a] = 0; }
    }
  }
  return waiterStyle ? all : Promise.all(answers);
}

async function round() {
  const unacked = smids.map(() => 0);
  const received = smids.map(() => 0);
  const turns = Math.ceil(STANZAS / TURN);
  cli('CONFIG', 'RESETSTAT');
  const r0 = redisCpu();
  const c0 = process.cpuUsage();
  for (let t = 0; t < turns; t++) await turn(t, unacked, received);
  const c = process.cpuUsage(c0);
  const r = redisCpu() - r0;
  const n = turns * TURN;
  const cmds = commands();
  const total = Object.entries(cmds).filter(([k]) => !/^(info|config)/.test(k)).reduce((s, [, v]) => s + v, 0);
  for (const smid of smids) await redis.del(`${node.prefix}smq:${smid}`);
  return { nodeUs: (c.user + c.system) / n, redisUs: (1e6 * r) / n, commands: total / n, scripts: ((cmds.eval ?? 0) + (cmds.evalsha ?? 0)) / n };
}

console.log(`# dist ${dist} (${waiterStyle ? 'PushWaiter' : 'promise'} push), ${STANZAS} stanzas per round over ${SESSIONS} sessions, ${TURN} per turn; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
await round(); // warm-up: JIT, Redis's allocator
for (let i = 1; i <= ROUNDS; i++) {
  const r = await round();
  console.log(JSON.stringify({ round: i, nodeUsPerStanza: +r.nodeUs.toFixed(2), redisUsPerStanza: +r.redisUs.toFixed(2), commandsPerStanza: +r.commands.toFixed(3), scriptsPerStanza: +r.scripts.toFixed(4), load1: +loadavg()[0].toFixed(2) }));
}
redis.destroy();
server.kill('SIGTERM');
await new Promise((r) => server.once('exit', r));
rmSync(dir, { recursive: true, force: true });
