// A small XMPP client for the demo page: SASL SCRAM, bind, XEP-0198 stream
// management with resumption across page reloads, roster and presence
// plumbing, over WebSocket or BOSH (transports.js).
//
// What survives a reload lives in sessionStorage under one key: the JID,
// the SCRAM keys or, when the server offers FAST (XEP-0484), only a FAST
// token (never the password), the SM state (smid, h in, h out and the
// stanzas the server has not acknowledged) and, for BOSH, sid and rids.
// A duplicated tab gets a copy of all that; session-claim.js tells it apart
// from a reload, and it then starts a session of its own.
import { NS, el, parse, serialize, child } from './xml.js';
import { MECHANISMS, scramExchange, deriveKeys, toBase64, fromBase64 } from './scram.js';
import { createWebSocketTransport, createBoshTransport } from './transports.js';
import { sasl2Offer, createSasl2 } from './fast.js';
import { claimSession } from './session-claim.js';

export const STORAGE_KEY = 'xmpp-lite.session';
/** Unacknowledged stanzas we keep for resending (XEP-0198 §4); more are refused, so the page's memory stays bounded. */
const MAX_UNACKED = 100;
const WAIT_MS = 30_000;
const STANZAS = new Set(['message', 'presence', 'iq']);
const utf8 = { enc: new TextEncoder(), dec: new TextDecoder() };
const b64 = (text) => toBase64(utf8.enc.encode(text));
const unb64 = (text) => utf8.dec.decode(fromBase64(text ?? ''));

/**
 * createClient({ websocketUrl, boshUrl, storage, onStanza, onStatus, onClosed })
 * onStanza(node) gets every message, presence and roster push; onStatus(status)
 * every change of the status line; onClosed(condition) the end of a session.
 */
