// Raw XMPP clients for the load generator: XMPP over WebSocket (RFC 7395)
// and over BOSH (XEP-0124/0206), SCRAM-SHA-1 login, resource binding and
// XEP-0198 (enable/resume, answering every <r/> with <a h/> as real clients
// do). Every wait is bounded by a timeout.
import http from 'node:http';
import WebSocket from 'ws';
import { attr, has, localOf, splitTop, textOf } from './xml.mjs';
import { ScramClient } from './scram.mjs';

export const NS = {
  FRAMING: 'urn:ietf:params:xml:ns:xmpp-framing',
  SASL: 'urn:ietf:params:xml:ns:xmpp-sasl',
  BIND: 'urn:ietf:params:xml:ns:xmpp-bind',
  SM: 'urn:xmpp:sm:3',
  CLIENT: 'jabber:client',
  HTTPBIND: 'http://jabber.org/protocol/httpbind',
  XBOSH: 'urn:xmpp:xbosh',
};

const STANZAS = new Set(['message', 'presence', 'iq']);
export const DEFAULT_TIMEOUT = 30000;

export class XmppError extends Error {}

/** Throws on a top-level stream error, SASL/SM failure or <close/>. @param {string} el */
function check(el) {
  const l = localOf(el);
  // At the top level, <error/> can only be a stream error (stanza errors are inside stanzas).
  if (l === 'error' || l === 'failure' || l === 'failed') throw new XmppError(`${l}: ${el.slice(0, 300)}`);
  if (l === 'close') throw new XmppError('server closed the stream');
}

/**
 * Sequential element reception for the login phase, event-driven
 * reception afterwards (`onStanza`). Counts stanzas for XEP-0198.
 */
class Inbox {
  /** @type {string[]} */ queue = [];
  /** @type {((el: string) => void) | undefined} */ waiter = undefined;
  /** @type {((err: Error) => void) | undefined} */ failer = undefined;
  /** @type {Error | undefined} */ failure = undefined;

  /** @param {string} el */
  push(el) {
    if (this.waiter) { const w = this.waiter; this.waiter = this.failer = undefined; w(el); } else this.queue.push(el);
  }

  /** @param {Error} err */
  fail(err) {
    this.failure ??= err;
    if (this.failer) { const f = this.failer; this.waiter = this.failer = undefined; f(err); }
  }

  /** @param {number} ms @returns {Promise<string>} */
  next(ms) {
    if (this.queue.length) return Promise.resolve(/** @type {string} */ (this.queue.shift()));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((res, rej) => {
      const t = setTimeout(() => { this.waiter = this.failer = undefined; rej(new XmppError(`no answer within ${ms} ms`)); }, ms);
      this.waiter = (el) => { clearTimeout(t); res(el); };
      this.failer = (err) => { clearTimeout(t); rej(err); };
    });
  }

  /** The next element whose local name is in `locals`, skipping others; stream errors and failures throw. */
  async until(locals, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
      const el = await this.next(Math.max(1, deadline - Date.now()));
      if (locals.includes(localOf(el))) return el;
      check(el);
    }
  }
}

/** XMPP over WebSocket (RFC 7395). */
export class WsXmpp {
  /** @param {string} url @param {{ localAddress?: string, domain?: string }} [opts] */
  constructor(url, opts = {}) {
    this.url = url;
    this.domain = opts.domain ?? 'localhost';
    this.localAddress = opts.localAddress;
    /** @type {WebSocket | undefined} */ this.ws = undefined;
    this.inbox = new Inbox();
    /** @type {((el: string) => void) | undefined} */ this.onStanza = undefined;
    this.smOn = false;
    this.hIn = 0;
    /** <r/> received (ack requests answered). */
    this.rIn = 0;
    this.smid = undefined;
    this.jid = undefined;
    this.closed = false;
    // Set by the load generator.
    /** @type {string | undefined} */ this.user = undefined;
    /** @type {any} */ this.peer = undefined;
    this.inflight = 0;
  }

