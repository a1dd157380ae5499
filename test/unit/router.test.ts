/**
 * The router (src/xmpp/router.ts) on its own: which route event a stanza
 * runs, RFC 6121 §8.5.3.2.1's full-to-bare rule for messages, components
 * before local and remote domains, and what it answers for a pipeline's
 * outcome (a veto's typed error, service-unavailable when nothing delivered,
 * never an error for an error), also when a handler awaits.
 */
import t from 'tap';
import { Pipeline, veto } from '../../src/xmpp/pipeline.js';
import { Router } from '../../src/xmpp/router.js';
import { ComponentRegistry } from '../../src/xmpp/registry.js';
import type { CoreEvents, RouteEvent } from '../../src/xmpp/events.js';
import type { Session } from '../../src/xmpp/session.js';
import { parseJid } from '../../src/jid/index.js';
import { NS, parseXml, type XmlElement } from '../../src/xml/index.js';

const stanza = (xml: string): XmlElement => parseXml(xml, undefined, NS.CLIENT);
const NAMES = ['message/full', 'message/bare', 'message/host', 'presence/full', 'presence/bare', 'presence/host',
  'iq/full', 'iq/bare', 'iq/host', 'route/component', 'route/remote'] as const;

/** A router over a pipeline whose deliver handlers record the event they ran and say 'delivered'. */
function setup(bound: string[] = []) {
  const hooks = new Pipeline<CoreEvents>();
  const seen: string[] = [];
  for (const name of NAMES) hooks.deliver(name, () => { seen.push(name); return 'delivered'; }, -100);
  const components = new ComponentRegistry();
  const errors: unknown[] = [];
  const sessions = { get: (domain: string, local: string, resource: string) => (bound.includes(`${local}@${domain}/${resource}`) ? ({} as Session) : undefined) };
  const router = new Router(hooks, new Set(['example.org']), components, sessions, (_e, err) => errors.push(err));
  return { hooks, router, seen, components, errors };
}

/** A stand-in origin session that collects what is sent to it. */
function origin(): Session & { got: XmlElement[] } {
  const got: XmlElement[] = [];
  return { got, destroyed: false, send: (el: XmlElement) => { got.push(el); } } as unknown as Session & { got: XmlElement[] };
}

t.test('a stanza runs the route event of its kind and address', (t) => {
  const { router, seen } = setup(['bob@example.org/phone']);
  const cases: Array<[string, string]> = [
    ["<message to='bob@example.org/phone'/>", 'message/full'],
    ["<message to='bob@example.org'/>", 'message/bare'],
    ["<message to='example.org'/>", 'message/host'],
    ["<presence to='bob@example.org/laptop'/>", 'presence/full'],
    ["<iq type='get' id='1' to='bob@example.org/laptop'><ping xmlns='urn:xmpp:ping'/></iq>", 'iq/full'],
    ["<iq type='get' id='2' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>", 'iq/host'],
    ["<message to='someone@elsewhere.net'/>", 'route/remote'],
  ];
  for (const [xml, expected] of cases) {
    const el = stanza(xml);
    seen.length = 0;
    router.route(null, el, parseJid(el.attr('to')!));
    t.same(seen, [expected], xml);
  }
  t.end();
});

t.test('RFC 6121 §8.5.3.2.1: chat and normal to a full JID with no such resource take the bare rules; other types do not', (t) => {
  const { router, seen } = setup();
  for (const [type, expected] of [[undefined, 'message/bare'], ['chat', 'message/bare'], ['normal', 'message/bare'], ['groupchat', 'message/full'], ['headline', 'message/full'], ['error', 'message/full']] as const) {
    seen.length = 0;
    const el = stanza(`<message to='bob@example.org/gone'${type ? ` type='${type}'` : ''}/>`);
    router.route(null, el, parseJid('bob@example.org/gone'));
    t.same(seen, [expected], `type ${type ?? '(none)'}`);
  }
  t.end();
});

