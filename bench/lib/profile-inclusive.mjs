// Inclusive (self + callees) time of chosen functions in V8 .cpuprofile files, within a CLOCK_MONOTONIC window:
//   node bench/lib/profile-inclusive.mjs FROM_US TO_US 'file-regex:function-regex' ... -- a.cpuprofile b.cpuprofile
// Prints per pattern the milliseconds of samples with a matching frame on their stack (each sample once), summed
// over the files, and the busy (non-idle) milliseconds. lib/profile.mjs gives self time; this answers "how much
// of the busy time is under X" (e.g. a stanza-out filter and everything it calls).
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const sep = args.indexOf('--');
const [from, to] = args.slice(0, 2).map(Number);
const patterns = args.slice(2, sep).map((p) => { const i = p.lastIndexOf(':'); return { label: p, file: new RegExp(p.slice(0, i)), fn: new RegExp(p.slice(i + 1)) }; });
const files = args.slice(sep + 1);

const totals = new Map(patterns.map((p) => [p.label, 0]));
let busy = 0;
for (const file of files) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  /** Per node id: which patterns match on its stack (memoized). */
  const memo = new Map();
  const matches = (id) => {
    if (memo.has(id)) return memo.get(id);
    const cf = nodes.get(id).callFrame;
    const up = parent.has(id) ? matches(parent.get(id)) : new Set();
    const own = patterns.filter((p) => p.file.test(cf.url) && p.fn.test(cf.functionName)).map((p) => p.label);
    const set = own.length ? new Set([...up, ...own]) : up;
    memo.set(id, set);
    return set;
  };
  let t = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    t += prof.timeDeltas[i];
    if (t < from || t > to) continue;
    const dt = Math.max(0, i + 1 < prof.timeDeltas.length ? prof.timeDeltas[i + 1] : 0);
    const id = prof.samples[i];
    if (nodes.get(id).callFrame.functionName === '(idle)') continue;
    busy += dt;
    for (const label of matches(id)) totals.set(label, totals.get(label) + dt);
  }
}
console.log(`busy ${(busy / 1000).toFixed(0)} ms in the window over ${files.length} profile(s)`);
for (const [label, us] of totals) console.log(`${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${label}`);