  /** @param {number} [ms] */
  connect(ms = DEFAULT_TIMEOUT) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, 'xmpp', { localAddress: this.localAddress, perMessageDeflate: false, handshakeTimeout: ms });
      this.ws = ws;
      ws.on('open', () => resolve(undefined));
      ws.on('error', (err) => { reject(err); this.inbox.fail(err); });
      ws.on('close', () => { this.closed = true; this.inbox.fail(new XmppError('websocket closed')); });
      ws.on('message', (data, isBinary) => this.#frame(isBinary ? data : data.toString()));
    });
  }

  /** @param {any} frame */
  #frame(frame) {
    if (typeof frame !== 'string') return;
    // RFC 7395 §3.3.3 puts one element in each frame; splitting costs ~1 µs and tolerates more.
    for (const el of splitTop(frame)) this.#element(el);
  }

  /** @param {string} el */
  #element(el) {
    if (this.smOn) {
      const c = el.charCodeAt(1);
      // <r xmlns='urn:xmpp:sm:3'/>: answer with the count of stanzas handled.
      if (c === 114 /* r */ && (el.charCodeAt(2) === 32 || el.charCodeAt(2) === 47)) {
        this.rIn++;
        this.send(`<a xmlns='${NS.SM}' h='${this.hIn}'/>`);
        return;
      }
      if (c === 97 /* a */ && el.charCodeAt(2) === 32) return;
      if (STANZAS.has(localOf(el))) this.hIn = (this.hIn + 1) % 4294967296;
    }
    if (this.onStanza) this.onStanza(el);
    else this.inbox.push(el);
  }

  /** @param {string} s */
  send(s) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(s);
  }

  openStream() {
    this.send(`<open xmlns='${NS.FRAMING}' to='${this.domain}' version='1.0' xml:lang='en'/>`);
  }

  /** Opens the stream and returns <stream:features/>. @param {number} ms */
  async open(ms) {
    this.openStream();
    await this.inbox.until(['open'], ms);
    return this.inbox.until(['features'], ms);
  }

  /**
   * Connect, SCRAM-SHA-1, restart, then either bind (+ enable SM) or resume.
   * @param {string} user @param {import('./scram.mjs').KeyCache} cache
   * @param {{ resource?: string, sm?: 'resume' | 'ack' | false, resume?: { previd: string, h: number }, timeout?: number }} [o]
   */
  async login(user, cache, o = {}) {
    const ms = o.timeout ?? DEFAULT_TIMEOUT;
    await this.connect(ms);
    await saslScram(this.inbox, (s) => this.send(s), user, cache, ms, () => this.open(ms));
    const features = await this.open(ms);
    if (o.resume) {
      this.send(`<resume xmlns='${NS.SM}' previd='${o.resume.previd}' h='${o.resume.h}'/>`);
      this.smOn = true; // stanzas re-sent after <resumed/> count
      const el = await this.inbox.until(['resumed'], ms);
      return el;
    }
    if (!has(features, 'bind')) throw new XmppError('no bind feature');
    this.jid = await bindResource(this.inbox, (s) => this.send(s), o.resource, ms);
    if (o.sm) {
      if (!has(features, 'sm')) throw new XmppError('no stream management feature');
      this.send(o.sm === 'resume' ? `<enable xmlns='${NS.SM}' resume='true'/>` : `<enable xmlns='${NS.SM}'/>`);
      const enabled = await this.inbox.until(['enabled'], ms);
      this.smid = attr(enabled, 'id');
      this.smOn = true;
    }
    return this.jid;
  }

  /** Sends <close/> and ends the socket. */
  close() {
    if (!this.ws) return;
    this.send(`<close xmlns='${NS.FRAMING}'/>`);
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 200).unref();
  }

  /** Cuts the connection without <close/> (a reloaded page, a lost network). */
  cut() {
    this.closed = true;
    this.ws?.terminate();
  }
}

/** SASL SCRAM-SHA-1 over any element transport. */
async function saslScram(inbox, send, user, cache, ms, open) {
  const features = await open();
  if (!features.includes('SCRAM-SHA-1')) throw new XmppError(`SCRAM-SHA-1 not offered: ${features.slice(0, 300)}`);
  const sc = new ScramClient(user, cache);
  send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-1'>${sc.first()}</auth>`);
  const challenge = await inbox.until(['challenge'], ms);
  send(`<response xmlns='${NS.SASL}'>${sc.final(textOf(challenge) ?? '')}</response>`);
  const el = await inbox.until(['success', 'challenge'], ms);
  if (localOf(el) === 'challenge') {
    // Servers that send the server-final message as a challenge (RFC 6120 §6.3.10 allows both).
    sc.verify((textOf(el) ?? '').trim());
    send(`<response xmlns='${NS.SASL}'/>`);
    await inbox.until(['success'], ms);
  } else {
    sc.verify((textOf(el) ?? '').trim());
  }
}

