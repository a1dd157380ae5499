/**
 * The pure parts of offline messages and carbons: the per-account serial
 * line, which messages are stored offline (XEP-0160 §3), and which are
 * carbon-copied (XEP-0280 §6.1).
 */
import t from 'tap';
import { KeyedSerial } from '../../src/xmpp/features/offline/serial.js';
import { storable } from '../../src/xmpp/features/offline/index.js';
import { eligible } from '../../src/xmpp/features/carbons.js';
import { NS, parseXml } from '../../src/xml/index.js';

const tick = () => new Promise<void>((r) => setImmediate(r));
const msg = (xml: string) => parseXml(xml, undefined, NS.CLIENT);

t.test('KeyedSerial runs tasks of one key in order, even when an earlier one is slower', async (t) => {
  const line = new KeyedSerial((err) => { throw err; });
  const seen: string[] = [];
  line.run('a', async () => { await tick(); await tick(); seen.push('a1'); });
  line.run('a', () => { seen.push('a2'); });
  line.run('b', () => { seen.push('b1'); });
  t.ok(line.busy('a') && line.busy('b'));
  await line.idle();
  t.same(seen, ['b1', 'a1', 'a2'], 'b does not wait for a; a2 waits for a1');
  t.notOk(line.busy('a'), 'an idle key is forgotten');
  t.equal(line.size, 0);
});

t.test('KeyedSerial reports a failing task and goes on with the next', async (t) => {
  const errors: unknown[] = [];
  const line = new KeyedSerial((err) => errors.push(err));
  const seen: string[] = [];
  line.run('a', () => { throw new Error('boom'); });
  line.run('a', () => { seen.push('after'); });
  await line.idle();
  t.same(seen, ['after']);
  t.equal((errors[0] as Error).message, 'boom');
});

t.test('KeyedSerial.idle waits for tasks queued by running tasks', async (t) => {
  const line = new KeyedSerial(() => {});
  const seen: string[] = [];
  line.run('a', async () => {
    await tick();
    line.run('b', async () => { await tick(); seen.push('b'); });
    seen.push('a');
  });
  await line.idle();
  t.same(seen, ['a', 'b']);
});

t.test('storable: chat and normal are stored; chat states alone, <no-store/>, headline, groupchat and error are not', async (t) => {
  const cases: Array<[string, boolean]> = [
    [`<message type='chat'><body>x</body></message>`, true],
    [`<message><body>x</body></message>`, true],
    [`<message type='normal'><subject>s</subject></message>`, true],
    [`<message type='chat'><body>x</body><active xmlns='${NS.CHATSTATES}'/></message>`, true],
    [`<message type='chat'><composing xmlns='${NS.CHATSTATES}'/></message>`, false],
    [`<message type='chat'><paused xmlns='${NS.CHATSTATES}'/><thread>t</thread></message>`, false],
    [`<message type='chat'><body>x</body><no-store xmlns='${NS.HINTS}'/></message>`, false],
    [`<message type='headline'><body>x</body></message>`, false],
    [`<message type='groupchat'><body>x</body></message>`, false],
    [`<message type='error'><body>x</body></message>`, false],
  ];
  for (const [xml, want] of cases) t.equal(storable(msg(xml)), want, xml);
});

t.test('eligible for carbons: XEP-0280 §6.1 without error copies', async (t) => {
  const cases: Array<[string, boolean]> = [
    [`<message type='chat'><body>x</body></message>`, true],
    [`<message type='chat'><composing xmlns='${NS.CHATSTATES}'/></message>`, true],
    [`<message><body>x</body></message>`, true],
    [`<message><subject>only</subject></message>`, false],
    [`<message><received xmlns='${NS.RECEIPTS}' id='1'/></message>`, true],
    [`<message><displayed xmlns='${NS.CHAT_MARKERS}' id='1'/></message>`, true],
    [`<message><x xmlns='${NS.X_CONFERENCE}' jid='room@muc.example'/></message>`, true],
    [`<message><x xmlns='${NS.MUC_USER}'><invite from='a@example'/></x></message>`, true],
    [`<message type='chat'><body>x</body><private xmlns='${NS.CARBONS}'/><no-copy xmlns='${NS.HINTS}'/></message>`, false],
    [`<message type='chat'><body>x</body><no-copy xmlns='${NS.HINTS}'/></message>`, false],
    [`<message type='chat'><received xmlns='${NS.CARBONS}'/></message>`, false],
    [`<message type='groupchat'><body>x</body></message>`, false],
    [`<message type='headline'><body>x</body></message>`, false],
    [`<message type='error'><body>x</body></message>`, false],
  ];
  for (const [xml, want] of cases) t.equal(eligible(msg(xml)), want, xml);
});
