/**
 * The server secret in DATA_DIR (storage/secret.ts): created once, the same for every process
 * that shares the directory, also when they all start at the same moment (WORKERS=N).
 */
import t from 'tap';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { loadOrCreateSecret, SECRET_FILE } from '../../src/storage/secret.js';

t.test('created once, 32 bytes, owner-only, and read back the same', async (t) => {
  const dir = join(t.testdir(), 'data');
  const first = loadOrCreateSecret(dir);
  t.equal(first.length, 32);
  t.equal(statSync(join(dir, SECRET_FILE)).mode & 0o777, 0o600);
  t.same(loadOrCreateSecret(dir), first);
  t.same(readdirSync(dir), [SECRET_FILE], 'nothing else left in the directory');
});

t.test('processes starting at once in a fresh directory all get the one secret', async (t) => {
  // Eight "processes" released at the same instant, 60 times over: before, a process that found
  // the file another had just created, not yet written, read it empty and stopped ("shorter than
  // 32 bytes: delete it") in about one round of eight.
  const workers = Array.from({ length: 8 }, () => new Worker(new URL('../fixtures/secret/create-worker.ts', import.meta.url)));
  t.teardown(() => Promise.all(workers.map((w) => w.terminate())));
  const next = (w: Worker) => new Promise<{ ready?: true; secret?: string; error?: string }>((resolve) => w.once('message', resolve));
  const base = t.testdir();
  const failures: string[] = [];
  for (let round = 0; round < 60; round++) {
    const dir = mkdtempSync(join(base, 'data-'));
    const flag = new SharedArrayBuffer(4);
    const ready = workers.map(next);
    for (const w of workers) w.postMessage({ dir, flag });
    await Promise.all(ready);
    const answers = workers.map(next);
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    const got = await Promise.all(answers);
    const errors = got.flatMap((a) => (a.error === undefined ? [] : [a.error]));
    const secrets = new Set(got.flatMap((a) => (a.secret === undefined ? [] : [a.secret])));
    if (errors.length > 0 || secrets.size !== 1) failures.push(`round ${round}: ${errors.length} failed (${errors[0] ?? ''}), ${secrets.size} distinct secrets`);
    else t.same(readdirSync(dir), [SECRET_FILE], `round ${round}: nothing else left in the directory`) || failures.push(`round ${round}: leftovers`);
  }
  t.same(failures, [], 'every process of every round read the one secret');
});
