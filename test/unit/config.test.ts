import t from 'tap';
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, SCHEMA } from '../../src/config/index.js';
import type { OptionSpec } from '../../src/config/schema.js';
import { HELM_MARKERS, README_MARKERS, renderConfigTable, renderEnvExample, renderHelmEnv, replaceBetween } from '../../src/config/env-example.js';

t.test('defaults apply when the environment is empty', async (t) => {
  const c = loadConfig({});
  t.equal(c.port, 5280);
  t.equal(c.host, '0.0.0.0');
  t.same(c.domains, ['localhost']);
  t.equal(c.dataDir, './data');
  t.equal(c.maxStanzaSize, 262144);
  t.equal(c.wsPingInterval, 25);
  t.equal(c.allowInsecurePlain, false);
  t.equal(c.scramIterations, 10000);
  t.ok(Object.isFrozen(c), 'the config is frozen');
});

t.test('values are parsed and typed', async (t) => {
  const c = loadConfig({ PORT: '8080', XMPP_DOMAIN: 'a.example, b.example', ALLOW_INSECURE_PLAIN: 'true', PUBLIC_URL: '' });
  t.equal(c.port, 8080);
  t.same(c.domains, ['a.example', 'b.example']);
  t.equal(c.allowInsecurePlain, true);
  t.equal(c.publicUrl, '', 'an empty value is the default where the default is empty');
});

t.test('a set but empty value stops the start naming the variable, unless the default is empty', async (t) => {
  // XMPP_DOMAIN= silently served localhost; PORT= listened on 5280; TRUSTED_PROXIES= (meant: none) trusted loopback.
  for (const spec of Object.values(SCHEMA) as OptionSpec[]) {
    const emptyDefault = spec.kind === 'list' ? spec.default.length === 0 : spec.default === '';
    for (const raw of ['', '  ']) {
      let problems: string[] = [];
      try {
        loadConfig({ [spec.env]: raw });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        problems = err.problems;
      }
      if (emptyDefault) {
        t.same(problems, [], `${spec.env}=${JSON.stringify(raw)}: the documented empty default (${spec.env}= in .env.example)`);
      } else {
        t.equal(problems.length, 1, `${spec.env}=${JSON.stringify(raw)} is refused`);
        t.match(problems[0], new RegExp(`^${spec.env}=${JSON.stringify(raw)} is invalid: expected .+; unset ${spec.env} for its default`), spec.env);
      }
    }
  }
  t.throws(() => loadConfig({ TRUSTED_PROXIES: '' }), /TRUSTED_PROXIES="" is invalid: expected .* or none/, "a list that may be empty says 'none'");
  t.same(loadConfig({ TRUSTED_PROXIES: 'none' }).trustedProxies, [], 'none is the empty list');
});

t.test('a bad value names the variable, the value and what was expected', async (t) => {
  const bad: Array<[string, string, RegExp]> = [
    ['PORT', '70000', /PORT="70000" is invalid: expected an integer from 0 to 65535/],
    ['PORT', 'http', /PORT="http" is invalid/],
    ['ALLOW_INSECURE_PLAIN', 'yes', /ALLOW_INSECURE_PLAIN="yes" is invalid: expected true or false/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL="loud" is invalid: expected one of fatal, error/],
    ['XMPP_DOMAIN', 'Not A Domain', /XMPP_DOMAIN="Not A Domain" is invalid/],
    ['SCRAM_ITERATIONS', '100', /SCRAM_ITERATIONS="100" is invalid: expected an integer from 4096/],
    ['MAX_STANZA_SIZE', '12.5', /MAX_STANZA_SIZE="12.5" is invalid/],
    // Found in a hostile review: these passed the old pattern and crashed the start with a stack trace.
    ['TRUSTED_PROXIES', '10.0.0.0/99', /TRUSTED_PROXIES="10.0.0.0\/99" is invalid: expected a comma-separated list of IP addresses or CIDR ranges/],
    ['TRUSTED_PROXIES', '::1/129', /TRUSTED_PROXIES="::1\/129" is invalid/],
    ['TRUSTED_PROXIES', '999.1.1.1', /TRUSTED_PROXIES="999.1.1.1" is invalid/],
    ['TRUSTED_PROXIES', '10.0.0.0/8/8', /TRUSTED_PROXIES="10.0.0.0\/8\/8" is invalid/],
  ];
  for (const [name, value, pattern] of bad) {
    t.throws(() => loadConfig({ [name]: value }), pattern, `${name}=${value}`);
  }
});