t.test('a registered component takes its domain, or one bare JID, before local and remote routing', (t) => {
  const { router, seen, components } = setup();
  const off = components.register({ address: 'conference.example.org', name: 'Rooms', handle: () => undefined });
  components.register({ address: 'bot@example.org', name: 'Bot', handle: () => undefined });
  for (const [to, expected] of [['room@conference.example.org/nick', 'route/component'], ['bot@example.org', 'route/component'],
    ['bot@example.org/x', 'route/component'], ['bob@example.org', 'message/bare']] as const) {
    seen.length = 0;
    router.route(null, stanza(`<message type='chat' to='${to}'/>`), parseJid(to));
    t.same(seen, [expected], to);
  }
  t.throws(() => components.register({ address: 'conference.example.org', name: 'again', handle: () => undefined }), /already serves/);
  off();
  seen.length = 0;
  router.route(null, stanza("<message to='room@conference.example.org'/>"), parseJid('room@conference.example.org'));
  t.same(seen, ['route/remote'], 'once removed, the domain is remote again');
  t.same([...components.all].map((c) => c.address), ['bot@example.org']);
  t.end();
});

t.test("a filter's veto is answered to the sender with its condition and extra child; a drop is not answered", (t) => {
  const { hooks, router } = setup();
  let mode: 'veto' | 'drop' = 'veto';
  hooks.filter('message/bare', () => (mode === 'veto' ? veto('not-acceptable', 'no', parseXml("<blocked xmlns='urn:xmpp:blocking:errors'/>")) : 'drop'), 0);
  const from = origin();
  router.route(from, stanza("<message id='m' from='alice@example.org/a' to='bob@example.org'/>"), parseJid('bob@example.org'));
  const error = from.got[0]?.getChild('error');
  t.equal(from.got[0]?.attr('type'), 'error');
  t.ok(error?.getChild('not-acceptable', NS.STANZAS), 'the vetoed condition');
  t.ok(error?.getChild('blocked', 'urn:xmpp:blocking:errors'), 'with the extra child');
  mode = 'drop';
  router.route(from, stanza("<message id='m2' from='alice@example.org/a' to='bob@example.org'/>"), parseJid('bob@example.org'));
  t.equal(from.got.length, 1, 'nothing for a drop');
  t.end();
});

t.test('nothing delivered: service-unavailable for messages and IQs, silence for presence, errors and results', (t) => {
  const hooks = new Pipeline<CoreEvents>();
  const router = new Router(hooks, new Set(['example.org']), new ComponentRegistry(), { get: () => undefined }, () => undefined);
  const from = origin();
  const send = (xml: string) => { const el = stanza(xml); router.route(from, el, parseJid(el.attr('to')!)); };
  send("<message id='a' from='alice@example.org/a' to='bob@example.org'/>");
  send("<iq type='get' id='b' from='alice@example.org/a' to='bob@example.org'><q xmlns='x'/></iq>");
  send("<presence from='alice@example.org/a' to='bob@example.org'/>");
  send("<message type='error' id='c' from='alice@example.org/a' to='bob@example.org'/>");
  send("<iq type='result' id='d' from='alice@example.org/a' to='bob@example.org'/>");
  t.same(from.got.map((el) => [el.attr('id'), el.getChild('error')?.getChildren()[0]?.local]), [['a', 'service-unavailable'], ['b', 'service-unavailable']]);
  t.end();
});

t.test('a route whose handler awaits returns a promise; idle() waits for it, and a failure goes to the error sink', async (t) => {
  const { hooks, router, errors } = setup();
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  const order: string[] = [];
  hooks.filter('message/bare', async (e: RouteEvent) => { await gate; order.push(`checked ${e.stanza.attr('id')}`); }, 0);
  hooks.filter('iq/bare', async () => { throw new Error('boom'); }, 0);
  const out = router.route(null, stanza("<message id='x' to='bob@example.org'/>"), parseJid('bob@example.org'));
  t.ok(out instanceof Promise, 'a promise while the filter awaits');
  t.equal(router.pending, 1);
  let idle = false;
  const waiting = router.idle().then(() => { idle = true; });
  await new Promise((r) => setImmediate(r));
  t.notOk(idle, 'idle() waits for the route');
  release();
  await waiting;
  t.same(order, ['checked x']);
  t.equal(router.pending, 0);
  await router.route(null, stanza("<iq type='get' id='y' to='bob@example.org'><q xmlns='x'/></iq>"), parseJid('bob@example.org'));
  t.equal((errors[0] as Error)?.message, 'boom', 'the failure reached the sink');
});
