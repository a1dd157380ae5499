// The two ways a page reaches the server: WebSocket (RFC 7395) and BOSH
// (XEP-0124 with XEP-0206). Both hand every top-level element they receive
// to events.onElement and report the end with events.onClosed(condition);
// the client above them does not know which one it uses.
import { NS, el, parse, serialize } from './xml.js';

/**
 * RFC 7395: one element per text frame, the 'xmpp' subprotocol, <open/> and
 * <close/> from the framing namespace instead of a stream header.
 * connect() resolves on the server's <open/>, and rejects when the socket
 * fails before it (the caller then falls back to BOSH).
 */
export function createWebSocketTransport(url, domain, events) {
  let ws = null;
  let opened = null;
  let up = false;
  const open = () => ws.send(serialize(el('open', NS.FRAMING, { to: domain, version: '1.0' })));
  function onMessage(e) {
    const node = parse(String(e.data));
    if (!node) return events.onClosed('not-well-formed');
    if (node.localName === 'open' && node.namespaceURI === NS.FRAMING) { up = true; return opened?.resolve(); }
    if (node.localName === 'close' && node.namespaceURI === NS.FRAMING) return ws.close(1000);
    events.onElement(node);
  }
  return {
    kind: 'websocket',
    /** `early`: elements sent right behind <open/>, before the server's answer (FAST's one round trip). */
    connect(early = []) {
      return new Promise((resolve, reject) => {
        opened = { resolve };
        ws = new WebSocket(url, 'xmpp');
        ws.onopen = () => { open(); for (const node of early) ws.send(serialize(node)); };
        ws.onmessage = onMessage;
        ws.onerror = () => reject(new Error('WebSocket failed'));
        // Before the server's <open/> a close is a failed connect; after it, the end of the session's transport.
        ws.onclose = () => (up ? events.onClosed('remote-connection-failed') : reject(new Error('WebSocket closed')));
      }).finally(() => { opened = null; });
    },
    // RFC 7395 §3.4: after SASL success the client opens a new stream with <open/>.
    restart() { open(); },
    send(node) { if (ws?.readyState === WebSocket.OPEN) ws.send(serialize(node)); },
    /** RFC 7395 §3.6: a clean end is <close/>, answered by the server's. */
    end() { this.send(el('close', NS.FRAMING)); },
    /** Closes the socket without <close/>, so the server keeps the session for XEP-0198 resumption. */
    drop() { if (ws) { ws.onclose = null; ws.close(1000); } },
    state: () => null,
  };
}

/** How long to wait before repeating a BOSH request that failed on the network (XEP-0124 §14.3). */
const RETRY_MS = 1000;
const RETRIES = 3;

/**
 * XEP-0124/0206 over fetch(). Requests carry consecutive rids; at most
 * `requests` are open at once; responses are processed strictly in rid
 * order. state() is what survives a reload: the sid, the rid of the last
 * request whose response was processed, and the bodies of requests still
 * open, which attach() repeats with the same rids (XEP-0124 §14.3), so a
 * response lost in the reload is answered again from the server's buffer.
 */
