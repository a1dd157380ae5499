import http from 'node:http';
import type { Test } from 'tap';
import { NS, parseXml, serialize, x, type XmlAttrInput, type XmlElement } from '../../src/xml/index.js';
import { eventually } from './eventually.js';
import type { TestServer } from './server.js';
import { RawWsClient } from './ws-client.js';

export interface BoshResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** The parsed <body/>; undefined if the response is not XML. */
  readonly body: XmlElement | undefined;
}

export interface PostOptions {
  readonly agent?: http.Agent;
  readonly headers?: Record<string, string>;
  readonly method?: string;
  /** Milliseconds before the request is abandoned with an error (bounded waits in tests). */
  readonly timeout?: number;
  readonly signal?: AbortSignal;
}

/** One HTTP request to the BOSH endpoint with Node's http client (keep-alive through `agent`). */
export function post(url: string, body: string | Buffer | undefined, opts: PostOptions = {}): Promise<BoshResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', ...opts.headers };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const req = http.request(url, { method: opts.method ?? 'POST', agent: opts.agent, headers, signal: opts.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: XmlElement | undefined;
        try { parsed = parseXml(text); } catch { parsed = undefined; }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
      });
    });
    req.setTimeout(opts.timeout ?? 10000, () => req.destroy(new Error(`no response within ${opts.timeout ?? 10000} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** The payload elements of a response <body/>. */
export function payloads(body: XmlElement | undefined): XmlElement[] {
  return body ? body.getChildren() : [];
}

/**
 * A raw XEP-0124/0206 client for protocol tests: it builds each <body/> with
 * the project's XML builder, tracks sid and rid, and hands back the parsed
 * response. Requests may be sent concurrently (each returns a promise).
 */
export class RawBoshClient {
  sid: string | undefined;
  /** The rid the next request will carry. */
  rid: number;
  readonly agent: http.Agent;
  /** Milliseconds before a request of this client is abandoned with an error, unless the request says (post's 10 s). */
  readonly timeout: number | undefined;

  constructor(readonly url: string, opts: { rid?: number; sid?: string; agent?: http.Agent; timeout?: number } = {}) {
    this.rid = opts.rid ?? 1000 + Math.floor(Math.random() * 1_000_000_000);
    this.sid = opts.sid;
    this.agent = opts.agent ?? new http.Agent({ keepAlive: true });
    this.timeout = opts.timeout;
  }

  /** A body with the next rid (and sid once known); the rid is consumed. */
  body(attrs: XmlAttrInput = {}, ...children: XmlElement[]): XmlElement {
    return x('body', { xmlns: NS.HTTPBIND, rid: this.rid++, sid: this.sid, ...attrs }, ...children);
  }

  /** Posts an element (or raw text) as is. */
  async raw(body: XmlElement | string | Buffer, opts: PostOptions = {}): Promise<BoshResponse> {
    const text = typeof body === 'string' || Buffer.isBuffer(body) ? body : serialize(body);
    return post(this.url, text, { agent: this.agent, timeout: this.timeout, ...opts });
  }

  /** Session creation (XEP-0124 §7.1, XEP-0206 §3); remembers the sid. */
  async create(attrs: XmlAttrInput = {}): Promise<BoshResponse> {
    const res = await this.raw(x('body', {
      xmlns: NS.HTTPBIND, 'xmlns:xmpp': NS.XBOSH, rid: this.rid++, to: 'localhost', wait: 60, hold: 1, ver: '1.11',
      'xml:lang': 'en', 'xmpp:version': '1.0', ...attrs,
    }));
    const sid = res.body?.attr('sid');
    if (sid !== undefined) this.sid = sid;
    return res;
  }

  /** A request with the next rid, carrying `children`. */
  async send(attrs: XmlAttrInput = {}, ...children: XmlElement[]): Promise<BoshResponse> {
    return this.raw(this.body(attrs, ...children));
  }

  /** XEP-0206 §5: the restart request after SASL success. */
  async restart(): Promise<BoshResponse> {
    return this.send({ 'xmlns:xmpp': NS.XBOSH, 'xmpp:restart': 'true', to: 'localhost', 'xml:lang': 'en' });
  }

  /**
   * Creates a session, authenticates with PLAIN (needs ALLOW_INSECURE_PLAIN),
   * restarts and binds. Returns the full JID. Uses `extra` for the creation request.
   */
  async login(user: string, password: string, resource?: string, extra: XmlAttrInput = {}): Promise<string> {
    const created = await this.create(extra);
    if (!created.body?.getChild('features', NS.STREAM)) throw new Error(`no features in creation response: ${created.text}`);
    const auth = x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from(`\0${user}\0${password}`).toString('base64'));
    const success = await this.send({}, auth);
    if (!success.body?.getChild('success', NS.SASL)) throw new Error(`auth failed: ${success.text}`);
    const restarted = await this.restart();
    if (!restarted.body?.getChild('features', NS.STREAM)?.getChild('bind', NS.BIND)) throw new Error(`no bind feature after restart: ${restarted.text}`);
    const bindIq = x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'bind1' }, x('bind', { xmlns: NS.BIND }, resource ? x('resource', {}, resource) : undefined));
    const bound = await this.send({}, bindIq);
    const jid = bound.body?.getChild('iq', NS.CLIENT)?.getChild('bind', NS.BIND)?.getChildText('jid');
    if (!jid) throw new Error(`bind failed: ${bound.text}`);
    return jid;
  }

  /**
   * Polls (empty requests, one at a time) until a payload matching `pred`
   * arrives, within `ms`; payloads that do not match are dropped.
   */
  async until(pred: (el: XmlElement) => boolean, ms = 5000): Promise<XmlElement> {
    let terminated: string | undefined;
    const hit = await eventually(async () => {
      const res = await this.send();
      if (res.body?.attr('type') === 'terminate') terminated = res.text;
      return terminated ?? payloads(res.body).find(pred);
    }, { timeout: ms, interval: 0, message: 'a payload' });
    if (typeof hit === 'string') throw new Error(`session terminated: ${hit}`);
    return hit;
  }

  /** Ends the session with type='terminate' (XEP-0124 §13), carrying `children`. */
  async terminate(...children: XmlElement[]): Promise<BoshResponse> {
    return this.send({ type: 'terminate' }, ...children);
  }

  destroy(): void {
    this.agent.destroy();
  }
}

/** The terminal condition of a response, or undefined if it is not a terminate body. */
export function terminalCondition(res: BoshResponse): string | undefined {
  if (res.body?.attr('type') !== 'terminate') return undefined;
  return res.body.attr('condition') ?? '';
}

/**
 * The server ends a BOSH session's stream (conflict, RFC 6120 §4.9.3.3): a WebSocket login of the same
 * account and resource replaces it. Resolves once the session is the WebSocket one; closed with `t`.
 */
export async function replaceOverWebSocket(t: Test, server: Pick<TestServer, 'app' | 'wsUrl'>, user: string, password: string, resource: string): Promise<RawWsClient> {
  const ws = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => ws.close());
  await ws.login(user, password, resource);
  await eventually(() => server.app.sessions.get('localhost', user, resource)?.transport === 'websocket', { message: 'the BOSH session replaced' });
  return ws;
}
