#!/usr/bin/env node
// MAM query latency (XEP-0313): a page of 50 from one user's archive of 1,000 and of 1,000,000 messages,
// on the SQLite backend (the default), through the store (ArchiveStore.query) and end to end (a WebSocket
// client's <iq><query/></iq> to its <fin/>, on a gateway built from dist/ in this process).
// The archives are filled directly through the store (ArchiveStore.append, 10,000 rows per transaction)
// before anything is measured.  Usage: npm run build && node bench/mam-query.mjs [--sizes 1000,1000000] [--queries 200]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { openSqliteStorage, deriveStoredCredentials } from '../dist/storage/index.js';
import { archiveIdFor, KEYS_PER_MS } from '../dist/storage/ports/archive-ids.js';
import { loadConfig } from '../dist/config/index.js';
import { buildApp } from '../dist/app.js';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const SIZES = opt('--sizes', '1000,1000000').split(',').map(Number);
const QUERIES = Number(opt('--queries', '200'));
const BATCH = 10_000;
const PAGE = 50;
const CONTACTS = 20;

const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
const ms = (x) => x.toFixed(3);

/** Archive ids of the messages, numbered as the server numbers them (storage/ports/archive-ids.ts). */
const idAt = [];

/** n messages for alice@localhost, with CONTACTS correspondents in turn, one per 10 ms, ids and seqs as the server makes them. */
async function fill(storage, n) {
  const t0 = performance.now();
  const start = Date.now() - n * 10;
  idAt.length = 0;
  for (let from = 0; from < n; from += BATCH) {
    const entries = [];
    for (let i = from; i < Math.min(n, from + BATCH); i++) {
      const withJid = `c${i % CONTACTS}@localhost`;
      const at = start + i * 10;
      const key = at * KEYS_PER_MS;
      idAt.push(archiveIdFor(key));
      entries.push({ host: 'localhost', username: 'alice', id: idAt[i], seq: 2 * key, with: withJid, at,
        stanza: `<message xmlns="jabber:client" from="${withJid}/r" to="alice@localhost/web" type="chat" id="m${i}"><body>message number ${i} of the benchmark, about a hundred characters of text in all.</body></message>` });
    }
    await storage.archive.append(entries);
  }
  return (performance.now() - t0) / 1000;
}

/** The queries a client makes, each a page of 50: the last page, a page in the middle, one contact's last page, a time window, one message by id. */
function shapes(n) {
  const mid = idAt[Math.floor(n / 2)];
  return {
    'last page (RSM <before/>)': { limit: PAGE, direction: 'backward' },
    'page after an id in the middle': { limit: PAGE, direction: 'forward', page: { after: mid } },
    "one contact's last page (with)": { limit: PAGE, direction: 'backward', with: 'c7@localhost' },
    'a time window (start/end)': { limit: PAGE, direction: 'forward', start: Date.now() - n * 5, end: Date.now() - n * 5 + 60_000 },
    // XEP-0313 #extended: one message by its id (a reply's quoted message).
    'one message by id (ids)': { limit: PAGE, direction: 'forward', ids: [mid] },
  };
}

async function storeLatency(storage, n) {
  const out = {};
  for (const [name, q] of Object.entries(shapes(n))) {
    for (let i = 0; i < 20; i++) await storage.archive.query('localhost', 'alice', q); // warm-up
    const times = [];
    for (let i = 0; i < QUERIES; i++) {
      const t0 = performance.now();
      const page = await storage.archive.query('localhost', 'alice', q);
      times.push(performance.now() - t0);
      const expected = q.ids ? q.ids.length : PAGE;
      if (page.messages.length !== expected) throw new Error(`${name}: ${page.messages.length} messages`);
    }
    out[name] = { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
  }
  return out;
}

/** A logged-in raw WebSocket client (PLAIN: ALLOW_INSECURE_PLAIN on this loopback gateway). */
async function wsClient(url) {
  const ws = new WebSocket(url, 'xmpp');
  const frames = [];
  let wake = () => {};
  ws.on('message', (d) => { frames.push(String(d)); wake(); });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  const until = async (needle) => {
    for (;;) {
      const i = frames.findIndex((f) => f.includes(needle));
      if (i >= 0) return frames.splice(0, i + 1).at(-1);
      await new Promise((r) => { wake = r; });
    }
  };
  const open = () => ws.send("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>");
  open(); await until('<mechanisms');
  ws.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0alice\0pw').toString('base64')}</auth>`);
  await until('<success');
  open(); await until('<bind');
  ws.send("<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
  await until('<jid>');
  return { ws, until, frames };
}

async function wireLatency(url) {
  const c = await wsClient(url);
  const times = [];
  for (let i = 0; i < 20 + QUERIES; i++) {
    const t0 = performance.now();
    c.ws.send(`<iq xmlns='jabber:client' type='set' id='q${i}'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>${PAGE}</max><before/></set></query></iq>`);
    await c.until('<fin');
    if (i >= 20) times.push(performance.now() - t0);
  }
  c.ws.close();
  return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

const rows = [];
for (const n of SIZES) {
  const dir = mkdtempSync(join(tmpdir(), 'mam-bench-'));
  try {
    const storage = openSqliteStorage(dir);
    await storage.users.create('localhost', 'alice', await deriveStoredCredentials('pw', 4096));
    const fillSeconds = await fill(storage, n);
    const load = loadavg()[0];
    const store = await storeLatency(storage, n);
    const config = loadConfig({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn', SCRAM_ITERATIONS: '4096', ALLOW_INSECURE_PLAIN: 'true', DATA_DIR: dir });
    const app = await buildApp(config, storage, { logger: false });
    await app.http.listen({ port: 0, host: '127.0.0.1' });
    const wire = await wireLatency(`ws://127.0.0.1:${app.http.server.address().port}/xmpp-websocket`);
    await app.shutdown();
    rows.push({ n, fillSeconds, load, store, wire });
    console.error(`${n} messages: filled in ${fillSeconds.toFixed(1)} s; load ${load.toFixed(2)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`| archive size | query (page of ${PAGE}) | p50 ms | p99 ms |\n|---:|---|---:|---:|`);
for (const r of rows) {
  for (const [name, v] of Object.entries(r.store)) console.log(`| ${r.n.toLocaleString('en-US')} | store: ${name} | ${ms(v.p50)} | ${ms(v.p99)} |`);
  console.log(`| ${r.n.toLocaleString('en-US')} | WebSocket round trip: last page, 50 results + <fin/> | ${ms(r.wire.p50)} | ${ms(r.wire.p99)} |`);
}
console.log(`\nFill (store.append, ${BATCH} per transaction): ${rows.map((r) => `${r.n.toLocaleString('en-US')} in ${r.fillSeconds.toFixed(1)} s`).join('; ')}. Load average (1 min) when measuring: ${rows.map((r) => r.load.toFixed(2)).join(', ')} on ${process.env.NPROC ?? '2'} cores.`);
