/**
 * "A bad value stops the start and names the variable": addresses and URLs are read as the code
 * that uses them reads them (net.isIP, the WHATWG URL parser), so a value that would only fail later,
 * at listen() or new URL() with a stack naming no variable, fails in loadConfig (found in review).
 */
import t from 'tap';
import { loadConfig, ConfigError } from '../../src/config/index.js';

for (const [name, value] of [
  ['HOST', '999.999.999.999'], ['HOST', 'beef'], ['HOST', '::::'],
  ['METRICS_HOST', '300.1.1.1'],
  ['PUBLIC_URL', 'https://chat.example.com:99999'], ['PUBLIC_URL', 'https://chat.example.com:abc'], ['PUBLIC_URL', 'https://user@chat.example.com'],
  ['CLUSTER_ADVERTISE_URL', 'http://10.0.0.1:70000'],
  ['JWT_JWKS_URL', 'https://keys.example.com:99999/jwks.json'],
] as const) {
  t.test(`${name}=${value} is refused, naming ${name}`, async (t) => {
    let thrown: unknown;
    try { loadConfig({ [name]: value }); } catch (err) { thrown = err; }
    t.ok(thrown instanceof ConfigError, 'a ConfigError');
    t.match((thrown as Error | undefined)?.message ?? '', `${name}=`, 'naming the variable');
  });
}

for (const [name, value] of [
  ['HOST', '127.0.0.1'], ['HOST', '::'], ['HOST', 'localhost'], ['HOST', '::ffff:10.0.0.1'],
  ['METRICS_HOST', '0.0.0.0'],
  ['PUBLIC_URL', 'https://chat.example.com'], ['PUBLIC_URL', 'https://chat.example.com:8443/xmpp/'], ['PUBLIC_URL', 'http://[::1]:5280'],
  ['CLUSTER_ADVERTISE_URL', 'http://10.0.0.1:5280'],
  ['JWT_JWKS_URL', 'https://keys.example.com/.well-known/jwks.json'],
] as const) {
  t.test(`${name}=${value} is taken`, async (t) => {
    t.doesNotThrow(() => loadConfig({ [name]: value }));
  });
}
