/**
 * Loaded into every test process (package.json "tap"."node-arg"), after tap's
 * own imports. tap's @tapjs/processinfo puts itself into NODE_OPTIONS and, through
 * process-on-spawn, into the environment of every process a test spawns, so each
 * gateway, CLI run, cluster node and benchmark would load it too. It hooks every
 * module load to record line lengths for coverage, which this suite turns off
 * ("disable-coverage"), and that doubled the CPU a gateway spends starting
 * (measured: 1.2 s against 2.5 s to import dist/app.js on a loaded machine).
 *
 * Here it is taken out for the children only: the spawn wrapper is undone (its
 * state is a global singleton, `Symbol.for('process-on-spawn@*:singletonId')`),
 * and its import leaves NODE_OPTIONS; anything else in NODE_OPTIONS stays.
 * test/unit/child-node-options.test.ts fails if a tap upgrade changes either.
 */
const state = globalThis[Symbol.for('process-on-spawn@*:singletonId')];
if (state !== undefined) {
  state.listeners = [];
  state.unwrap?.();
}
// tap writes it quoted: "--import=file:///…/@tapjs/processinfo/dist/esm/import.mjs"
const PROCESSINFO = /(^|\s)"?--(?:import|loader)=[^\s"]*@tapjs[\\/]processinfo[^\s"]*"?/g;
const options = (process.env.NODE_OPTIONS ?? '').replace(PROCESSINFO, ' ').trim();
if (options === '') delete process.env.NODE_OPTIONS;
else process.env.NODE_OPTIONS = options;
