/**
 * The layers of docs/ARCHITECTURE.md ("Layers and the direction of imports")
 * as import rules. test/unit/layers.test.ts runs them from `npm test`, so an
 * import against the direction of the layers fails the suite; it also runs
 * them on test/fixtures/layers/, a tree with a break of each rule, to show
 * every rule still fires.
 *
 *   main.ts → app.ts → transports/, http/, metrics/, cli/ → xmpp/ → sasl/, storage ports and types
 *           → xml/, jid/, util/;   storage/ (memory, SQLite, PostgreSQL) → its ports, sasl/, util/
 *   app.ts → cluster/ (CLUSTER=redis, the only user of Redis) → xmpp/'s seams; xmpp/ never → cluster/
 *
 * Paths are relative to the folder cruised (src/, or the fixture's src/).
 */
// Libraries that listen, open files or keep process-wide registries: only the outer layers use them.
// Matched against the resolved path, hence node_modules/.
const SERVER_LIBS = '(^|/)node_modules/(fastify|@fastify/[^/]+|ws|prom-client)/';
const SQLITE = '(^|/)node_modules/better-sqlite3/';
const POSTGRES = '(^|/)node_modules/(pg|pg-[^/]+|@types/pg)/';
const REDIS = '(^|/)node_modules/(@redis/[^/]+|redis)/';
const OUTER = '(^|/)src/(transports|http|metrics|cli|config)/|(^|/)src/(app|main|shutdown)\\.ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle makes two modules one: neither can be read, tested or replaced alone. Type-only imports count too. '
        + 'One known exception, type-only and inside one feature: stream-management/flow.ts and resume.ts take SmOptions '
        + 'and SmState from its index.ts (issue 12 reshapes that state when the core takes over the session lifecycle).',
      from: { pathNot: '(^|/)src/xmpp/features/stream-management/' },
      to: { circular: true },
    },
    {
      name: 'no-circular-at-runtime',
      severity: 'error',
      comment: 'No exception for cycles of value imports: they make the order of module evaluation matter.',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'base-imports-nothing-above',
      severity: 'error',
      comment: 'xml/, jid/, util/ and sasl/ are pure building blocks: they know no XMPP session, store, transport or HTTP.',
      from: { path: '(^|/)src/(xml|jid|util|sasl)/' },
      to: { path: `(^|/)src/(xmpp|storage)/|${OUTER}` },
    },
    {
      name: 'base-uses-no-server-library',
      severity: 'error',
      from: { path: '(^|/)src/(xml|jid|util|sasl)/' },
      to: { path: `${SERVER_LIBS}|${SQLITE}` },
    },
    {
      name: 'storage-below-the-core',
      severity: 'error',
      comment: 'Storage implements ports for the core; it never imports the core, a transport or HTTP (SCRAM comes from sasl/).',
      from: { path: '(^|/)src/storage/' },
      to: { path: `(^|/)src/xmpp/|${OUTER}|${SERVER_LIBS}` },
    },
    {
      name: 'pg-only-in-storage-postgres',
      severity: 'error',
      comment: 'node-postgres opens connections and pools: only the PostgreSQL backend uses it; everything else gets a Storage.',
      from: { pathNot: '(^|/)src/storage/postgres/' },
      to: { path: POSTGRES },
    },
    {
      name: 'redis-only-in-cluster',
      severity: 'error',
      comment: 'The Redis client (connections, pub/sub, scripts) belongs to the cluster code in cluster/; the core and the rest never talk to Redis.',
      from: { pathNot: '(^|/)src/cluster/' },
      to: { path: REDIS },
    },
    {
      name: 'core-knows-no-cluster',
      severity: 'error',
      comment: 'The core exposes seams (remote session entries, the SM registry port, core events); cluster/ plugs into them as features. '
        + 'With CLUSTER=none nothing of the cluster is loaded into the core.',
      from: { path: '(^|/)src/xmpp/' },
      to: { path: '(^|/)src/cluster/' },
    },
    {
      name: 'core-imports-storage-ports-only',
      severity: 'error',
      comment: 'The core sees storage through its types and ports, never the barrel, memory or SQLite (which open files).',
      from: { path: '(^|/)src/xmpp/' },
      to: { path: '(^|/)src/storage/', pathNot: '(^|/)src/storage/(types\\.ts|ports/)' },
    },
    {
      name: 'core-knows-no-transport-http-or-metrics',
      severity: 'error',
      comment: 'The core sees a Conn and reports to its metrics port (xmpp/metrics-port.ts); the composition root wires the rest.',
      from: { path: '(^|/)src/xmpp/' },
      to: { path: `${OUTER}|${SERVER_LIBS}|${SQLITE}` },
    },
    {
      name: 'transports-are-adapters',
      severity: 'error',
      comment: 'A transport frames, limits and paces; it reaches the core only through conn.ts and transport-host.ts, never features, the core, storage or HTTP routes.',
      from: { path: '(^|/)src/transports/' },
      to: {
        path: `(^|/)src/(xmpp|storage|http|metrics|cli)/|(^|/)src/(app|main|shutdown)\\.ts$|${SQLITE}`,
        pathNot: '(^|/)src/xmpp/(conn|errors|log|metrics-port|transport-host)\\.ts$',
      },
    },
    {
      name: 'only-main-starts-the-app',
      severity: 'error',
      comment: 'main.ts is the entry point: nothing imports it. app.ts is the composition root: only main.ts and the CLI import it.',
      from: { pathNot: '(^|/)src/(main\\.ts|cli/)' },
      to: { path: '(^|/)src/(app|main)\\.ts$' },
    },
    {
      name: 'config-read-by-the-outer-layers',
      severity: 'error',
      comment: 'Configuration is loaded once at the top and handed down as options; the core and below never read it.',
      from: { path: '(^|/)src/(xmpp|storage|xml|jid|util|sasl|transports)/' },
      to: { path: '(^|/)src/config/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'A module the cruiser cannot resolve is a module no rule can check.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // The build output only: '(^|/)dist/' also hid every package that resolves into its own dist/ (@redis/client).
    exclude: { path: '^dist/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      extensions: ['.ts', '.js', '.json'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
  },
};