t.test('trusted proxies take addresses and CIDR ranges of either family', async (t) => {
  const c = loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 192.0.2.7, fd00::/8, ::1, 2001:db8::/128' });
  t.same(c.trustedProxies, ['10.0.0.0/8', '192.0.2.7', 'fd00::/8', '::1', '2001:db8::/128']);
});

t.test('every error is reported at once', async (t) => {
  try {
    loadConfig({ PORT: 'x', WS_PING_INTERVAL: '0' });
    t.fail('should throw');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    t.equal((err as ConfigError).problems.length, 2);
  }
});

t.test('.env.example documents every variable with its default', async (t) => {
  const file = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
  t.equal(file, renderEnvExample(), '.env.example is up to date (regenerate with npm run env-example)');
  const headings: string[] = file.match(/^## .*/gm) ?? [];
  t.ok(headings.length > 5, `grouped under headings: ${headings.join(', ')}`);
  t.same(headings.filter((h, i) => headings.indexOf(h) !== i), [], 'each group under one heading');
  for (const spec of Object.values(SCHEMA)) t.match(file, new RegExp(`^${spec.env}=`, 'm'), spec.env);
});

t.test('domains in A-labels (xn--) are read as their U-labels, as every JID is (RFC 7622 §3.2.1)', async (t) => {
  const c = loadConfig({ XMPP_DOMAIN: 'xn--bcher-kva.example,plain.example', SASL_ANONYMOUS_HOSTS: 'xn--bcher-kva.example', ECHO_COMPONENT: 'echo.xn--bcher-kva.example' });
  t.same(c.domains, ['bücher.example', 'plain.example']);
  t.same(c.anonymousHosts, ['bücher.example'], 'matched against the served domains in the same form');
  t.equal(c.echoComponent, 'echo.bücher.example');
  t.same(loadConfig({ XMPP_DOMAIN: 'bücher.example', SASL_ANONYMOUS_HOSTS: 'xn--bcher-kva.example' }).anonymousHosts, ['bücher.example'], 'either form names the same host');
  t.throws(() => loadConfig({ XMPP_DOMAIN: 'xn--zz.example' }), /^XMPP_DOMAIN="xn--zz.example" is invalid/, 'A-labels that are not valid Punycode');
  t.throws(() => loadConfig({ XMPP_DOMAIN: 'xn--ls8h.example' }), /^XMPP_DOMAIN="xn--ls8h.example" is invalid/, 'nor a domainpart (U+1F4A9 is no IDNA2008 code point)');
  t.throws(() => loadConfig({ XMPP_DOMAIN: 'xn--bcher-kva.example', ECHO_COMPONENT: 'bücher.example' }),
    /^ECHO_COMPONENT="bücher.example" is invalid: expected a domain name that is not one of XMPP_DOMAIN/, 'the component may not be a served domain in another form');
});

t.test('anonymous hosts must be served domains', async (t) => {
  t.same(loadConfig({ XMPP_DOMAIN: 'a.example,guest.example', SASL_ANONYMOUS_HOSTS: 'guest.example' }).anonymousHosts, ['guest.example']);
  t.throws(() => loadConfig({ SASL_ANONYMOUS_HOSTS: 'guest.example' }), /SASL_ANONYMOUS_HOSTS="guest.example" is invalid: expected hosts listed in XMPP_DOMAIN/);
});

t.test('ECHO_COMPONENT must not be a served domain, refused with the configuration errors', async (t) => {
  t.equal(loadConfig({ XMPP_DOMAIN: 'example.org', ECHO_COMPONENT: 'echo.example.org' }).echoComponent, 'echo.example.org');
  t.throws(() => loadConfig({ XMPP_DOMAIN: 'a.example,b.example', ECHO_COMPONENT: 'b.example' }),
    /^ECHO_COMPONENT="b.example" is invalid: expected a domain name that is not one of XMPP_DOMAIN/);
});

t.test('STORAGE=postgres needs a DATABASE_URL; a bad one names the variable', async (t) => {
  t.equal(loadConfig({}).storage, 'sqlite', 'SQLite stays the default');
  const c = loadConfig({ STORAGE: 'postgres', DATABASE_URL: 'postgres://gw:secret@db.example:5432/gateway' });
  t.equal(c.storage, 'postgres');
  t.equal(c.databaseUrl, 'postgres://gw:secret@db.example:5432/gateway');
  t.throws(() => loadConfig({ STORAGE: 'postgres' }), /DATABASE_URL is required when STORAGE=postgres: expected a postgres:\/\/user:password@host:port\/database URL/);
  t.throws(() => loadConfig({ STORAGE: 'postgres', DATABASE_URL: 'mysql://db/gateway' }), /DATABASE_URL=\(value hidden\) is invalid: expected a postgres:\/\//);
  t.throws(() => loadConfig({ STORAGE: 'postgres', DATABASE_URL: 'postgres://gw:s3cret@db /x' }), /DATABASE_URL=\(value hidden\) is invalid/, 'no spaces');
  const err = (() => { try { loadConfig({ DATABASE_URL: 'pg://gw:s3cret@db/x' }); } catch (e) { return e as Error; } })();
  t.match(err?.message, /DATABASE_URL=\(value hidden\) is invalid/, 'refused, naming the variable');
  t.notMatch(err?.message ?? '', /s3cret/, 'the password in a bad URL is not echoed');
  t.throws(() => loadConfig({ STORAGE: 'mongodb' }), /STORAGE="mongodb" is invalid: expected one of sqlite, postgres/);
  t.equal(loadConfig({ DATABASE_URL: 'postgres://db/x' }).storage, 'sqlite', 'a DATABASE_URL alone does not switch the backend');
});

t.test('PostgreSQL connect and statement bounds: milliseconds, on by default, 0 for none; a bad value names the variable', async (t) => {
  const c = loadConfig({});
  t.equal(c.databaseConnectTimeout, 5000, 'a connection is given 5 s by default');
  t.equal(c.databaseStatementTimeout, 10000, 'a statement 10 s, well under AUTH_TIMEOUT (30 s)');
  t.ok(c.databaseStatementTimeout < c.authTimeout * 1000, 'a stalled login is answered before AUTH_TIMEOUT ends its stream');
  const set = loadConfig({ DATABASE_CONNECT_TIMEOUT: '250', DATABASE_STATEMENT_TIMEOUT: '0' });
  t.same([set.databaseConnectTimeout, set.databaseStatementTimeout], [250, 0]);
  t.throws(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT: '5s' }), /DATABASE_STATEMENT_TIMEOUT="5s" is invalid: expected an integer from 0 to 3600000/);
  t.throws(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT: '-1' }), /DATABASE_STATEMENT_TIMEOUT="-1" is invalid/);
  t.throws(() => loadConfig({ DATABASE_CONNECT_TIMEOUT: '600001' }), /DATABASE_CONNECT_TIMEOUT="600001" is invalid: expected an integer from 0 to 600000/);
  t.throws(() => loadConfig({ DATABASE_CONNECT_TIMEOUT: '' }), /DATABASE_CONNECT_TIMEOUT="" is invalid: .*unset DATABASE_CONNECT_TIMEOUT for its default \(5000\)/);
});

