/**
 * RefusalLog: refusals an attacker repeats at will, with keys (origins,
 * addresses) the attacker chooses, give a bounded number of log lines, and
 * what was left out is said once the minute has passed.
 */
import t from 'tap';
import { RefusalLog } from '../../src/transports/admission.js';
import type { Log } from '../../src/xmpp/log.js';

function recorder(): { log: Log; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const put = (fields: object): void => { lines.push({ ...fields }); };
  const log = { warn: put, info: put, error: put, debug: put, trace: put, fatal: put, child: () => log } as unknown as Log;
  return { log, lines };
}

t.test('once a minute per key, and at most the cap in all; the omitted are counted into one line after the minute', async (t) => {
  let now = 1_000_000;
  const refusals = new RefusalLog(() => now, 5);
  const { log, lines } = recorder();
  const write = (key: string) => () => { lines.push({ event: 'refused', key }); };
  for (let i = 0; i < 3; i++) refusals.log('a', log, write('a'));
  t.same(lines.map((l) => l.key), ['a'], 'a repeated key: one line');
  for (let i = 0; i < 1000; i++) refusals.log(`k${i}`, log, write(`k${i}`));
  t.equal(lines.length, 5, 'a thousand new keys: the cap, 5 lines in all');
  now += 59_999;
  refusals.log('z', log, write('z'));
  t.equal(lines.length, 5, 'still the same minute');
  now += 1;
  refusals.log('a', log, write('a'));
  t.same(lines.slice(5), [
    { event: 'refused-omitted', omitted: 2 + 996 + 1, seconds: 60 },
    { event: 'refused', key: 'a' },
  ], 'the next minute: how many were left out, then the line due');
  now += 60_000;
  refusals.log('b', log, write('b'));
  t.same(lines.slice(7), [{ event: 'refused', key: 'b' }], 'no summary when nothing was left out');
});
