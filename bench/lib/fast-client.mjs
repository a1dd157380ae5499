// SASL2 (XEP-0388) with Bind2 (XEP-0386) and FAST (XEP-0484) for the
// reconnect scenario: a first login with SCRAM-SHA-1 that asks for a FAST
// token and enables XEP-0198 inline, and the reconnect a reloaded page makes:
// <open/> and <authenticate mechanism='HT-SHA-256-NONE'> with the token and an
// inline <resume/>, sent in one flight without waiting for the features (the
// page knows the server from its last visit). Streams are marked TLS-protected
// through the trusted loopback proxy's X-Forwarded-Proto, as behind nginx.
import { createHmac, randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { attr, has, localOf, splitTop, textOf } from './xml.mjs';
import { ScramClient } from './scram.mjs';

const NS = {
  FRAMING: 'urn:ietf:params:xml:ns:xmpp-framing', SASL2: 'urn:xmpp:sasl:2', BIND2: 'urn:xmpp:bind:0',
  FAST: 'urn:xmpp:fast:0', SM: 'urn:xmpp:sm:3',
};
const USER_AGENT = randomUUID();

/** The first descendant element `local` of `el` (from its start tag on), or undefined. */
function descendant(el, local) {
  const m = new RegExp(`<(?:[\\w.-]+:)?${local}(?=[\\s/>])`).exec(el.slice(1));
  return m ? el.slice(m.index + 1) : undefined;
}

/** A WebSocket whose top-level elements are read in order, each wait bounded. */
async function connect(url, ms, onOpen) {
  const ws = new WebSocket(url, 'xmpp', { perMessageDeflate: false, handshakeTimeout: ms, headers: { 'x-forwarded-proto': 'https' } });
  const queue = [];
  let wake;
  let failure;
  ws.on('message', (data) => { queue.push(...splitTop(data.toString())); wake?.(); });
  ws.on('close', () => { failure ??= new Error('websocket closed'); wake?.(); });
  ws.on('error', (err) => { failure ??= err; wake?.(); });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  onOpen?.();
  return {
    ws,
    send: (s) => ws.send(s),
    /** The next element named one of `locals`; a failure or stream error throws. */
    async until(locals) {
      const deadline = Date.now() + ms;
      for (;;) {
        while (queue.length) {
          const el = queue.shift();
          const l = localOf(el);
          if (locals.includes(l)) return el;
          if (l === 'failure' || l === 'error' || l === 'close') throw new Error(`${l}: ${el.slice(0, 300)}`);
        }
        if (failure) throw failure;
        if (Date.now() > deadline) throw new Error(`no ${locals.join('/')} within ${ms} ms`);
        await new Promise((resolve) => { wake = resolve; setTimeout(resolve, 50); });
        wake = undefined;
      }
    },
  };
}

const open = (c) => c.send(`<open xmlns='${NS.FRAMING}' to='localhost' version='1.0'/>`);

/** Whether the server offers SASL2 with FAST's HT-SHA-256-NONE on a protected stream. */
export async function fastAvailable(url, ms) {
  const c = await connect(url, ms);
  try {
    open(c);
    const features = await c.until(['features']);
    const sasl2 = descendant(features, 'authentication');
    return sasl2 !== undefined && has(sasl2, 'fast') && sasl2.includes('HT-SHA-256-NONE');
  } finally {
    c.ws.terminate();
  }
}

/**
 * SASL2 login with SCRAM-SHA-1, Bind2 enabling resumable stream management,
 * and a FAST token request; the connection is then cut (a reload).
 */
export async function fastLogin(url, user, cache, ms) {
  const c = await connect(url, ms);
  try {
    open(c);
    await c.until(['features']);
    const sc = new ScramClient(user, cache);
    c.send(`<authenticate xmlns='${NS.SASL2}' mechanism='SCRAM-SHA-1'><initial-response>${sc.first()}</initial-response>`
      + `<user-agent id='${USER_AGENT}'><software>bench</software></user-agent>`
      + `<bind xmlns='${NS.BIND2}'><tag>bench</tag><enable xmlns='${NS.SM}' resume='true'/></bind>`
      + `<request-token xmlns='${NS.FAST}' mechanism='HT-SHA-256-NONE'/></authenticate>`);
    const challenge = await c.until(['challenge']);
    c.send(`<response xmlns='${NS.SASL2}'>${sc.final(textOf(challenge) ?? '')}</response>`);
    const success = await c.until(['success']);
    const token = attr(descendant(success, 'token') ?? '', 'token');
    const previd = attr(descendant(success, 'enabled') ?? '', 'id');
    if (!token || !previd) throw new Error(`no FAST token or no <enabled/> in ${success.slice(0, 500)}`);
    return { token, previd };
  } finally {
    c.ws.terminate();
  }
}

/**
 * The reconnect: <open/> and the FAST <authenticate/> with an inline
 * <resume/> in one flight; resolves when <success/> carries <resumed/>.
 */
export async function fastReconnect(url, user, token, previd, onOpen, ms) {
  const c = await connect(url, ms, onOpen);
  try {
    // XEP-0484 §4.1 (HT-SHA-256-NONE): authcid NUL HMAC-SHA-256(token, "Initiator"), no channel binding data.
    const proof = createHmac('sha256', token).update('Initiator').digest();
    const initial = Buffer.concat([Buffer.from(`${user}\0`), proof]).toString('base64');
    open(c);
    c.send(`<authenticate xmlns='${NS.SASL2}' mechanism='HT-SHA-256-NONE'><initial-response>${initial}</initial-response>`
      + `<user-agent id='${USER_AGENT}'/><resume xmlns='${NS.SM}' previd='${previd}' h='0'/><fast xmlns='${NS.FAST}'/></authenticate>`);
    const success = await c.until(['success']);
    if (!has(success, 'resumed')) throw new Error(`no inline <resumed/> in ${success.slice(0, 500)}`);
  } finally {
    c.ws.terminate();
  }
}

