#!/usr/bin/env node
// The SQLite archive writer's cost per entry by commit size and statement shape (issue 16 item 5, at saturation),
// in the row-per-entry table of migrations 9 and 10 (measured before migration 11; mam-append.mjs compares that with 11):
// batches of --batches entries (default 500,4000) in one transaction each, inserted one row per statement (`INSERT`,
// as the server) or 64 rows per statement (a variant tried and not kept), over --users accounts (default 100, as the
// full-mode benchmark's 50 pairs), two entries per message as the server writes them, WAL + synchronous=NORMAL as
// the writer thread opens the file (--autocheckpoint: its wal_autocheckpoint, default 1000 pages as SQLite's).
// Process CPU per entry and wall entries/s (wall includes the WAL checkpoints' fsyncs). Variants take turns
// (--rounds, default 3). Also the main thread's cost of handing a batch to the thread (V8's structured clone, as
// postMessage does). Usage: npm run build && node bench/mam-commit.mjs
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { migrate } from '../dist/storage/sqlite/migrations.js';
import { archiveEntries, ROW_PER_ENTRY_INSERT as INSERT, rowPerEntryParams as insertParams } from './lib/mam-entries.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : def; };
const ENTRIES = Number(opt('--entries', 200_000));
const ROUNDS = Number(opt('--rounds', 3));
const USERS = Number(opt('--users', 100));
const BATCHES = opt('--batches', '500,4000').split(',').map(Number);
const CHECKPOINT = Number(opt('--autocheckpoint', 1000));

const entries = () => archiveEntries(ENTRIES, USERS, (m, to, from, at) => `<message xmlns="jabber:client" to="${to}@localhost" type="chat" id="${m.toString(36)}:${at}" from="${from}@localhost/bench"><body>message ${m}: about a hundred characters of text, as in the benchmark's throughput run.</body></message>`);

/** The multi-row variant tried (and not kept: it costs more per row): ROWS rows per INSERT … SELECT FROM (VALUES …). */
const ROWS = 64;
function prepareAppendRows(db) {
  const sql = (n) => `INSERT INTO archive (seq, host, username, id, with_jid, at, stanza)
    SELECT v.column1, u.host, u.username, v.column2, v.column3, v.column4, v.column5
    FROM (VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}) AS v
    CROSS JOIN users AS u ON u.host = v.column6 AND u.username = v.column7`;
  const statements = new Map();
  return (entries) => {
    for (let i = 0; i < entries.length; i += ROWS) {
      const chunk = entries.slice(i, i + ROWS);
      if (!statements.has(chunk.length)) statements.set(chunk.length, db.prepare(sql(chunk.length)));
      statements.get(chunk.length).run(chunk.flatMap(insertParams));
    }
  };
}

function run(batch, shape, all) {
  const dir = mkdtempSync(join(tmpdir(), 'mam-commit-'));
  const db = new Database(join(dir, 'db.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma(`wal_autocheckpoint = ${CHECKPOINT}`);
  migrate(db);
  const user = db.prepare('INSERT INTO users (host, username, credentials, created_at) VALUES (?, ?, ?, 0)');
  for (let u = 0; u < USERS; u++) user.run('localhost', `u${u}`, '{}');
  const insert = db.prepare(INSERT);
  const rows = prepareAppendRows(db);
  const tx = db.transaction(shape === 'multi' ? rows : (b) => { for (const e of b) insert.run(...insertParams(e)); });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < all.length; i += batch) tx.immediate(all.slice(i, i + batch));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const n = db.prepare('SELECT count(*) AS n FROM archive').get().n;
  if (n !== all.length) throw new Error(`${n} rows, expected ${all.length}`);
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { wall, cpuUs: (cpu.user + cpu.system) / all.length };
}

function cloneCost(all) {
  const batch = all.slice(0, 500);
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < 200; i++) serialize(batch);
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / (200 * batch.length);
}

const all = entries();
const variants = BATCHES.flatMap((batch) => [['single', batch], ['multi', batch]]);
console.log(`# ${all.length} entries over ${USERS} accounts, ${ROUNDS} rounds, wal_autocheckpoint ${CHECKPOINT}; load average at start ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
console.log('| round | entries per commit | statement | CPU µs per entry | entries/s (wall) |\n|---:|---:|---|---:|---:|');
const cpu = new Map(variants.map((v) => [v.join(' '), []]));
for (let r = 1; r <= ROUNDS; r++) {
  for (const [shape, batch] of variants) {
    const { wall, cpuUs } = run(batch, shape, all);
    cpu.get(`${shape} ${batch}`).push(cpuUs);
    console.log(`| ${r} | ${batch} | ${shape === 'multi' ? 'multi-row' : 'one row'} | ${cpuUs.toFixed(2)} | ${Math.round(all.length / wall).toLocaleString('en')} |`);
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nmedian CPU µs per entry: ${[...cpu].map(([k, xs]) => `${k} ${med(xs).toFixed(2)}`).join(', ')}`);
console.log(`structured clone of a batch of 500, main thread: ${cloneCost(all).toFixed(2)} µs per entry; load average at end ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