export function createBoshTransport(url, domain, events, saved = null) {
  const s = saved ? structuredClone(saved) : { sid: null, processedRid: Math.floor(Math.random() * 2 ** 40), inflight: {}, requests: 2 };
  let nextRid = Math.max(s.processedRid, ...Object.keys(s.inflight).map(Number)) + 1;
  const answered = new Map();
  let outbox = [];
  let extra = null;
  let ended = false;
  let scheduled = false;
  let pollTimer = null;
  let lastPoll = 0;
  let pollRid = null;
  let firstAnswer = null;
  /** The condition the session ended with (XEP-0124 §17.2: host-unknown, policy-violation, …). */
  let endedWith = null;

  function post(rid, text, tries = 0) {
    fetch(url, { method: 'POST', body: text, headers: { 'Content-Type': 'text/xml; charset=utf-8' } })
      .then((res) => (res.ok ? res.text() : Promise.reject(new Error(`HTTP ${res.status}`))))
      .then((body) => { answered.set(rid, parse(body)); processInOrder(); }, (err) => {
        if (ended) return;
        if (tries < RETRIES && !/^HTTP 4/.test(err.message)) return setTimeout(() => post(rid, text, tries + 1), RETRY_MS);
        finish('remote-connection-failed');
      });
  }

  function request(attrs, children = []) {
    const rid = nextRid++;
    const body = el('body', NS.HTTPBIND, { rid, sid: s.sid ?? undefined, ...attrs }, children);
    const text = serialize(body);
    s.inflight[rid] = text;
    events.persist();
    post(rid, text);
  }

  function processInOrder() {
    while (!ended && answered.has(s.processedRid + 1)) {
      const rid = s.processedRid + 1;
      const body = answered.get(rid);
      answered.delete(rid);
      delete s.inflight[rid];
      s.processedRid = rid;
      // §12 counts the polling interval between requests as the server sees them; a poll the network held up
      // reaches it late, so the interval starts when its answer is here, not when it left.
      if (rid === pollRid) lastPoll = Date.now();
      if (!body || body.localName !== 'body') { finish('bad-request'); break; }
      if (!s.sid) {
        const attr = (name, fallback) => (body.hasAttribute(name) ? Number(body.getAttribute(name)) : fallback);
        Object.assign(s, { sid: body.getAttribute('sid'), requests: attr('requests', 2), hold: attr('hold', 1), polling: attr('polling', 5) });
      }
      firstAnswer?.(body.getAttribute('type') !== 'terminate');
      for (const node of [...body.children]) events.onElement(node);
      if (body.getAttribute('type') === 'terminate') finish(body.getAttribute('condition') ?? 'remote-connection-failed');
      events.persist();
    }
    schedule();
  }

  function finish(condition) {
    if (ended) return;
    ended = true;
    endedWith = condition;
    firstAnswer?.(false);
    events.onClosed(condition);
  }

  // One request always waits at the server for what it has to send us;
  // stanzas we send go in a new request while fewer than `requests` are open.
  function pump() {
    scheduled = false;
    if (ended || !s.sid) return;
    const open = Object.keys(s.inflight).length;
    if (open >= s.requests || (open > 0 && outbox.length === 0 && !extra)) return;
    const empty = outbox.length === 0 && !extra;
    // XEP-0124 §12: in a polling session (hold 0) empty requests go no faster than every 'polling' seconds.
    const early = s.hold === 0 && empty ? lastPoll + s.polling * 1000 - Date.now() : 0;
    if (early > 0) {
      pollTimer ??= setTimeout(() => { pollTimer = null; pump(); }, early);
      return;
    }
    if (empty) { lastPoll = Date.now(); pollRid = nextRid; }
    const children = outbox;
    outbox = [];
    const attrs = extra ?? {};
    extra = null;
    request(attrs, children);
    schedule();
  }

  function schedule() {
    if (!scheduled) { scheduled = true; queueMicrotask(pump); }
  }

  /** Resolves with true on the first processed response, false when it is a terminate. */
  function whenAnswered() {
    return new Promise((resolve) => { firstAnswer = (ok) => { firstAnswer = null; resolve(ok); }; });
  }

  return {
    kind: 'bosh',
    // XEP-0206 §4: the session request; its response carries the stream features.
    connect() {
      const answered = whenAnswered();
      request({ to: domain, ver: '1.11', wait: 60, hold: 1, content: 'text/xml; charset=utf-8', 'xmpp:version': '1.0' });
      // A refusal says why in its terminate body's condition (finish() has read it by now).
      return answered.then((ok) => { if (!ok) throw new Error(endedWith ?? 'BOSH session refused'); });
    },
    /** Continues a saved session: repeats the open requests with their rids. */
    attach() {
      const answered = whenAnswered();
      for (const [rid, text] of Object.entries(s.inflight).sort((a, b) => a[0] - b[0])) post(Number(rid), text);
      schedule();
      return answered;
    },
    // XEP-0206 §5: after SASL success, xmpp:restart='true' opens the new stream.
    restart() { extra = { to: domain, 'xmpp:restart': 'true' }; schedule(); },
    send(node) { outbox.push(node); schedule(); },
    /** XEP-0124 §12: type='terminate' ends the session; its stanzas are delivered first. */
    end() { extra = { type: 'terminate' }; schedule(); },
    /** Stops requesting without terminating: the session stays for a reload or a switch to resume. */
    drop() { ended = true; },
    state: () => structuredClone(s),
  };
}
