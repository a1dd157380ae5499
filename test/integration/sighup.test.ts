/**
 * SIGHUP (a closed terminal, a logrotate script's `kill -HUP`, an operator used to Prosody, where it
 * reloads the configuration and reopens the logs) must not end the real process (`node dist/main.js`).
 * Node's default for SIGHUP is to die at once: no system-shutdown to the clients, and what their
 * stream-management queues held (accepted, acknowledged to the senders) was never stored offline.
 * The process says, once per signal, that nothing was reloaded, and serves on; SIGTERM still ends it.
 */
import t from 'tap';
import { ensureBuilt, MAIN, spawnServing } from '../helpers/built.js';
import { waitUntil } from '../helpers/eventually.js';


t.setTimeout(60_000);
t.before(() => ensureBuilt(MAIN));

t.test('SIGHUP: the process logs that nothing was reloaded and serves on; SIGTERM then exits with 0', async (t) => {
  const dir = t.testdir();
  const { child, exited, lines, base } = await spawnServing(t, dir, { SHUTDOWN_TIMEOUT: '5' });
  const url = `http://${base}`;

  child.kill('SIGHUP');
  await waitUntil(() => lines().some((l) => l.event === 'sighup') || child.exitCode !== null || child.signalCode !== null, { message: 'the SIGHUP line or the exit' });
  t.equal(child.signalCode, null, 'SIGHUP did not kill the process');
  t.match(lines().find((l) => l.event === 'sighup'), { level: 40, msg: /SIGHUP ignored/ }, 'one warn line says nothing was reloaded');
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'it still serves');
  t.equal((await fetch(`${url}/readyz`)).status, 200, 'and is still ready');

  child.kill('SIGTERM');
  t.same(await exited, { code: 0, signal: null }, 'SIGTERM still shuts it down, with 0');
  t.ok(lines().some((l) => l.event === 'shutdown-complete'), 'through the graceful shutdown');
});
