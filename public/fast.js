// SASL2 (XEP-0388) with Bind2 (XEP-0386) and FAST (XEP-0484) for the demo
// client. The first login (SCRAM, with the password typed) asks for a FAST
// token; the page then keeps the token only. A reload presents the token
// (HT-SHA-256-NONE) and resumes its XEP-0198 session inside <authenticate/>,
// sent together with the stream's <open/>: one round trip.
import { NS, el, child, childText } from './xml.js';
import { MECHANISMS, scramExchange, deriveKeys, toBase64, fromBase64 } from './scram.js';

export const SASL2_NS = Object.freeze({ SASL2: 'urn:xmpp:sasl:2', BIND2: 'urn:xmpp:bind:0', FAST: 'urn:xmpp:fast:0' });
export const FAST_MECHANISM = 'HT-SHA-256-NONE';
const TAG = 'demo';
const utf8 = new TextEncoder();
const names = (node) => [...(node?.children ?? [])].filter((c) => c.localName === 'mechanism').map((c) => c.textContent);

/** SASL2's offer in stream features: its mechanisms, and whether FAST's HT-SHA-256-NONE is among the inline features. */
export function sasl2Offer(features) {
  const auth = child(features, 'authentication', SASL2_NS.SASL2);
  if (!auth) return null;
  const fast = child(child(auth, 'inline', SASL2_NS.SASL2) ?? auth, 'fast', SASL2_NS.FAST);
  return { mechanisms: names(auth), fast: names(fast).includes(FAST_MECHANISM) };
}

function userAgent(id) {
  return el('user-agent', SASL2_NS.SASL2, { id }, [el('software', SASL2_NS.SASL2, {}, ['xmpp-web-gateway demo'])]);
}

/** XEP-0386: bind with the page's tag, and enable resumable stream management in the same round trip. */
function bind2() {
  return el('bind', SASL2_NS.BIND2, {}, [el('tag', SASL2_NS.BIND2, {}, [TAG]), el('enable', NS.SM, { resume: 'true' })]);
}

/** The first login's <authenticate/>: SCRAM's initial response, Bind2, and a request for a FAST token (XEP-0484 §3). */
function firstAuthenticate(mechanism, initialResponse, agentId) {
  return el('authenticate', SASL2_NS.SASL2, { mechanism }, [
    el('initial-response', SASL2_NS.SASL2, {}, [initialResponse]),
    userAgent(agentId),
    bind2(),
    el('request-token', SASL2_NS.FAST, { mechanism: FAST_MECHANISM }),
  ]);
}

async function hmacKey(token) {
  return crypto.subtle.importKey('raw', utf8.encode(token), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

/**
 * A reload's <authenticate/> with the token: the initial response is the
 * authcid, NUL, and HMAC-SHA-256(token, "Initiator") (XEP-0484 §4, no
 * channel binding); then an inline <resume/> when there is a session to
 * resume, and Bind2. verify() checks the server's HMAC(token, "Responder").
 */
async function fastAuthenticate(username, token, agentId, resume) {
  const key = await hmacKey(token);
  const proof = new Uint8Array(await crypto.subtle.sign('HMAC', key, utf8.encode('Initiator')));
  const initial = toBase64(new Uint8Array([...utf8.encode(`${username}\0`), ...proof]));
  const element = el('authenticate', SASL2_NS.SASL2, { mechanism: FAST_MECHANISM }, [
    el('initial-response', SASL2_NS.SASL2, {}, [initial]),
    userAgent(agentId),
    el('fast', SASL2_NS.FAST),
    // XEP-0484 §3.4: a fresh token each time; the one used now is retired once the new one is used.
    el('request-token', SASL2_NS.FAST, { mechanism: FAST_MECHANISM }),
    // XEP-0198 in SASL2: resume inline; if that fails, Bind2 makes a new session in the same round trip (XEP-0386 §3).
    ...(resume ? [el('resume', NS.SM, { previd: resume.previd, h: resume.h })] : []),
    bind2(),
  ]);
  return {
    element,
    async verify(additionalData) {
      const ok = additionalData !== null && await crypto.subtle.verify('HMAC', key, fromBase64(additionalData), utf8.encode('Responder'));
      if (!ok) throw new Error('not-authorized: the server did not prove it knows the token');
    },
  };
}

/** What a SASL2 <success/> carries: the JID, the inline <resumed/> or Bind2's <enabled/>, a new FAST token. */
function parseSuccess(node) {
  const token = child(node, 'token', SASL2_NS.FAST);
  return {
    jid: childText(node, 'authorization-identifier', SASL2_NS.SASL2),
    additionalData: childText(node, 'additional-data', SASL2_NS.SASL2),
    resumed: child(node, 'resumed', NS.SM),
    enabled: child(child(node, 'bound', SASL2_NS.BIND2) ?? node, 'enabled', NS.SM),
    token: token ? { token: token.getAttribute('token'), expiry: token.getAttribute('expiry') } : null,
  };
}

const utf8Decoder = new TextDecoder();
const b64 = (text) => toBase64(utf8.encode(text));
const unb64 = (text) => utf8Decoder.decode(fromBase64(text ?? ''));
const isSasl2 = (n) => n.namespaceURI === SASL2_NS.SASL2 && /^(challenge|success|failure)$/.test(n.localName);
/** The server's SASL2 answer as an error; `refused`: the credentials were refused (not the network). */
function saslError(n) {
  const err = new Error(n.localName === 'failure' ? n.firstElementChild?.localName ?? 'not-authorized' : `unexpected ${n.localName}`);
  err.refused = true;
  return err;
}

/**
 * The two SASL2 logins of the demo client, on the client's element
 * plumbing: waitFor(pred) for the next matching element, send(node), and
 * openStream(early) for a new stream with elements sent behind <open/>.
 * Each resolves with parseSuccess()'s result.
 */
export function createSasl2({ waitFor, send, openStream }) {
  return {
    /** SCRAM with the password typed (on a stream already open), Bind2 enabling SM, and a FAST token requested. */
    async withPassword(offer, username, password, agentId) {
      const mechanism = Object.keys(MECHANISMS).find((m) => offer.mechanisms.includes(m));
      if (!mechanism) throw new Error('invalid-mechanism: the server offers no SCRAM mechanism in SASL2');
      const scram = scramExchange(mechanism, username, (salt, iterations) => deriveKeys(mechanism, password, salt, iterations));
      let reply = waitFor(isSasl2);
      send(firstAuthenticate(mechanism, b64(scram.first()), agentId));
      const challenge = await reply;
      if (challenge.localName !== 'challenge') throw saslError(challenge);
      reply = waitFor(isSasl2);
      send(el('response', SASL2_NS.SASL2, {}, [b64(await scram.final(unb64(challenge.textContent)))]));
      const success = await reply;
      if (success.localName !== 'success') throw saslError(success);
      const result = parseSuccess(success);
      scram.verify(unb64(result.additionalData)); // RFC 5802 §9: the server proves it knows ServerKey
      return result;
    },
    /** The token and an inline resume in one <authenticate/>, sent with <open/> on a new stream: one round trip. */
    async withToken(username, token, agentId, resume) {
      const auth = await fastAuthenticate(username, token, agentId, resume);
      const reply = waitFor(isSasl2);
      reply.catch(() => undefined);
      await openStream([auth.element]);
      const node = await reply;
      if (node.localName !== 'success') throw saslError(node);
      const result = parseSuccess(node);
      await auth.verify(result.additionalData);
      return result;
    },
  };
}
