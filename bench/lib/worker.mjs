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

/** The presence scenario's sessions (run.mjs `presence`): each group's accounts are all mutual contacts. */
/** @type {any[]} */
let presenceSessions = [];

/** The local part of a JID. @param {string | undefined} jid */
const localPart = (jid) => (jid === undefined ? '' : jid.slice(0, jid.indexOf('@')));

/**
 * Logs in every account of `groups` (arrays of user names; a group never spans
 * two workers), sends initial presence from each, and waits (at most readyMs)
 * until every session has the available presence of all its group's others.
 * @param {{ url: string, groups: string[][], concurrency: number, timeout?: number, readyMs: number }} o
 */
async function presenceSetup({ url, groups, concurrency, timeout, readyMs }) {
  const errors = errorsOf();
  let failed = 0;
  const byUser = new Map();
  const members = groups.flatMap((g) => g.map((user) => ({ user, group: g })));
  await pool(members, concurrency, async ({ user, group }) => {
    const c = new WsXmpp(url, { localAddress });
    try {
      await c.login(user, cache, { resource: 'bench', sm: 'resume', timeout });
      c.user = user;
      c.contacts = group.length - 1;
      c.seen = new Set();
      c.onStanza = (el) => {
        if (localOf(el) !== 'presence' || attr(el, 'type') !== undefined) return;
        const from = localPart(attr(el, 'from'));
        if (from !== user) c.seen.add(from);
      };
      sessions.push(c);
      byUser.set(user, c);
    } catch (err) { failed++; errors.add(err); c.cut(); }
  });
  presenceSessions = [...byUser.values()];
  for (const c of presenceSessions) { c.byUser = byUser; c.send(`<presence xmlns='jabber:client'/>`); }
  const t0 = now();
  const end = t0 + readyMs;
  while (now() < end && presenceSessions.some((c) => c.seen.size < c.contacts)) await sleep(20);
  const missing = presenceSessions.reduce((n, c) => n + Math.max(0, c.contacts - c.seen.size), 0);
  return { ok: presenceSessions.length, failed, errors: errors.list, readyMs: now() - t0, missingInitial: missing };
}

/**
 * Every session keeps `window` presence changes in flight until `endAt`,
 * toggling `<show>away</show>` on and off; each change carries its sequence
 * number and send time in `<status/>`, so no two are alike (the cluster's
 * filter drops a remote sender's presence that repeats the last one). A change
 * is complete when every contact of the sender received it; the sender then
 * sends the next. Receipts within [startAt, endAt] count, with their latency
 * from the change to the contact's receipt. After the drain, settleMs more for
 * copies still under way; then each contact's last arriving presence is
 * compared with the sender's last change.
 * With `interval` (ms) each session changes at most once per interval instead (paced, not saturating).
 * @param {{ startAt: number, endAt: number, window: number, drainMs: number, settleMs: number, interval?: number }} o
 */