export function createClient(opts) {
  const storage = opts.storage ?? sessionStorage;
  let s = JSON.parse(storage.getItem(STORAGE_KEY) ?? 'null');
  let transport = null;
  let waiters = [];
  let mode = '';
  let online = false;
  let connecting = false;
  /** Gives up this tab's claim on the stored session (session-claim.js); null while it has none. */
  let release = null;

  function save() {
    if (!s) return;
    s.bosh = transport?.kind === 'bosh' ? transport.state() : null;
    storage.setItem(STORAGE_KEY, JSON.stringify(s));
  }

  function status() {
    opts.onStatus?.({
      jid: s?.jid ?? null, transport: transport?.kind ?? null, mode, online, connecting,
      hIn: s?.hIn ?? 0, hOut: s?.hOut ?? 0, unacked: s?.unacked.length ?? 0, sm: Boolean(s?.counting),
    });
  }

  function waitFor(pred) {
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      w.timer = setTimeout(() => drop(w, new Error('remote-server-timeout')), WAIT_MS);
      waiters.push(w);
    });
  }

  function drop(w, err) {
    clearTimeout(w.timer);
    waiters = waiters.filter((x) => x !== w);
    if (err) w.reject(err);
  }

  function onElement(node) {
    if (!s) return;
    const isStanza = STANZAS.has(node.localName) && node.namespaceURI === NS.CLIENT;
    // XEP-0198 §4: the server counts from the <enabled/> it sends, so we count every stanza after it.
    if (node.namespaceURI === NS.SM && node.localName === 'enabled') {
      Object.assign(s, { smid: node.getAttribute('id'), hIn: 0, hOut: 0, unacked: [], counting: true });
    }
    const w = waiters.find((x) => x.pred(node));
    if (w) { drop(w); w.resolve(node); } else if (node.namespaceURI === NS.SM) onSm(node);
    else if (isStanza) onStanza(node);
    else if (node.localName === 'error' && node.namespaceURI === NS.STREAM) s.lastError = node.firstElementChild?.localName;
    if (isStanza && s.counting) s.hIn += 1; // in the same turn as the page shows it, so a reload never counts it twice
    save();
    status();
  }

  function onSm(node) {
    // XEP-0198 §4: answer every <r/> with our h; an <a/> acknowledges what we sent.
    if (node.localName === 'r') transport.send(el('a', NS.SM, { h: s.hIn }));
    if (node.localName === 'a') ack(Number(node.getAttribute('h')));
  }

  function ack(h) {
    const acked = h - (s.hOut - s.unacked.length);
    if (Number.isInteger(h) && acked > 0 && h <= s.hOut) s.unacked.splice(0, acked);
  }

  function onStanza(node) {
    const type = node.getAttribute('type');
    if (node.localName === 'iq' && (type === 'get' || type === 'set')) return answerIq(node);
    opts.onStanza?.(node);
  }

  /** RFC 6121 §2.1.6 roster pushes and XEP-0199 pings are answered; other requests get service-unavailable (RFC 6120 §8.4). */
  function answerIq(iq) {
    const query = iq.firstElementChild;
    const own = !iq.getAttribute('from') || iq.getAttribute('from') === s.jid.split('/')[0];
    const known = (query?.namespaceURI === NS.ROSTER && own) || query?.namespaceURI === 'urn:xmpp:ping';
    if (query?.namespaceURI === NS.ROSTER && own) opts.onStanza?.(iq);
    const error = el('error', NS.CLIENT, { type: 'cancel' }, [el('service-unavailable', 'urn:ietf:params:xml:ns:xmpp-stanzas')]);
    sendStanza(el('iq', NS.CLIENT, { type: known ? 'result' : 'error', id: iq.getAttribute('id'), to: iq.getAttribute('from') }, known ? [] : [error]));
  }

  /** Sends a stanza; with SM it is kept until acknowledged and followed by an ack request. */
  function sendStanza(node) {
    if (s.counting) {
      if (s.unacked.length >= MAX_UNACKED) throw new Error('resource-constraint: too many unacknowledged stanzas');
      s.unacked.push(serialize(node));
      s.hOut += 1;
    }
    transport.send(node);
    if (s.counting) transport.send(el('r', NS.SM));
    save();
    status();
  }

  async function iq(type, payload, to) {
    const id = toBase64(crypto.getRandomValues(new Uint8Array(9)));
    const answer = waitFor((n) => n.localName === 'iq' && n.getAttribute('id') === id && /^(result|error)$/.test(n.getAttribute('type')));
    sendStanza(el('iq', NS.CLIENT, { type, id, to }, [payload]));
    const res = await answer;
    if (res.getAttribute('type') === 'error') throw new Error(child(res, 'error')?.firstElementChild?.localName ?? 'undefined-condition');
    return res;
  }

  function closed(condition) {
    online = false;
    // RFC 6120 §4.9: a stream error the server ended the stream with says why; the transport only says how it ended
    // (a WebSocket's close, BOSH's remote-stream-error wrapping that same error).
    const reason = s?.lastError ?? condition;
    if (s) delete s.lastError;
    for (const w of [...waiters]) drop(w, new Error(reason));
    if (!connecting) opts.onClosed?.(reason);
    status();
  }

  function useTransport(kind) {
    if (s) delete s.lastError; // a stream error of an earlier transport is not this one's
    const events = {
      onElement: (n) => transport === t && onElement(n),
      onClosed: (c) => transport === t && closed(c),
      persist: () => transport === t && save(),
    };
    const t = kind === 'bosh' ? createBoshTransport(opts.boshUrl, s.domain, events, s.bosh) : createWebSocketTransport(opts.websocketUrl, s.domain, events);
    transport = t;
    return t;
  }

  const isFeatures = (n) => n.localName === 'features' && n.namespaceURI === NS.STREAM;

  /** A new stream on the preferred transport; 'auto' falls back to BOSH when WebSocket is missing or fails. `early`: see transports.js. */
  async function openStream(early = []) {
    const kind = s.preference === 'auto' && typeof WebSocket !== 'function' ? 'bosh' : s.preference === 'bosh' ? 'bosh' : 'websocket';
    s.bosh = null;
    const features = waitFor(isFeatures);
    features.catch(() => undefined);
    try {
      await useTransport(kind).connect(early);
    } catch (err) {
      if (s.preference !== 'auto' || kind === 'bosh') throw err;
      await useTransport('bosh').connect();
    }
    // BOSH sends nothing before the session exists: what was meant to go early goes now.
    if (transport.kind === 'bosh') for (const node of early) transport.send(node);
    return features;
  }

  /** RFC 6120 §6 with SCRAM: derive keys from the password, or use the stored ones if the salt and count match. */
  async function authenticate(features, password) {
    const offered = [...(child(features, 'mechanisms', NS.SASL)?.children ?? [])].map((m) => m.textContent);
    const mechanism = password ? Object.keys(MECHANISMS).find((m) => offered.includes(m)) : offered.find((m) => m === s.keys?.mechanism);
    if (!mechanism) throw new Error('invalid-mechanism: the server offers no SCRAM mechanism we can use');
    const scram = scramExchange(mechanism, s.username, async (salt, iterations) => {
      if (password) return deriveKeys(mechanism, password, salt, iterations);
      if (s.keys.salt === toBase64(salt) && s.keys.iterations === iterations) return s.keys;
      throw new Error('credentials-expired: the stored keys are for another salt; log in again');
    });
    const sasl = (n) => n.namespaceURI === NS.SASL && /^(challenge|success|failure)$/.test(n.localName);
    let reply = waitFor(sasl);
    transport.send(el('auth', NS.SASL, { mechanism }, [b64(scram.first())]));
    const challenge = await reply;
    if (challenge.localName !== 'challenge') throw new Error(challenge.firstElementChild?.localName ?? 'not-authorized');
    reply = waitFor(sasl);
    transport.send(el('response', NS.SASL, {}, [b64(await scram.final(unb64(challenge.textContent)))]));
    const success = await reply;
    if (success.localName !== 'success') throw new Error(success.firstElementChild?.localName ?? 'not-authorized');
    s.keys = scram.verify(unb64(success.textContent)); // RFC 6120 §6.3.10: the server-final message rides on <success/>
    const restarted = waitFor(isFeatures);
    transport.restart();
    return restarted;
  }

  /** XEP-0198 §5: resume the old session; resolves false on <failed/>, keeping what it did not acknowledge. */
  async function resume() {
    const answer = waitFor((n) => n.namespaceURI === NS.SM && /^(resumed|failed)$/.test(n.localName));
    transport.send(el('resume', NS.SM, { previd: s.smid, h: s.hIn }));
    return afterResume(await answer);
  }

  /** <resumed/> or <failed/> (on its own, or inside SASL2's <success/>): what the server did not acknowledge is resent. */
  function afterResume(node) {
    if (node.hasAttribute('h')) ack(Number(node.getAttribute('h')));
    const pending = s.unacked;
    Object.assign(s, { unacked: [], hOut: s.hOut - pending.length, counting: node.localName === 'resumed' });
    if (node.localName === 'failed') s.smid = null;
    s.resend = pending;
    return node.localName === 'resumed';
  }

  /** RFC 6120 §7 bind, then XEP-0198 enable when offered. */
  async function bindAndEnable(features) {
    if (!child(features, 'bind', NS.BIND)) throw new Error('unsupported-feature: the server offers no resource binding');
    const bound = await iq('set', el('bind', NS.BIND));
    s.jid = child(child(bound, 'bind', NS.BIND), 'jid', NS.BIND).textContent;
    if (!child(features, 'sm', NS.SM)) return;
    const answer = waitFor((n) => n.namespaceURI === NS.SM && /^(enabled|failed)$/.test(n.localName));
    transport.send(el('enable', NS.SM, { resume: 'true' }));
    await answer;
  }

  /** Resends what the server had not acknowledged (XEP-0198 §5), after a resume or a fresh bind. */
  function resendPending() {
    const pending = s.resend ?? [];
    s.resend = [];
    for (const text of pending) sendStanza(parse(text));
  }

  /** Classic RFC 6120 login (SCRAM, restart, bind or resume), or SASL2 with a FAST token request when offered. */
  async function passwordOrKeysLogin(password) {
    let features = await openStream();
    const offer = sasl2Offer(features);
    if (password && offer?.fast) return sasl2Login(offer, password);
    features = await authenticate(features, password);
    const resumed = Boolean(s.smid && child(features, 'sm', NS.SM)) && (await resume());
    if (!resumed) await bindAndEnable(features);
    return resumed;
  }

  const sasl2 = createSasl2({ waitFor, send: (node) => transport.send(node), openStream });

  /** SASL2 with the password typed (a FAST token requested), or the token after a reload; then the session's state. */
  async function sasl2Login(offer, password) {
    return sasl2Done(await sasl2.withPassword(offer, s.username, password, s.agent));
  }

  async function tokenLogin() {
    try {
      return sasl2Done(await sasl2.withToken(s.username, s.fast.token, s.agent, s.smid ? { previd: s.smid, h: s.hIn } : null));
    } catch (err) {
      // A refused token is forgotten: the page has nothing else to log in with, so the user logs in again.
      if (err.refused) s.fast = null;
      throw err;
    }
  }

  /** SASL2 <success/>: the full JID, a new token, and the stream-management state resumed or enabled inline. */
  function sasl2Done(result) {
    s.jid = result.jid;
    if (result.token?.token) s.fast = result.token;
    s.keys = null; // with FAST the page keeps the token only, not even the SCRAM keys
    if (result.resumed) return afterResume(result.resumed);
    const pending = s.unacked;
    if (result.enabled) Object.assign(s, { smid: result.enabled.getAttribute('id'), hIn: 0, hOut: 0, unacked: [], counting: true });
    else Object.assign(s, { smid: null, unacked: [], counting: false });
    s.resend = pending;
    return false;
  }

  async function establish(password) {
    connecting = true;
    status();
    try {
      const resumed = !password && s.fast ? await tokenLogin() : await passwordOrKeysLogin(password);
      mode = resumed ? 'resumed' : 'new session';
      online = true;
      resendPending();
      return mode;
    } catch (err) {
      transport?.drop(); // a failed login leaves no stream open behind it
      throw err;
    } finally {
      connecting = false;
      save();
      status();
    }
  }

  /** Claims the session s.agent names for this tab; false when another live tab holds it. */
  async function claim() {
    release?.();
    release = await claimSession(s.agent);
    return release !== null;
  }

  /**
   * This tab is a duplicate of a live one: the stored session is that tab's.
   * With the SCRAM keys it logs in afresh (its own resource and smid; the
   * other tab resends its own unacknowledged stanzas). A FAST token cannot
   * be shared: it is bound to one user agent (XEP-0484 §4.1), and each tab's
   * rotation would retire the token the other one holds (§3.4), so the user
   * logs in again.
   */
  function leaveToOtherTab() {
    if (!s.keys) throw new Error('this session is open in another tab; log in to start a second one');
    Object.assign(s, {
      jid: null, smid: null, hIn: 0, hOut: 0, unacked: [], resend: [], counting: false, bosh: null, fast: null,
      agent: crypto.randomUUID(),
    });
  }

  /** XEP-0124 §14.3: continue the saved BOSH session with its next rid; false when the server no longer knows it. */
  async function attachBosh() {
    connecting = true;
    const ok = await useTransport('bosh').attach().finally(() => { connecting = false; });
    if (!ok) return false;
    mode = 'resumed';
    online = true;
    save();
    status();
    return true;
  }

  return {
    status,
    get jid() { return s?.jid ?? null; },
    get saved() { return Boolean(s?.keys || s?.fast); },
    async login({ jid, password, preference = 'auto' }) {
      const [username, domain] = jid.split('/')[0].split('@');
      if (!username || !domain) throw new Error('jid-malformed: enter user@domain');
      s = {
        username, domain, preference, jid: null, smid: null, hIn: 0, hOut: 0, unacked: [], counting: false, keys: null,
        fast: null, agent: crypto.randomUUID(), // XEP-0388 §4: one user agent id per tab, which a FAST token is bound to
      };
      await claim();
      return establish(password);
    },
    /** After a reload: the same BOSH session if it is still there, else SM resumption, else a fresh login with the stored keys. */
    async restore() {
      if (!s?.keys && !s?.fast) return null;
      // Once per page: after a lost connection (Reconnect) this tab holds its claim already.
      if (!release && !(await claim())) {
        leaveToOtherTab();
        await claim();
      }
      if (s.bosh?.sid && s.preference !== 'websocket' && (await attachBosh())) return mode;
      return establish(null);
    },
    /** Moves the session to the other transport: drop this one without closing, resume on the new one. */
    async switchTo(preference) {
      transport?.drop();
      // Offline until the other transport has resumed: the status must not go on saying 'resumed' from before.
      online = false;
      mode = '';
      s.preference = preference;
      return establish(null);
    },
    send: sendStanza,
    iq,
    logout() {
      if (online) { sendStanza(el('presence', NS.CLIENT, { type: 'unavailable' })); transport.end(); }
      // The transport ends on its own (the server's <close/> or terminate body); that end is the logout, not an error.
      transport = null;
      release?.();
      release = null;
      storage.removeItem(STORAGE_KEY);
      s = null;
      online = false;
      mode = '';
      status();
    },
  };
}
