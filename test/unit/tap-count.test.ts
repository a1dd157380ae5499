import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// scripts/tap-count.mjs gives .ci/run its "N passed, N failed" when tap ended
// without its own summary: it must count assertions as tap does (subtests
// flattened), and a file cut short must not pass for a clean one.
const root = fileURLToPath(new URL('../..', import.meta.url));

function count(files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'tap-count-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(join(dir, name, '..'), { recursive: true });
      writeFileSync(join(dir, name), text);
    }
    const run = spawnSync(process.execPath, ['scripts/tap-count.mjs', dir], { cwd: root, encoding: 'utf8' });
    return { code: run.status, out: run.stdout.trim(), err: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const nested = `TAP version 14
# Subtest: outer
    # Subtest: inner
        ok 1 - a
        ok 2 - b
        1..2
    ok 1 - inner
    ok 2 - c
    1..2
ok 1 - outer
ok 2 - d
1..2
`;
const failing = `TAP version 14
# Subtest: s
    ok 1 - a
    not ok 2 - b
    1..2
not ok 1 - s
1..1
`;
const cutInSubtest = `TAP version 14
# Subtest: s
    ok 1 - a
`;
const cutAtTop = `TAP version 14
ok 1 - a
`;

t.test('nested subtests count their assertions once each, in folders below the one named', async (t) => {
  const r = count({ 'test/unit/x.test.ts.tap': nested, 'test/y.test.ts.tap': nested });
  t.equal(r.code, 0, r.err);
  t.equal(r.out, '8 0', 'a, b, c and d in each of two files');
});

t.test('a failed assertion is counted as failed, not its enclosing subtest too', async (t) => {
  const r = count({ 'a.tap': nested, 'b.tap': failing });
  t.equal(r.out, '5 1');
});

t.test('a file cut short (no plan) counts a failure though all it printed passed', async (t) => {
  t.equal(count({ 'a.tap': nested, 'cut.tap': cutInSubtest }).out, '5 1', 'cut inside a subtest');
  t.equal(count({ 'a.tap': nested, 'cut.tap': cutAtTop }).out, '5 1', 'cut between top-level points');
});

t.test('files not ending in .tap are not read', async (t) => {
  const r = count({ 'a.tap': nested, 'notes.txt': 'not ok 1 - x\n' });
  t.equal(r.out, '4 0');
});
