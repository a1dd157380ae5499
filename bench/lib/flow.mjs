// Flow-control scenarios (issue 10): what an attacker's traffic does to the
// server's memory, what a flood does to everyone else's latency, and what
// inbound shaping costs. Each run is bounded in count and in time.
import http from 'node:http';
import { BoshXmpp, NS, WsXmpp } from './client.mjs';
import { DOMAIN, rssKiB } from './servers.mjs';
import { attr } from './xml.mjs';
import { Histogram, now } from './stats.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** For the losing side of a race: does not keep the process alive. */
const expire = (ms, value) => new Promise((r) => setTimeout(r, ms, value).unref());
const MiB = 1024 * 1024;
/** The vCard both memory attacks ask for: 60 KB, under MAX_VCARD_SIZE's default of 64 KiB. */
const VCARD_BYTES = 60 * 1024;
/**
 * Inbound shaping as good as off: the largest rate and burst the schema allows (1 GiB); it has no
 * "off" value. "On" is the defaults (64 KiB/s per session, 256 KiB burst).
 */
export const SHAPING_OFF = { MAX_INBOUND_BYTES_PER_SECOND: String(1024 ** 3), MAX_INBOUND_BURST_BYTES: String(1024 ** 3) };

/** Samples the RSS of `pid` every `everyMs` until stop(), which returns the peak (KiB). */
function rssPeak(pid, everyMs = 50) {
  let peak = rssKiB(pid);
  const timer = setInterval(() => { peak = Math.max(peak, rssKiB(pid)); }, everyMs);
  return () => { clearInterval(timer); return Math.max(peak, rssKiB(pid)); };
}

/** A request for `owner`'s vCard; without `owner`, for the sender's own (77 bytes: 3,000 fit in MAX_STANZA_SIZE's 256 KiB). */
const vcardGet = (i, owner) => `<iq xmlns='${NS.CLIENT}' type='get' id='${i}'${owner ? ` to='${owner}@${DOMAIN}'` : ''}><vCard xmlns='vcard-temp'/></iq>`;

/** `user` stores a VCARD_BYTES vCard (XEP-0054), the payload both memory attacks ask for again and again. */
async function publishVcard(url, cache, user = 'u0') {
  const owner = new WsXmpp(url);
  await owner.login(user, cache, { sm: false });
  owner.send(`<iq xmlns='${NS.CLIENT}' type='set' id='vset'><vCard xmlns='vcard-temp'><FN>u0</FN><DESC>${'x'.repeat(VCARD_BYTES)}</DESC></vCard></iq>`);
  const res = await owner.inbox.until(['iq'], 10000);
  owner.close();
  if (attr(res, 'type') !== 'result') throw new Error(`vCard not stored: ${res.slice(0, 200)}`);
}

/** What a memory attack cost: peak RSS growth against what was sent and what the attack asks the server to send. */
function memoryFigures(rss0, peak, inputBytes, requests) {
  const growth = (peak - rss0) * 1024;
  const amplified = requests * VCARD_BYTES;
  return {
    requests, inputKiB: inputBytes / 1024, amplifiedMiB: amplified / MiB, rssBeforeKiB: rss0, rssPeakKiB: peak,
    peakRssGrowthMiB: growth / MiB, rssGrowthPerInputByte: growth / inputBytes, growthPctOfAmplified: (100 * growth) / amplified,
  };
}

/**
 * A WebSocket client that stops reading (its socket paused: the kernel
 * buffers fill, then the server's) and asks for the 60 KB vCard
 * `requests` times.
 */
export async function slowReader(srv, cache, p) {
  await publishVcard(srv.wsUrl, cache);
  const attacker = new WsXmpp(srv.wsUrl);
  await attacker.login('u1', cache, { sm: false });
  await sleep(500);
  const rss0 = rssKiB(srv.pid);
  attacker.ws._socket.pause();
  const stop = rssPeak(srv.pid);
  let input = 0;
  const deadline = now() + p.maxMs;
  for (let i = 0; i < p.requests && now() < deadline; i++) {
    const s = vcardGet(i, 'u0');
    attacker.send(s);
    input += Buffer.byteLength(s);
    if (i % 100 === 99) await sleep(1);
  }
  await sleep(p.settle);
  const peak = stop();
  attacker.cut();
  return memoryFigures(rss0, peak, input, p.requests);
}

