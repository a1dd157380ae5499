// One load-generator thread. The main thread (bench/run.mjs) sends it
// commands; it runs them against one server and answers with counts and
// latency histograms. Every loop here is bounded in count and time.
import { parentPort, workerData } from 'node:worker_threads';
import { BoshXmpp, WsXmpp, probeSalt } from './client.mjs';
import { KeyCache } from './scram.mjs';
import { attr, localOf } from './xml.mjs';
import { Histogram, now } from './stats.mjs';

const port = /** @type {import('node:worker_threads').MessagePort} */ (parentPort);
const cache = new KeyCache(workerData.password);
/** Source address of this worker's connections (set per server start, so no 4-tuple is reused). */
let localAddress = workerData.localAddress;

/** @type {any[]} live clients of the current scenario */
let sessions = [];
/** @type {{ a: any, b: any }[]} */
let pairs = [];

/** Runs `fn` over `items` with at most `limit` at once; never throws. */
async function pool(items, limit, fn) {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
}

const errorsOf = () => {
  /** @type {string[]} */
  const list = [];
  return {
    list,
    /** @param {unknown} err */
    add(err) { if (list.length < 3) list.push(String(err instanceof Error ? err.message : err).slice(0, 300)); },
  };
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Logs every user in over WebSocket; keeps the sessions.
 * @param {{ url: string, users: string[], concurrency: number, sm?: 'resume' | 'ack' | false, timeout?: number }} o
 */
async function login({ url, users, concurrency, sm = 'resume', timeout }) {
  const hist = new Histogram();
  const errors = errorsOf();
  let ok = 0;
  let failed = 0;
  const t0 = now();
  let lastOk = t0;
  await pool(users, concurrency, async (user) => {
    const c = new WsXmpp(url, { localAddress });
    const start = now();
    try {
      await c.login(user, cache, { resource: 'bench', sm, timeout });
      hist.add((lastOk = now()) - start);
      ok++;
      c.user = user;
      sessions.push(c);
    } catch (err) {
      failed++;
      errors.add(err);
      c.cut();
    }
  });
  // t1Ok: the last success, so a login left unanswered until the timeout does not stretch the window.
  return { ok, failed, t0, t1: now(), t1Ok: lastOk, hist: hist.toJSON(), errors: errors.list, misses: cache.misses };
}

async function probe({ url, users, concurrency }) {
  const salts = new Map();
  const errors = errorsOf();
  let failed = 0;
  await pool(users, concurrency, async (user) => {
    try {
      const s = await probeSalt(url, user, { localAddress });
      salts.set(`${s.salt}|${s.iterations}`, s);
    } catch (err) { failed++; errors.add(err); }
  });
  return { salts: [...salts.values()], failed, errors: errors.list };
}

/** Pairs of sessions for the message flows: XMPP over WS or BOSH, or plain WS connections to the echo server. */
async function pairsSetup({ url, transport, users, concurrency, timeout }) {
  const errors = errorsOf();
  let failed = 0;
  /** @type {any[]} */
  const clients = new Array(users.length);
  await pool(users, concurrency, async (user, i) => {
    try {
      let c;
      if (transport === 'bosh') {
        c = new BoshXmpp(url, { localAddress });
        const jid = await c.login(user, cache, { resource: 'bench', timeout });
        if (jid === undefined) { c.stop(); throw new Error('BOSH endpoint answered 404'); }
      } else if (transport === 'echo') {
        c = new WsXmpp(url, { localAddress });
        await c.connect(timeout);
        c.jid = `${user}@localhost/echo`;
      } else {
        c = new WsXmpp(url, { localAddress });
        await c.login(user, cache, { resource: 'bench', sm: 'resume', timeout });
      }
      c.user = user;
      clients[i] = c;
      sessions.push(c);
    } catch (err) { failed++; errors.add(err); }
  });
  for (let i = 0; i + 1 < clients.length; i += 2) {
    const a = clients[i];
    const b = clients[i + 1];
    if (!a || !b) continue;
    if (transport === 'echo') { a.peer = a; b.peer = b; } else { a.peer = b; b.peer = a; }
    pairs.push({ a, b });
  }
  return { ok: users.length - failed, failed, pairs: pairs.length, errors: errors.list, notAvailable: errors.list.some((e) => e.includes('404')) };
}

/**
 * Every session keeps `window` messages in flight to its peer (for the echo
 * server: to itself) until `endAt`. A message counts as delivered, with its
 * latency, when it arrives within [startAt, endAt]; the sender then sends the
 * next one.
 */
async function pairsRun({ startAt, endAt, window, body, drainMs, transport }) {
  const hist = new Histogram();
  let delivered = 0;
  let deliveredAll = 0;
  let sent = 0;
  let bounced = 0;
  let seq = 0;
  const senders = pairs.flatMap((p) => [p.a, p.b]);
  const bodyXml = `<body>${body}</body>`;
  const sendOne = (s) => {
    const t = now();
    s.inflight++;
    sent++;
    s.send(`<message xmlns='jabber:client' to='${s.peer.jid}' type='chat' id='${(seq++).toString(36)}:${t}'>${bodyXml}</message>`);
  };
  const pump = (s) => {
    if (now() >= endAt) return;
    while (s.inflight < window) sendOne(s);
  };
  const r0 = senders.reduce((n, s) => n + (s.rIn ?? 0), 0);
  for (const s of senders) {
    s.inflight = 0;
    s.onStanza = (el) => {
      if (localOf(el) !== 'message') return;
      const id = attr(el, 'id') ?? '';
      if (attr(el, 'type') === 'error') {
        // The bounce comes back to the sender.
        bounced++;
        s.inflight--;
        pump(s);
        return;
      }
      const t = Number(id.slice(id.indexOf(':') + 1));
      const at = now();
      deliveredAll++;
      if (at >= startAt && at <= endAt) {
        delivered++;
        hist.add(at - t);
      }
      const from = s.peer;
      from.inflight--;
      pump(from);
    };
    if (transport === 'bosh') s.start();
  }
  for (const s of senders) pump(s);
  await sleep(Math.max(0, endAt - now()));
  const drainEnd = now() + drainMs;
  while (now() < drainEnd && senders.some((s) => s.inflight > 0)) await sleep(20);
  const inflight = senders.reduce((n, s) => n + Math.max(0, s.inflight), 0);
  for (const s of senders) s.onStanza = () => {};
  const acksAnswered = senders.reduce((n, s) => n + (s.rIn ?? 0), 0) - r0;
  return { delivered, deliveredAll, sent, bounced, inflight, acksAnswered, hist: hist.toJSON() };
}

/** Cuts each session abruptly and resumes it on a new connection (XEP-0198 §5). */
async function resumeRun({ url, concurrency, timeout }) {
  const hist = new Histogram();
  const errors = errorsOf();
  let ok = 0;
  let failed = 0;
  const list = sessions;
  sessions = [];
  const t0 = now();
  let lastOk = t0;
  await pool(list, concurrency, async (old) => {
    const prev = { previd: old.smid, h: old.hIn };
    const start = now();
    old.cut();
    const c = new WsXmpp(url, { localAddress });
    try {
      await c.login(old.user, cache, { resume: prev, timeout });
      hist.add((lastOk = now()) - start);
      ok++;
      c.user = old.user;
      sessions.push(c);
    } catch (err) {
      failed++;
      errors.add(err);
      c.cut();
    }
  });
  return { ok, failed, t0, t1: now(), t1Ok: lastOk, hist: hist.toJSON(), errors: errors.list };
}

function release() {
  for (const s of sessions) {
    if (s instanceof BoshXmpp) s.stop();
    else s.cut();
  }
  const n = sessions.length;
  sessions = [];
  pairs = [];
  return { released: n };
}

/** Ends every session cleanly (<close/>), so the servers end them instead of hibernating them. */
async function closeAll() {
  for (const s of sessions) {
    if (s instanceof BoshXmpp) s.stop();
    else s.close();
  }
  const n = sessions.length;
  sessions = [];
  pairs = [];
  await sleep(500);
  return { closed: n };
}

const handlers = {
  closeAll,
  keys: ({ entries }) => { cache.load(entries); return { size: cache.salted.size }; },
  source: ({ address }) => { localAddress = address; return {}; },
  login,
  probe,
  pairsSetup,
  pairsRun,
  resumeRun,
  release,
  count: () => ({ sessions: sessions.length, open: sessions.filter((s) => !s.closed).length }),
};

port.on('message', async (msg) => {
  try {
    const result = await handlers[msg.cmd](msg);
    port.postMessage({ id: msg.id, result });
  } catch (err) {
    port.postMessage({ id: msg.id, error: String(err instanceof Error ? err.stack : err) });
  }
});
