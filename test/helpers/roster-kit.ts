/**
 * Small tools for the roster, presence and blocking protocol tests over the
 * fake transport: read what a client was sent with bounded waits, do IQ
 * round trips, seed stored rosters.
 */
import { NS, type XmlElement } from '../../src/xml/index.js';
import type { RosterItem } from '../../src/storage/index.js';
import type { FakeClient, FakeServer } from './fake-conn.js';
import { eventually } from './eventually.js';

export const WAIT_MS = 2000;
let ids = 0;

/** Lets queued work run: a few event-loop turns (storage is in memory, so nothing waits on I/O). */
export async function drain(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
}

/** What a client was sent, read in order without consuming FakeConn's own cursor. */
export class Reader {
  #at: number;
  constructor(readonly client: FakeClient) { this.#at = client.conn.out.length; }

  /** Everything sent since the last read (after letting queued work run). */
  async all(): Promise<XmlElement[]> {
    await drain();
    const out = this.client.conn.out.slice(this.#at);
    this.#at = this.client.conn.out.length;
    return out;
  }

  /** Stanzas of one kind sent since the last read. */
  async stanzas(local: 'presence' | 'message' | 'iq'): Promise<XmlElement[]> {
    return (await this.all()).filter((el) => el.local === local);
  }

  /** The first element matching `pred` from here on, waiting up to `ms`; what comes before it is skipped. */
  async until(pred: (el: XmlElement) => boolean, what: string, ms = WAIT_MS): Promise<XmlElement> {
    const out = this.client.conn.out;
    return eventually(() => {
      while (this.#at < out.length) {
        const el = out[this.#at++]!;
        if (pred(el)) return el;
      }
      return undefined;
    }, { timeout: ms, interval: 2, message: what });
  }
}

/** Sends an IQ and waits for the reply with its id (skipping everything else, which stays readable by other Readers). */
export async function iq(client: FakeClient, type: 'get' | 'set', payload: string, to?: string): Promise<XmlElement> {
  const id = `kit-${++ids}`;
  const reader = new Reader(client);
  client.send(`<iq xmlns='jabber:client' type='${type}' id='${id}'${to ? ` to='${to}'` : ''}>${payload}</iq>`);
  return reader.until((el) => el.local === 'iq' && el.attr('id') === id, `the reply to IQ ${id}`);
}

export async function rosterGet(client: FakeClient, ver?: string): Promise<XmlElement> {
  return iq(client, 'get', `<query xmlns='${NS.ROSTER}'${ver === undefined ? '' : ` ver='${ver}'`}/>`);
}

/** The roster items of a result or push, as plain data. */
export function items(el: XmlElement): Array<{ jid: string; subscription?: string; ask?: string; approved?: string; name?: string; groups: string[] }> {
  const query = el.getChild('query', NS.ROSTER);
  return (query?.getChildren('item', NS.ROSTER) ?? []).map((i) => ({
    jid: i.attr('jid')!,
    subscription: i.attr('subscription'),
    ask: i.attr('ask'),
    approved: i.attr('approved'),
    name: i.attr('name'),
    groups: i.getChildren('group').map((g) => g.text()),
  }));
}

export function isRosterPush(el: XmlElement): boolean {
  return el.local === 'iq' && el.attr('type') === 'set' && el.getChild('query', NS.ROSTER) !== undefined;
}

/** The stanza error condition of an error reply. */
export function condition(el: XmlElement | undefined): string | undefined {
  const error = el?.getChild('error');
  return error?.getChildren().find((c) => c.ns === NS.STANZAS && c.local !== 'text')?.local;
}

/** Logs in and sends initial presence. */
export async function online(server: FakeServer, user: string, resource: string, presence = `<presence xmlns='jabber:client'/>`): Promise<FakeClient> {
  const c = await server.login(user, resource);
  await rosterGet(c);
  c.send(presence);
  await drain();
  return c;
}

export function item(jid: string, subscription: RosterItem['subscription'], more: Partial<RosterItem> = {}): RosterItem {
  return { jid, name: undefined, groups: [], subscription, ask: false, approved: false, ...more };
}

/** Stores an item directly (for accounts that are not logged in, so nothing is cached). */
export async function seed(server: FakeServer, user: string, entry: RosterItem, version = 1): Promise<void> {
  await server.storage.rosters.putItem('localhost', user, entry, version);
}

export async function seedPending(server: FakeServer, user: string, from: string): Promise<void> {
  await server.storage.rosters.putPending('localhost', user, { jid: from, stanza: `<presence xmlns='jabber:client' type='subscribe' from='${from}' to='${user}@localhost'/>` });
}

/** The stored roster state of `contact` on `user`'s roster (after the writes have run). */
export async function storedState(server: FakeServer, user: string, contact: string): Promise<{ item: RosterItem | undefined; pendingIn: boolean }> {
  await drain();
  const r = await server.storage.rosters.load('localhost', user);
  return { item: r.items.find((i) => i.jid === contact), pendingIn: r.pending.some((p) => p.jid === contact) };
}

/** Closes clients and waits until the server has released their accounts. */
export async function closeAll(...clients: FakeClient[]): Promise<void> {
  for (const c of clients) c.session.close();
  await drain();
}
