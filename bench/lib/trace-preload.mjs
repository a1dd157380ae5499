// Preload for the gateway processes of a bench run (the cluster servers included, whose workers node:cluster forks):
//   PGCOUNT_DIR=/tmp/pg PROF_DIR=/tmp/prof NODE_OPTIONS="--import $PWD/bench/lib/trace-preload.mjs" node bench/run.mjs ...
// PGCOUNT_DIR: each process writes <pid>.json every second, the statements it sent to PostgreSQL (node-postgres'
// Client.query, which Pool.query goes through) with their counts. PROF_DIR: each writes <pid>.cpuprofile at exit
// (node:inspector; `--cpu-prof` is refused in NODE_OPTIONS). Only processes running dist/main.js are touched: the
// bench itself, its generator and the CLI's `user import` are not.
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const gateway = process.argv[1]?.endsWith('main.js');

function countStatements(dir) {
  // pg as the gateway resolves it: the same module instance its pools use.
  const pg = createRequire(process.argv[1])('pg');
  const counts = new Map();
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (config, ...rest) {
    const text = typeof config === 'string' ? config : String(config?.text);
    counts.set(text, (counts.get(text) ?? 0) + 1);
    return original.call(this, config, ...rest);
  };
  setInterval(() => writeFileSync(`${dir}/${process.pid}.json`, JSON.stringify(Object.fromEntries(counts), null, 1)), 1000).unref();
}

function profile(dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 1000 });
  session.post('Profiler.start');
  // The inspector answers synchronously on the process's own thread, so this runs within 'exit'.
  process.on('exit', () => session.post('Profiler.stop', (err, res) => { if (!err) writeFileSync(`${dir}/${process.pid}.cpuprofile`, JSON.stringify(res.profile)); }));
}

if (gateway && process.env.PGCOUNT_DIR) countStatements(process.env.PGCOUNT_DIR);
if (gateway && process.env.PROF_DIR) profile(process.env.PROF_DIR);