t.test('WORKERS above 1 needs CLUSTER=redis, naming the variable', async (t) => {
  t.equal(loadConfig({}).workers, 1, 'one process by default');
  const cluster = { CLUSTER: 'redis', REDIS_URL: 'redis://127.0.0.1:6379/0', SM_BACKEND: 'redis', STORAGE: 'postgres', DATABASE_URL: 'postgres://db/x' };
  t.equal(loadConfig({ ...cluster, WORKERS: '2' }).workers, 2);
  t.throws(() => loadConfig({ WORKERS: '2' }), /WORKERS=2 is invalid with CLUSTER=none: expected 1, or CLUSTER=redis/);
  t.throws(() => loadConfig({ WORKERS: '0' }), /WORKERS="0" is invalid/);
});

t.test('every row of the README configuration table has its three cells (GFM splits a row at each unescaped |)', async (t) => {
  for (const row of renderConfigTable().split('\n').slice(2)) {
    const cells = row.replace(/^\|/, '').replace(/\|$/, '').split(/(?<!\\)\|/);
    t.equal(cells.length, 3, row.slice(0, 60));
  }
});

t.test('the README configuration table and the Helm values mirror the schema', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  t.equal(readme, replaceBetween(readme, ...README_MARKERS, renderConfigTable()), 'README table is up to date (npm run env-example)');
  const values = readFileSync(new URL('../../helm/xmpp-web-gateway/values.yaml', import.meta.url), 'utf8');
  t.equal(values, replaceBetween(values, ...HELM_MARKERS, renderHelmEnv()), 'Helm env block is up to date (npm run env-example)');
  for (const spec of Object.values(SCHEMA)) {
    t.match(readme, `| \`${spec.env}\` |`, `README documents ${spec.env}`);
    t.match(values, new RegExp(`^  ${spec.env}: "`, 'm'), `Helm values set ${spec.env}`);
  }
});
