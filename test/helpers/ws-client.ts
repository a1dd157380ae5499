import WebSocket from 'ws';
import { eventually, Wake } from './eventually.js';
import { NS, parseXml, WRITTEN_LIMITS, type XmlElement } from '../../src/xml/index.js';

/**
 * A raw RFC 7395 client for protocol tests: sends text frames verbatim and
 * hands back every frame the server sends, parsed.
 */
export class RawWsClient {
  readonly frames: XmlElement[] = [];
  readonly raw: string[] = [];
  closed: { code: number; reason: string } | undefined;
  readonly #wake = new Wake();
  #read = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      const text = data.toString();
      this.raw.push(text);
      // What the server writes, not bound by the limits of client input (a carbon of a stanza at the limit exceeds them).
      if (!isBinary) this.frames.push(parseXml(text, WRITTEN_LIMITS, NS.CLIENT));
      this.#wake.notify();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#wake.notify();
    });
  }

  static async connect(url: string, protocols: string | string[] = 'xmpp', headers?: Record<string, string>): Promise<RawWsClient> {
    return RawWsClient.connectWith(url, protocols, headers ? { headers } : undefined);
  }

  /** Like connect, with any `ws` client options (TLS options, `localAddress` to connect from 127.0.0.2, …). */
  static async connectWith(url: string, protocols: string | string[], options?: WebSocket.ClientOptions): Promise<RawWsClient> {
    const ws = new WebSocket(url, protocols, options);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return new RawWsClient(ws);
  }

  send(frame: string | Buffer, binary = false): void {
    this.ws.send(frame, { binary });
  }

  /** The xml:lang of the headers open() sends (RFC 6120 §4.7.4); none when unset. */
  lang: string | undefined;

  open(to = 'localhost'): void {
    const lang = this.lang === undefined ? '' : ` xml:lang='${this.lang}'`;
    this.send(`<open xmlns='${NS.FRAMING}' to='${to}' version='1.0'${lang}/>`);
  }

  /** Opens the stream and reads the server's <open/>; returns its <stream:features/>. */
  async openStream(to = 'localhost'): Promise<XmlElement> {
    this.open(to);
    await this.next();
    return this.next();
  }

  /** The next frame not yet read, waiting up to `ms` for it. */
  async next(ms = 3000): Promise<XmlElement> {
    await eventually(() => this.#read < this.frames.length || this.closed, { timeout: ms, wake: this.#wake, message: 'a frame' });
    if (this.#read >= this.frames.length) throw new Error(`connection closed (${this.closed!.code}) while waiting for a frame`);
    return this.frames[this.#read++]!;
  }

  /** Reads frames until one matches, returning it (frames skipped on the way are dropped). */
  async until(pred: (el: XmlElement) => boolean, ms = 3000): Promise<XmlElement> {
    const deadline = Date.now() + ms;
    for (;;) {
      const el = await this.next(Math.max(1, deadline - Date.now()));
      if (pred(el)) return el;
    }
  }

  /** Waits for the WebSocket to close. */
  async waitClosed(ms = 3000): Promise<{ code: number; reason: string }> {
    return eventually(() => this.closed, { timeout: ms, wake: this.#wake, message: 'close' });
  }

  /**
   * Opens the stream, authenticates with PLAIN (needs ALLOW_INSECURE_PLAIN)
   * and restarts it (RFC 6120 §6.4.6); returns the features after the restart.
   */
  async authenticate(user: string, password: string, to = 'localhost'): Promise<XmlElement> {
    await this.openStream(to);
    const b64 = Buffer.from(`\0${user}\0${password}`).toString('base64');
    this.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${b64}</auth>`);
    const res = await this.next();
    if (res.local !== 'success') throw new Error(`auth failed: ${res.toString()}`);
    return this.openStream(to);
  }

  /** authenticate(), then binds `resource` (or one the server picks); returns the full JID. */
  async login(user: string, password: string, resource?: string, to = 'localhost'): Promise<string> {
    await this.authenticate(user, password, to);
    const r = resource ? `<resource>${resource}</resource>` : '';
    this.send(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='${NS.BIND}'>${r}</bind></iq>`);
    const bound = await this.next();
    const jid = bound.getChild('bind', NS.BIND)?.getChildText('jid');
    if (!jid) throw new Error(`bind failed: ${bound.toString()}`);
    return jid;
  }

  close(): void { this.ws.close(); }
}

/** The condition element name of a <stream:error/>. */
export function streamErrorCondition(el: XmlElement): string | undefined {
  if (el.local !== 'error' || el.ns !== NS.STREAM) return undefined;
  return el.getChildren().find((c) => c.ns === NS.STREAMS && c.local !== 'text')?.local;
}

/** The condition element name of a stanza <error/>. */
export function stanzaErrorCondition(el: XmlElement): string | undefined {
  return el.getChild('error')?.getChildren().find((c) => c.ns === NS.STANZAS && c.local !== 'text')?.local;
}

/**
 * `user` (password `<user>-pw`) logged in on `url` as `resource`, with XEP-0198 enabled when `sm`, and
 * available: its own presence seen back (RFC 6121 §4.2.2), so the server has processed it. Closed at teardown.
 */
export async function availableWs(t: { teardown(fn: () => unknown): void }, url: string, user: string, resource: string, sm = false): Promise<RawWsClient> {
  const c = await loggedInWs(t, url, user, resource);
  if (sm) {
    c.send(`<enable xmlns='${NS.SM}'/>`);
    await c.until((el) => el.is('enabled', NS.SM));
  }
  c.send(`<presence xmlns='jabber:client'/>`);
  await c.until((el) => el.local === 'presence' && el.attr('from') === `${user}@localhost/${resource}`);
  return c;
}

/** `user` (password `<user>-pw` unless given) logged in on `url` as `resource`. Closed at teardown. */
export async function loggedInWs(t: { teardown(fn: () => unknown): void }, url: string, user: string, resource: string, password = `${user}-pw`): Promise<RawWsClient> {
  const c = await RawWsClient.connect(url);
  t.teardown(() => c.close());
  await c.login(user, password, resource);
  return c;
}

/** Sends an IQ of `type` with `inner` (to `to`, if given) and reads until its reply. */
export async function wsIq(c: RawWsClient, id: string, type: 'get' | 'set', inner: string, to?: string): Promise<XmlElement> {
  c.send(`<iq xmlns='jabber:client' type='${type}' id='${id}'${to ? ` to='${to}'` : ''}>${inner}</iq>`);
  return c.until((el) => el.local === 'iq' && el.attr('id') === id);
}
