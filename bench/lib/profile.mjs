// Self time per function from a V8 .cpuprofile (node --cpu-prof).
import { readFileSync } from 'node:fs';

/**
 * @param {string} file a .cpuprofile
 * @param {{ root?: string, top?: number, window?: number[] }} [o]
 * @returns {{ windowed: boolean, totalMs: number, busyMs: number, functions: { fn: string, selfMs: number, pctBusy: number }[], files: { file: string, selfMs: number, pctBusy: number }[] }}
 */
export function summarizeProfile(file, o = {}) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const root = o.root ?? '';
  /** @type {Map<number, any>} */
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  /** @type {Map<number, number>} */
  const selfUs = new Map();
  const { samples, timeDeltas } = p;
  // Timestamps are CLOCK_MONOTONIC µs (as process.hrtime in any process); keep only o.window if given.
  const [from, to] = o.window ?? [-Infinity, Infinity];
  let t = p.startTime;
  for (let i = 0; i < samples.length; i++) {
    t += timeDeltas[i];
    if (t < from || t > to) continue;
    // A sample lasts until the next one (DevTools' attribution).
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const short = (url) => {
    // The bench measures a copy of dist/ under bench/.snapshot/<run>/.
    let u = url.replace(/^file:\/\//, '').replace(/^.*\/bench\/\.snapshot\/[^/]+\//, '');
    if (root && u.startsWith(root)) u = u.slice(root.length);
    return u.replace(/^.*\/node_modules\//, 'node_modules/');
  };
  /** @type {Map<string, number>} */
  const byFn = new Map();
  /** @type {Map<string, number>} */
  const byFile = new Map();
  /** @type {Map<string, number>} */
  const byArea = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const cf = nodes.get(id).callFrame;
    total += us;
    if (cf.functionName === '(idle)') { idle += us; continue; }
    const file = cf.url ? short(cf.url) : '(native)';
    const key = cf.url ? `${file}:${cf.functionName || '(anonymous)'}:${cf.lineNumber + 1}` : cf.functionName || '(anonymous)';
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const fileKey = cf.url ? file : cf.functionName;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
    const area = areaOf(fileKey);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  const busy = total - idle;
  const rank = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, o.top ?? 25);
  return {
    windowed: o.window !== undefined,
    totalMs: total / 1000,
    busyMs: busy / 1000,
    functions: rank(byFn).map(([fn, us]) => ({ fn, selfMs: us / 1000, pctBusy: (100 * us) / busy })),
    files: rank(byFile).map(([file, us]) => ({ file, selfMs: us / 1000, pctBusy: (100 * us) / busy })),
    areas: [...byArea].sort((a, b) => b[1] - a[1]).map(([area, us]) => ({ area, selfMs: us / 1000, pctBusy: (100 * us) / busy })),
  };
}

/**
 * Where self time goes, by what the code is for: a file (or a native
 * function without one) maps to the first area whose pattern matches.
 * Native writes are the write(2)/writev(2) system calls of socket writes:
 * Node tries them synchronously, so the kernel's time is sampled there.
 */
const AREAS = [
  ['socket writes (system calls)', /^(writev|writeUtf8String|writeBuffer|writeLatin1String|writeAsciiString|writeUcs2String)$/],
  ['garbage collector', /^\(garbage collector\)$/],
  ['XML (scan, parse, serialize)', /^(dist\/xml\/|node_modules\/(fast-xml-parser|@nodable|path-expression-matcher|strnum)\/)/],
  ['SQLite reads and writes', /^(dist\/storage\/|node_modules\/better-sqlite3\/)/],
  ['SCRAM, hashes, random ids', /^(dist\/xmpp\/sasl\/|dist\/util\/random|node:internal\/crypto|node:crypto)/],
  ['XMPP core and features', /^dist\/(xmpp|transports|http|jid)\//],
  ['fastify (routing, hooks, logger, proxy-addr)', /^node_modules\/(fastify|@fastify|find-my-way|pino|proxy-addr|light-my-request|avvio|fast-json-stringify|fast-querystring|toad-cache|abstract-logging)\//],
  ['ws (WebSocket framing, upgrade)', /^node_modules\/ws\//],
  ['Node net, HTTP, streams, events, timers', /^node:/],
];

/** @param {string} key a shortened file name or a native function name */
export function areaOf(key) {
  for (const [area, re] of AREAS) if (re.test(key)) return area;
  return 'other (V8 program, native)';
}