async function presenceRun({ startAt, endAt, window, drainMs, settleMs, interval = 0 }) {
  const hist = new Histogram();
  let sent = 0;
  let sentIn = 0;
  let completed = 0;
  let completedIn = 0;
  let receipts = 0;
  let receiptsIn = 0;
  let duplicates = 0;
  let late = 0;
  let ownEcho = 0;
  let other = 0;
  /** Every presence stanza from a contact (copies included) within the window. */
  let presenceIn = 0;
  const sendOne = (s) => {
    const seq = ++s.seq;
    const t = now();
    s.pending.set(seq, { t, left: s.contacts, got: new Set() });
    sent++;
    if (t >= startAt && t <= endAt) sentIn++;
    s.send(`<presence xmlns='jabber:client'>${seq % 2 ? '<show>away</show>' : ''}<status>${seq}:${t}</status></presence>`);
  };
  const pump = (s) => {
    if (now() >= endAt) return;
    if (interval > 0) {
      // Paced: the next change no sooner than `interval` ms after this session's previous one.
      if (s.timer !== undefined || s.pending.size >= window) return;
      const wait = s.lastSent + interval - now();
      if (wait > 0) { s.timer = setTimeout(() => { s.timer = undefined; pump(s); }, wait); return; }
      s.lastSent = now();
      sendOne(s);
      return;
    }
    while (s.pending.size < window) sendOne(s);
  };
  for (const s of presenceSessions) {
    // Paced sessions start spread over one interval.
    s.lastSent = now() - Math.random() * interval;
    s.timer = undefined;
    s.seq = 0;
    s.pending = new Map();
    /** The change each contact's last arriving presence carried (arrival order). */
    s.lastFrom = new Map();
    s.onStanza = (el) => {
      if (localOf(el) !== 'presence' || attr(el, 'type') !== undefined) { other++; return; }
      const fromUser = localPart(attr(el, 'from'));
      if (fromUser === s.user) { ownEcho++; return; }
      const sender = s.byUser.get(fromUser);
      // The generator's own <status>n:t</status> (textOf's RegExp per stanza would cost more).
      const i = el.indexOf('<status>');
      const status = i < 0 ? '' : el.slice(i + 8, el.indexOf('</status>', i));
      if (!sender || !status) { other++; return; }
      const colon = status.indexOf(':');
      const seq = Number(status.slice(0, colon));
      const at = now();
      s.lastFrom.set(fromUser, seq);
      if (at >= startAt && at <= endAt) presenceIn++;
      const p = sender.pending.get(seq);
      // A copy of a change every contact already got: a duplicate arriving after the last first copy.
      if (!p) { late++; return; }
      if (p.got.has(s.user)) { duplicates++; return; }
      p.got.add(s.user);
      receipts++;
      if (at >= startAt && at <= endAt) { receiptsIn++; hist.add(at - Number(status.slice(colon + 1))); }
      if (--p.left > 0) return;
      sender.pending.delete(seq);
      completed++;
      if (at >= startAt && at <= endAt) completedIn++;
      pump(sender);
    };
  }
  for (const s of presenceSessions) pump(s);
  await sleep(Math.max(0, endAt - now()));
  for (const s of presenceSessions) if (s.timer !== undefined) { clearTimeout(s.timer); s.timer = undefined; }
  const drainEnd = now() + drainMs;
  while (now() < drainEnd && presenceSessions.some((s) => s.pending.size > 0)) await sleep(20);
  // Copies still under way (a cluster's second path) arrive meanwhile and count as late.
  const staleNow = () => presenceSessions.reduce((n, s) => n + [...s.lastFrom].filter(([user, seq]) => seq !== s.byUser.get(user).seq).length, 0);
  /** Stale contacts (below) 1 s after the drain, when settleMs is longer. */
  let staleAfter1s;
  if (settleMs > 1000) {
    await sleep(1000);
    staleAfter1s = staleNow();
  }
  await sleep(Math.max(0, settleMs - (staleAfter1s === undefined ? 0 : 1000)));
  let unfinished = 0;
  let missing = 0;
  // Contacts whose last arriving presence is not the sender's last change: they show an older one.
  let staleFinal = 0;
  /** How many changes behind the sender's last one the stale contacts are: a few examples. */
  const staleBehind = [];
  for (const s of presenceSessions) {
    s.onStanza = () => {};
    unfinished += s.pending.size;
    for (const p of s.pending.values()) missing += p.left;
    for (const [user, seq] of s.lastFrom) {
      const last = s.byUser.get(user).seq;
      if (seq === last) continue;
      staleFinal++;
      if (staleBehind.length < 10) staleBehind.push(last - seq);
    }
  }
  return { sessions: presenceSessions.length, sent, sentIn, completed, completedIn, receipts, receiptsIn, presenceIn, duplicates, late, ownEcho, other, unfinished, missing, staleFinal, staleAfter1s, staleBehind, hist: hist.toJSON() };
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
  presenceSessions = [];
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
  presenceSessions = [];
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
  presenceSetup,
  presenceRun,
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
