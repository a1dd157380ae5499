import t from 'tap';
import { WriteGate, type GateTarget } from '../../src/xmpp/features/stream-management/gate.js';
import type { PushResult } from '../../src/xmpp/features/stream-management/registry.js';
import { x, type XmlElement } from '../../src/xml/index.js';

/** A session stand-in that records what reaches its transport, by id. */
function target(): GateTarget & { written: string[]; conn: unknown; destroyed: boolean } {
  return {
    conn: 'ws-1', destroyed: false, written: [],
    write(el: XmlElement) { this.written.push(el.attr('id') ?? el.name); },
  };
}
const msg = (id: string) => x('message', { id });
const item = (id: string) => ({ stanza: msg(id), at: 0 });

function gate() {
  const out = target();
  const told: Array<[PushResult, string | undefined]> = [];
  const g = new WriteGate(out, (result, pushed) => told.push([result, pushed.stanza.attr('id')]));
  return { g, out, told };
}

t.test('with every push answered a write goes out at once', async (t) => {
  const { g, out } = gate();
  g.write(msg('a'));
  g.expect();
  g.pushed('stored', item('b'));
  g.write(msg('b'));
  t.same(out.written, ['a', 'b']);
  t.equal(g.waiting, 0);
});

t.test('a write waits for the answers of the pushes before it, and the writes go out in order', async (t) => {
  const { g, out } = gate();
  g.expect();
  g.write(msg('m1'));
  g.expect();
  g.write(msg('m2'));
  g.write(x('r'));
  t.same(out.written, [], 'nothing before the journal answers');
  g.pushed('stored', item('m1'));
  t.same(out.written, ['m1'], 'the first push answered: only what waited for it');
  g.pushed('stored', item('m2'));
  t.same(out.written, ['m1', 'm2', 'r'], 'the rest, in order');
  t.equal(g.waiting, 0);
});

t.test('a write made while earlier writes wait queues behind them even if its own push was answered', async (t) => {
  const { g, out } = gate();
  g.expect();
  g.write(msg('m1'));
  g.pushed('stored', item('m1'));
  g.expect();
  g.write(msg('m2'));
  g.write(msg('m3'));
  g.pushed('stored', item('m2'));
  t.same(out.written, ['m1', 'm2', 'm3']);
});

t.test('a refused push: it and every later write stay unwritten, and the session is told', async (t) => {
  const { g, out, told } = gate();
  g.expect();
  g.write(msg('m1'));
  g.expect();
  g.write(msg('m2'));
  g.pushed('stored', item('m1'));
  g.pushed('fenced', item('m2'));
  g.write(msg('m3'));
  t.same(out.written, ['m1']);
  t.same(told, [['fenced', 'm2']]);
});

t.test('a stanza kept in memory only (no record, store failed, not journaled) is still written, and the session is told', async (t) => {
  const { g, out, told } = gate();
  for (const [i, result] of (['missing', 'failed', 'memory'] as const).entries()) {
    g.expect();
    g.write(msg(`m${i}`));
    g.pushed(result, item(`m${i}`));
  }
  t.same(out.written, ['m0', 'm1', 'm2']);
  t.same(told.map(([r]) => r), ['missing', 'failed', 'memory']);
});

t.test('a write meant for a transport that is gone, or for an ended session, is not written', async (t) => {
  const { g, out } = gate();
  g.expect();
  g.write(msg('old'));
  out.conn = 'ws-2';
  g.write(msg('new'));
  g.pushed('stored', item('old'));
  t.same(out.written, ['new'], 'the resumption resends the queue itself: only what was meant for the new transport');
  g.expect();
  g.write(msg('late'));
  out.destroyed = true;
  g.pushed('stored', item('late'));
  t.same(out.written, ['new']);
});
