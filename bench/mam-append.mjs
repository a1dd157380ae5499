#!/usr/bin/env node
// The SQLite archive's insert cost per entry (issue 16 item 5), on this process's CPU, no thread: the same entries
// (--users accounts, default 100 as the full-mode benchmark's 50 pairs; two per message as the server writes them),
// --batch per transaction (default 500), file in WAL with synchronous=NORMAL as the server opens it. Schemas:
// migration 9 (a row per entry, five B-trees: the table and indexes on account, correspondent, id and time),
// migration 10 (a row per entry, three B-trees) and migration 17 (a row per message with both accounts as integers,
// migration 11, and the accounts' runs in place of its three indexes; written by the server's own appender:
// archive-rows.ts). They take turns (--rounds, default 3), so a loaded
// machine disturbs them alike. The WAL is checkpointed every WRITER_CHECKPOINT_PAGES, as by the server's writer thread.
// "KB written per message": what the process wrote to the WAL and the database file (Linux: /proc/self/io, wchar),
// per message of two entries. The default mix is a ring (message m from u(m+1) to u(m)); --pairs N makes it N fixed
// conversations taking turns, as the throughput benchmark's 50 pairs; --cache-kib sets SQLite's page cache (default
// SQLite's 2,000 KiB, as the server's). Usage: npm run build && node bench/mam-append.mjs [--entries 200000]
// [--rounds 3] [--batch 500] [--users 100] [--pairs 0] [--cache-kib 0] [--page-size 0: SQLite's 4096] [--schemas 9,10,17]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, migrate } from '../dist/storage/sqlite/migrations.js';
import { archiveAppender } from '../dist/storage/sqlite/archive-rows.js';
import { WRITER_CHECKPOINT_PAGES } from '../dist/storage/sqlite/checkpoints.js';
import { archiveEntries, ROW_PER_ENTRY_INSERT, rowPerEntryParams } from './lib/mam-entries.mjs';

const argv = process.argv.slice(2);
const opt = (name, def) => { const i = argv.indexOf(name); return i >= 0 ? Number(argv[i + 1]) : def; };
const ENTRIES = opt('--entries', 200_000);
const ROUNDS = opt('--rounds', 3);
const BATCH = opt('--batch', 500);
const USERS = opt('--users', 100);
const PAIRS = opt('--pairs', 0);
const CACHE_KIB = opt('--cache-kib', 0);
const PAGE_SIZE = opt('--page-size', 0);

const entries = () => archiveEntries(ENTRIES, USERS, (m, to, from, at) => `<message xmlns="jabber:client" from="${from}@localhost/r" to="${to}@localhost" type="chat" id="m${m}"><body>message ${m}: about a hundred characters of text, as in the benchmark's throughput run.</body></message>`, PAIRS);

function run(steps, all) {
  const dir = mkdtempSync(join(tmpdir(), 'mam-append-'));
  const db = new Database(join(dir, 'db.sqlite'));
  // Before the first table and WAL: a database's page size is fixed once either exists.
  if (PAGE_SIZE > 0) db.pragma(`page_size = ${PAGE_SIZE}`);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  db.pragma(`wal_autocheckpoint = ${WRITER_CHECKPOINT_PAGES}`);
  if (CACHE_KIB > 0) db.pragma(`cache_size = -${CACHE_KIB}`);
  migrate(db, MIGRATIONS.slice(0, steps));
  const user = db.prepare('INSERT INTO users (host, username, credentials, created_at) VALUES (?, ?, ?, 0)');
  for (let u = 0; u < USERS; u++) user.run('localhost', `u${u}`, '{}');
  let append;
  if (steps >= 17) {
    const appender = archiveAppender(db);
    append = (batch) => appender.entries(batch);
  }
  else {
    const insert = db.prepare(ROW_PER_ENTRY_INSERT);
    const tx = db.transaction((batch) => { for (const e of batch) insert.run(...rowPerEntryParams(e)); });
    append = (batch) => tx.immediate(batch);
  }
  const written0 = written();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < all.length; i += BATCH) append(all.slice(i, i + BATCH));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const bytes = written() - written0;
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { wall, cpuUsPerEntry: (cpu.user + cpu.system) / all.length, kbPerMessage: bytes / 1000 / (all.length / 2) };
}

/** Bytes this process has written through write(2) and its kin so far (Linux). */
function written() {
  return Number(/^wchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? NaN);
}

const all = entries();
console.log(`# ${all.length} entries, batches of ${BATCH}, ${ROUNDS} rounds; load average at start ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
console.log('| round | schema | CPU µs per entry | entries/s (wall) | KB written per message |\n|---:|---|---:|---:|---:|');
const SCHEMAS = argv.includes('--schemas') ? argv[argv.indexOf('--schemas') + 1].split(',').map(Number) : [9, 10, 17];
const cpu = Object.fromEntries(SCHEMAS.map((s) => [s, []]));
for (let r = 1; r <= ROUNDS; r++) {
  for (const steps of SCHEMAS) {
    const { wall, cpuUsPerEntry, kbPerMessage } = run(steps, all);
    cpu[steps].push(cpuUsPerEntry);
    console.log(`| ${r} | migration ${steps} | ${cpuUsPerEntry.toFixed(2)} | ${Math.round(all.length / wall).toLocaleString('en')} | ${kbPerMessage.toFixed(2)} |`);
  }
}
const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (a, b) => `${((med(cpu[a]) / med(cpu[b]) - 1) * 100).toFixed(1)} %`;
console.log(`\nmedian CPU µs per entry: ${SCHEMAS.map((s) => `migration ${s} ${med(cpu[s]).toFixed(2)}`).join(', ')}${cpu[10] && cpu[17] ? `; 17 against 10 ${pct(17, 10)}` : ''}; load average at end ${loadavg().map((l) => l.toFixed(2)).join(', ')}`);
