/**
 * PEP (XEP-0163) from xmpp.js in tests: a client that advertises entity
 * capabilities (XEP-0115) with a verification string of its own features and
 * answers the server's disco#info for it, IQs sent and their replies read
 * off the wire, and rosters seeded in storage.
 */
import type { Test } from 'tap';
import { createHash } from 'node:crypto';
import type { TestServer } from './server.js';
import { createClient, nextReceived, start, xml, type XmlEl, type XmppJsClient } from './xmppjs.js';
import type { RosterSubscription } from '../../src/storage/index.js';

export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
export const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';
export const NS_EVENT = 'http://jabber.org/protocol/pubsub#event';
export const NS_ERRORS = 'http://jabber.org/protocol/pubsub#errors';
export const NS_CAPS = 'http://jabber.org/protocol/caps';
export const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
export const CAPS_NODE = 'https://example.org/pep-test-client';

export type PepClient = XmppJsClient & { jid: string; features: string[] };

/** XEP-0115 §5.1 for one client identity and plain features: written out here so the test does not trust the server's code. */
export function clientVer(features: readonly string[]): string {
  let s = 'client/web//pep-test<';
  for (const f of [...features].sort()) s += `${f}<`;
  return createHash('sha1').update(s, 'utf8').digest('base64');
}

/** The features a test client answers disco#info with: disco, caps and `<node>+notify` for each of `notify`. */
export function clientFeatures(notify: readonly string[]): string[] {
  return [NS_DISCO_INFO, NS_CAPS, ...notify.map((n) => `${n}+notify`)];
}

/** Logs `user` in with xmpp.js, answering disco#info with `features` (+notify ones included) and sending them as caps in its presence. */
export async function capsClient(t: Test, server: TestServer, user: string, resource: string, notify: readonly string[]): Promise<PepClient> {
  const features = clientFeatures(notify);
  const s = createClient(t, server, { username: user, password: `${user}-pw`, resource });
  const callee = (s.xmpp as unknown as { iqCallee: { get(ns: string, name: string, h: () => XmlEl): void } }).iqCallee;
  callee.get(NS_DISCO_INFO, 'query', () => xml('query', { xmlns: NS_DISCO_INFO },
    xml('identity', { category: 'client', type: 'web', name: 'pep-test' }), ...features.map((f) => xml('feature', { var: f }))));
  const jid = await start(s, user);
  return { ...s, jid, features };
}

/**
 * Initial presence with the client's caps; resolves once the server reflects it. `ver` may be given to lie
 * (a verification string that is not the hash of what the client answers).
 */
export async function available(c: PepClient, ver = clientVer(c.features)): Promise<void> {
  const reflected = nextReceived(c, (el) => el.is('presence') && el.attrs.from === c.jid && el.attrs.type === undefined, `${c.jid}'s presence reflected`);
  await c.xmpp.send(xml('presence', {}, xml('c', { xmlns: NS_CAPS, hash: 'sha-1', node: CAPS_NODE, ver })));
  await reflected;
}

/** Sends an IQ and returns the server's reply (result or error), read off the wire. */
export async function iq(c: XmppJsClient, type: 'get' | 'set', child: XmlEl, to?: string): Promise<XmlEl> {
  const id = `pep-${Math.random().toString(36).slice(2)}`;
  const reply = nextReceived(c, (el) => el.is('iq') && el.attrs.id === id, `the reply to ${id}`);
  await c.xmpp.send(xml('iq', { type, id, ...(to ? { to } : {}) }, child));
  return reply;
}

/** The stanza error condition and pubsub#errors element of an error reply. */
export function pepError(reply: XmlEl): { type: string | undefined; condition: string | undefined; app: string | undefined; feature: string | undefined } {
  const error = reply.getChild('error');
  const children = (error as unknown as { children: Array<XmlEl | string> } | undefined)?.children.filter((c): c is XmlEl => typeof c !== 'string') ?? [];
  const condition = children.find((c) => c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas' && c.name !== 'text');
  const app = children.find((c) => c.attrs.xmlns === NS_ERRORS);
  return { type: reply.attrs.type, condition: condition?.name, app: app?.name, feature: app?.attrs.feature };
}

/** A data form of `formType` with single values. */
export function form(formType: string, fields: Record<string, string>): XmlEl {
  return xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
    xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, formType)),
    ...Object.entries(fields).map(([v, value]) => xml('field', { var: v }, xml('value', {}, value))));
}

/** `<pubsub><publish node><item id?>payload</item></publish>[publish-options]</pubsub>` */
export function publish(node: string, payload: XmlEl, id?: string, options?: Record<string, string>): XmlEl {
  return xml('pubsub', { xmlns: NS_PUBSUB },
    xml('publish', { node }, xml('item', id ? { id } : {}, payload)),
    ...(options ? [xml('publish-options', {}, form(`${NS_PUBSUB}#publish-options`, options))] : []));
}

export function itemsRequest(node: string, attrs: Record<string, string> = {}, ...ids: string[]): XmlEl {
  return xml('pubsub', { xmlns: NS_PUBSUB }, xml('items', { node, ...attrs }, ...ids.map((id) => xml('item', { id }))));
}

/** The ids of the items in a result or an event. */
export function itemIds(el: XmlEl | undefined): string[] {
  return (el?.getChildren('item') ?? []).map((i) => i.attrs.id ?? '');
}

/** The next PEP event `c` gets about `node` from `from`. */
export function nextEvent(c: XmppJsClient, from: string, node: string, what: string): Promise<XmlEl> {
  return nextReceived(c, (el) => el.is('message') && el.attrs.from === from && el.getChild('event', NS_EVENT)?.getChildren('items').concat(
    el.getChild('event', NS_EVENT)?.getChildren('delete') ?? [], el.getChild('event', NS_EVENT)?.getChildren('purge') ?? [],
  ).some((i) => i.attrs.node === node) === true, what);
}

/** Both sides' roster items (subscription `sub` from `a`'s side), written to storage before either logs in. */
export async function befriend(server: TestServer, a: string, b: string, sub: RosterSubscription = 'both', groups: string[] = []): Promise<void> {
  const mirror: Record<RosterSubscription, RosterSubscription> = { both: 'both', to: 'from', from: 'to', none: 'none' };
  await server.storage.rosters.putItem('localhost', a, { jid: `${b}@localhost`, name: undefined, subscription: sub, ask: false, approved: false, groups }, 1);
  await server.storage.rosters.putItem('localhost', b, { jid: `${a}@localhost`, name: undefined, subscription: mirror[sub], ask: false, approved: false, groups: [] }, 1);
}
