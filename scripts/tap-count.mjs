#!/usr/bin/env node
// Counts the passed and failed assertions in the TAP tap wrote per test file
// (.tap/test-results), for .ci/run's summary line when tap's own summary is
// missing (tap cut short). Subtests are flattened, so the figures are the
// assertions, as tap's "# { total, pass, fail }" counts them; a file that did
// not finish (no plan) counts one failure more. Prints "PASS FAIL".
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from 'tap-parser';

const dir = process.argv[2] ?? '.tap/test-results';

function* tapFiles(folder) {
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) yield* tapFiles(path);
    else if (entry.name.endsWith('.tap')) yield path;
  }
}

let pass = 0;
let fail = 0;
for (const file of tapFiles(dir)) {
  const events = Parser.parse(readFileSync(file, 'utf8'), { flat: true });
  for (const [event, result] of events) {
    if (event !== 'assert' || result.skip || result.todo) continue;
    if (result.ok) pass += 1;
    else fail += 1;
  }
  // A file cut short (its process killed) ends without its plan: the parser
  // reports a failure of its own ("no plan"), or, cut inside a subtest, a
  // result that is not ok with no failed point. Either is counted once.
  const complete = events.findLast(([event]) => event === 'complete')?.[1];
  const cut = !complete || complete.failures.some((f) => f.tapError) || (!complete.ok && complete.fail === 0);
  if (cut) fail += 1;
}
console.log(`${pass} ${fail}`);