/** Sends the SASL first step and returns the salt (for preparing the key cache). */
export async function probeSalt(url, user, opts = {}) {
  const c = new WsXmpp(url, opts);
  const ms = opts.timeout ?? DEFAULT_TIMEOUT;
  try {
    await c.connect(ms);
    await c.open(ms);
    const sc = new ScramClient(user, /** @type {any} */ (undefined));
    c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-1'>${sc.first()}</auth>`);
    const ch = await c.inbox.until(['challenge'], ms);
    const a = Buffer.from((textOf(ch) ?? '').trim(), 'base64').toString('utf8');
    const m = /(?:^|,)s=([^,]+),i=(\d+)/.exec(a);
    if (!m) throw new XmppError(`no salt in ${a}`);
    return { salt: m[1], iterations: Number(m[2]) };
  } finally {
    c.close();
  }
}

async function bindResource(inbox, send, resource, ms) {
  send(`<iq xmlns='${NS.CLIENT}' type='set' id='bind1'><bind xmlns='${NS.BIND}'>${resource ? `<resource>${resource}</resource>` : ''}</bind></iq>`);
  for (;;) {
    const el = await inbox.until(['iq'], ms);
    if (attr(el, 'id') !== 'bind1') continue;
    if (attr(el, 'type') !== 'result') throw new XmppError(`bind failed: ${el.slice(0, 300)}`);
    const jid = textOf(el, 'jid');
    if (!jid) throw new XmppError(`no jid in bind result: ${el.slice(0, 300)}`);
    return jid;
  }
}

/**
 * XMPP over BOSH (XEP-0124/0206) with hold=1: at most two requests open,
 * one of them held by the server. After login, `start()` keeps a poll
 * outstanding and sends queued stanzas as soon as a request slot is free.
 */
export class BoshXmpp {
  /** @param {string} url @param {{ localAddress?: string, domain?: string }} [opts] */
  constructor(url, opts = {}) {
    this.url = new URL(url);
    this.domain = opts.domain ?? 'localhost';
    this.localAddress = opts.localAddress;
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    this.rid = 1_000_000 + Math.floor(Math.random() * 1_000_000_000);
    this.sid = undefined;
    this.requests = 2;
    this.inbox = new Inbox();
    /** @type {((el: string) => void) | undefined} */ this.onStanza = undefined;
    this.outstanding = 0;
    /** @type {string[]} */ this.out = [];
    this.running = false;
    this.jid = undefined;
    this.errors = 0;
    this.status = 0;
    /** @type {Promise<void> | undefined} */ this.pendingSend = undefined;
    // Set by the load generator.
    /** @type {string | undefined} */ this.user = undefined;
    /** @type {any} */ this.peer = undefined;
    this.inflight = 0;
  }

