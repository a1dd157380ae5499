/**
 * StanzaJS 12's XEP-0198 resend bug and the rolling-restart tests' workaround
 * (roll-peers.ts keepResentTracked), on StanzaJS's own StreamManagement: what
 * it resends on <resumed h/> must stay unacknowledged until the server's h
 * counts it (XEP-0198 §4), across a second interruption. The first test
 * states the bug as StanzaJS 12.22.1 has it: when it fails, StanzaJS fixed
 * it and the workaround can go.
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { keepResentTracked, type StanzaSm } from '../helpers/roll-peers.js';

interface Sm extends StanzaSm {
  enabled(resp: object): Promise<void>;
  track(kind: string, stanza: object): Promise<boolean>;
  resumed(resp: object): Promise<void>;
  process(ack: object): Promise<void>;
  on(event: 'resend', listener: (e: { kind: string; stanza: unknown }) => void): unknown;
}
const StreamManagement = (createRequire(import.meta.url)('stanza/helpers/StreamManagement.js') as { default: new () => Sm }).default;

/**
 * m1–m3 unacknowledged, a resumption whose h counts none (all three resent, as Client.js does: without tracking
 * them), m4 sent after it, <a h='3'/> for the three, then a second resumption before m4 reached the server.
 */
async function twoResumptions(workaround: boolean): Promise<{ first: string[]; afterAck: string[]; second: string[] }> {
  const sm = new StreamManagement();
  const resent: string[] = [];
  sm.on('resend', ({ stanza }) => { resent.push((stanza as { id: string }).id); });
  if (workaround) keepResentTracked(sm);
  await sm.enabled({ id: 'smid', resume: true });
  await sm.track('sm', { type: 'enable' });
  for (const id of ['m1', 'm2', 'm3']) await sm.track('message', { id });
  await sm.resumed({ previousSession: 'smid', handled: 0 });
  const first = resent.splice(0);
  await sm.track('message', { id: 'm4' });
  await sm.process({ type: 'ack', handled: 3 });
  const afterAck = sm.unacked.map(([, s]) => (s as { id: string }).id);
  await sm.resumed({ previousSession: 'smid', handled: 3 });
  return { first, afterAck, second: resent.splice(0) };
}

t.test('StanzaJS 12 alone: what it resent is forgotten, and the ack for it takes m4 off instead', async (t) => {
  t.same(await twoResumptions(false), { first: ['m1', 'm2', 'm3'], afterAck: [], second: [] });
});

t.test('with keepResentTracked: the resent stanzas stay unacknowledged until h counts them, and m4 is resent', async (t) => {
  t.same(await twoResumptions(true), { first: ['m1', 'm2', 'm3'], afterAck: ['m4'], second: ['m4'] });
});