/** POSTs `body` and counts the answer's bytes without keeping them (it may be the whole amplified payload). */
function postCounting(url, body, ms) {
  return new Promise((resolve) => {
    const u = new URL(url);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'text/xml; charset=utf-8' } }, (res) => {
      let bytes = 0;
      let head = '';
      res.on('data', (c) => { bytes += c.length; if (head.length < 200) head += c.toString('utf8', 0, 200 - head.length); });
      res.on('end', () => resolve({ status: res.statusCode, bytes, head }));
      res.on('error', () => resolve({ status: res.statusCode, bytes, head }));
    });
    req.setTimeout(ms, () => { req.destroy(); resolve({ status: 0, bytes: 0 }); });
    req.on('error', () => resolve({ status: 0, bytes: 0 }));
    req.end(body);
  });
}

/** One BOSH body carrying `requests` requests for the sender's own vCard; then no request fetches the answers. */
export async function boshAmplification(srv, cache, p) {
  await publishVcard(srv.wsUrl, cache, 'u1');
  const b = new BoshXmpp(srv.boshUrl);
  if (!(await b.login('u1', cache, {}))) return { notAvailable: true };
  await sleep(500);
  const rss0 = rssKiB(srv.pid);
  const payload = Array.from({ length: p.requests }, (_, i) => vcardGet(i)).join('');
  const body = `<body xmlns='${NS.HTTPBIND}' rid='${b.rid++}' sid='${b.sid}'>${payload}</body>`;
  // A body over the gateway's default MAX_STANZA_SIZE would be refused as a whole and measure nothing.
  if (Buffer.byteLength(body) > 256 * 1024) throw new Error(`the BOSH body is ${Buffer.byteLength(body)} bytes, over MAX_STANZA_SIZE`);
  const stop = rssPeak(srv.pid);
  const answer = postCounting(srv.boshUrl, body, p.maxMs);
  await sleep(p.settle);
  const peak = stop();
  const res = await Promise.race([answer, expire(1000, { status: 'pending', bytes: 0 })]);
  b.stop();
  return { ...memoryFigures(rss0, peak, Buffer.byteLength(body), p.requests), httpStatus: res.status, answerKiB: res.bytes / 1024, answerHead: res.head };
}

/**
 * A bystander pings the server (one ping in flight, back to back) while
 * another session sends `messages` chat messages to an offline user as
 * fast as its socket takes them; the ping round trips during the flood.
 */
export async function bystanderPing(srv, cache, p) {
  const flooder = new WsXmpp(srv.wsUrl);
  await flooder.login('u3', cache, { sm: false });
  let bounced = 0;
  let drained;
  flooder.onStanza = (el) => { if (attr(el, 'id') === 'done') drained?.(); else if (attr(el, 'type') === 'error') bounced++; };
  const bystander = new WsXmpp(srv.wsUrl);
  await bystander.login('u4', cache, { sm: false });
  let answered;
  bystander.onStanza = (el) => { if (attr(el, 'type') === 'result') answered?.(); };
  const hist = new Histogram();
  let flooding = true;
  const pinger = (async () => {
    for (let i = 0; flooding; i++) {
      const t0 = now();
      let timer;
      const got = new Promise((r) => { answered = () => r(true); timer = setTimeout(r, p.maxMs, false); });
      bystander.send(`<iq xmlns='${NS.CLIENT}' type='get' id='p${i}' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      if (await got) hist.add(now() - t0);
      clearTimeout(timer);
    }
  })();
  const t0 = now();
  const deadline = t0 + p.maxMs;
  let sent = 0;
  for (; sent < p.messages && now() < deadline; sent++) {
    flooder.send(`<message xmlns='${NS.CLIENT}' type='chat' to='u2@${DOMAIN}' id='f${sent}'><body>flood ${sent}</body></message>`);
    // As fast as the socket takes them, not faster: the client's own buffer stays small.
    while (flooder.ws.bufferedAmount > MiB && now() < deadline) await sleep(1);
  }
  // The server handles one session's stanzas in order: the answer to this comes after every message.
  const done = new Promise((r) => { drained = r; });
  flooder.send(`<iq xmlns='${NS.CLIENT}' type='get' id='done' to='${DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await Promise.race([done, expire(Math.max(1000, deadline - now()))]);
  const secs = (now() - t0) / 1000;
  flooding = false;
  await pinger;
  flooder.close();
  bystander.close();
  return { messages: sent, floodSecs: secs, floodMsgsPerSec: sent / secs, bounced, pings: hist.n, p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.max };
}
