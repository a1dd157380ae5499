#!/usr/bin/env node
// The SQLite archive's insert cost per entry (issue 16 item 5), schema before migration 10 (five B-trees per
// row: the table and indexes on account, correspondent, id and time) against after it (three), on this process's
// CPU, no thread: the same statement, the same entries (40 accounts, two per message as the server writes them),
// batches of 500 in one transaction each, file in WAL with synchronous=NORMAL as the server opens it. The two
// schemas take turns (--rounds, default 3), so a loaded machine disturbs both alike.
// Usage: npm run build && node bench/mam-append.mjs [--entries 200000] [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, migrate } from '../dist/storage/sqlite/migrations.js';
import { INSERT, insertParams } from '../dist/storage/sqlite/archive.js';
import { archiveEntries } from './lib/mam-entries.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : def; };
const ENTRIES = opt('--entries', 200_000);
const ROUNDS = opt('--rounds', 3);
const BATCH = 500;
const USERS = 40;

const entries = () => archiveEntries(ENTRIES, USERS, (m, to, from, at) => `<message xmlns="jabber:client" from="${from}@localhost/r" to="${to}@localhost" type="chat" id="m${m}"><body>message ${m}: about a hundred characters of text, as in the benchmark's throughput run.</body></message>`);

function run(steps, all) {
  const dir = mkdtempSync(join(tmpdir(), 'mam-append-'));
  const db = new Database(join(dir, 'db.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  migrate(db, MIGRATIONS.slice(0, steps));
  const user = db.prepare('INSERT INTO users (host, username, credentials, created_at) VALUES (?, ?, ?, 0)');
  for (let u = 0; u < USERS; u++) user.run('localhost', `u${u}`, '{}');
  const insert = db.prepare(INSERT);
  const tx = db.transaction((batch) => { for (const e of batch) insert.run(...insertParams(e)); });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < all.length; i += BATCH) tx.immediate(all.slice(i, i + BATCH));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { wall, cpuUsPerEntry: (cpu.user + cpu.system) / all.length };
}

const all = entries();
console.log(`# ${all.length} entries, batches of ${BATCH}, ${ROUNDS} rounds; load average at start ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
console.log('| round | schema | CPU µs per entry | entries/s (wall) |\n|---:|---|---:|---:|');
const cpu = { 9: [], 10: [] };
for (let r = 1; r <= ROUNDS; r++) {
  for (const steps of [9, 10]) {
    const { wall, cpuUsPerEntry } = run(steps, all);
    cpu[steps].push(cpuUsPerEntry);
    console.log(`| ${r} | ${steps === 9 ? 'before (migration 9)' : 'after (migration 10)'} | ${cpuUsPerEntry.toFixed(2)} | ${Math.round(all.length / wall).toLocaleString('en')} |`);
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nmedian CPU µs per entry: before ${med(cpu[9]).toFixed(2)}, after ${med(cpu[10]).toFixed(2)} (${((med(cpu[10]) / med(cpu[9]) - 1) * 100).toFixed(1)} %); load average at end ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