  /** @param {string} body @param {number} ms @returns {Promise<string>} */
  post(body, ms) {
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: this.url.hostname, port: this.url.port, path: this.url.pathname, method: 'POST', agent: this.agent,
        localAddress: this.localAddress,
        headers: { 'content-type': 'text/xml; charset=utf-8', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        this.status = res.statusCode ?? 0;
        /** @type {Buffer[]} */
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new XmppError(`BOSH HTTP ${res.statusCode}`));
          resolve(Buffer.concat(chunks).toString('utf8'));
        });
      });
      req.setTimeout(ms, () => req.destroy(new XmppError(`BOSH request unanswered within ${ms} ms`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Children of a response <body/>; throws on type='terminate'. @param {string} text */
  #payloads(text) {
    const start = text.indexOf('<body');
    if (start < 0) throw new XmppError(`not a BOSH body: ${text.slice(0, 200)}`);
    const body = text.slice(start);
    if (attr(body, 'type') === 'terminate') throw new XmppError(`BOSH terminate: ${attr(body, 'condition') ?? ''} ${text.slice(0, 300)}`);
    const open = body.indexOf('>');
    if (body.charCodeAt(open - 1) === 47) return { body, els: [] };
    const close = body.lastIndexOf('</');
    return { body, els: splitTop(body.slice(open + 1, close)) };
  }

  /** One request carrying `payload`; its answer's elements go to the inbox (or handler). */
  async request(payload = '', extra = '', ms = DEFAULT_TIMEOUT) {
    const text = await this.post(`<body xmlns='${NS.HTTPBIND}' rid='${this.rid++}' sid='${this.sid}'${extra}>${payload}</body>`, ms);
    for (const el of this.#payloads(text).els) this.#deliver(el);
  }

  /** @param {string} el */
  #deliver(el) {
    if (this.onStanza) this.onStanza(el);
    else this.inbox.push(el);
  }

  /** Waits for an element by local name, polling while nothing is queued. */
  async until(locals, ms) {
    const deadline = Date.now() + ms;
    for (;;) {
      while (this.inbox.queue.length) {
        const el = /** @type {string} */ (this.inbox.queue.shift());
        if (locals.includes(localOf(el))) return el;
        check(el);
      }
      if (Date.now() > deadline) throw new XmppError(`BOSH: no ${locals.join('/')} within ${ms} ms`);
      await this.request('', '', Math.max(1000, deadline - Date.now()));
    }
  }

  /** XEP-0206 §3: session creation; returns false when the endpoint answers 404. */
  async create(ms = DEFAULT_TIMEOUT) {
    let text;
    try {
      text = await this.post(`<body xmlns='${NS.HTTPBIND}' xmlns:xmpp='${NS.XBOSH}' content='text/xml; charset=utf-8' hold='1' rid='${this.rid++}' to='${this.domain}' ver='1.6' wait='60' xml:lang='en' xmpp:version='1.0'/>`, ms);
    } catch (err) {
      if (this.status === 404) return false;
      throw err;
    }
    const { body, els } = this.#payloads(text);
    this.sid = attr(body, 'sid');
    if (!this.sid) throw new XmppError(`no sid: ${text.slice(0, 300)}`);
    this.requests = Number(attr(body, 'requests') ?? '2') || 2;
    for (const el of els) this.#deliver(el);
    return true;
  }

  /** Creation, SCRAM-SHA-1, restart and bind. Returns the JID, or undefined if the endpoint is 404. */
  async login(user, cache, o = {}) {
    const ms = o.timeout ?? DEFAULT_TIMEOUT;
    if (!(await this.create(ms))) return undefined;
    const send = (s) => { this.pendingSend = this.request(s, '', ms); };
    const inbox = {
      until: async (locals, t) => { if (this.pendingSend) { const p = this.pendingSend; this.pendingSend = undefined; await p; } return this.until(locals, t); },
    };
    await saslScram(inbox, send, user, cache, ms, () => this.until(['features'], ms));
    await this.request('', ` xmlns:xmpp='${NS.XBOSH}' xmpp:restart='true' to='${this.domain}' xml:lang='en'`, ms);
    const features = await this.until(['features'], ms);
    if (!has(features, 'bind')) throw new XmppError('no bind feature after BOSH restart');
    this.jid = await bindResource(inbox, send, o.resource, ms);
    return this.jid;
  }

  /** Starts the send/long-poll loop; stanzas go to `onStanza`. */
  start() {
    this.running = true;
    this.#pump();
  }

  /** Queues a stanza for the next request. @param {string} s */
  send(s) {
    this.out.push(s);
    this.#pump();
  }

  #pump() {
    if (!this.running) return;
    while (this.outstanding < this.requests) {
      if (this.out.length === 0 && this.outstanding > 0) return;
      const payload = this.out.join('');
      this.out.length = 0;
      this.outstanding++;
      this.request(payload, '', 90000).then(
        () => { this.outstanding--; this.#pump(); },
        () => { this.outstanding--; this.errors++; if (this.running && this.errors < 5) this.#pump(); },
      );
      if (payload === '') return;
    }
  }

  stop() {
    this.running = false;
    this.agent.destroy();
  }
}
