/**
 * The moving parts of the fuzz test: WebSocket and BOSH lanes that send the
 * planned inputs, and a bystander pair chatting with XEP-0198 throughout.
 */
import http from 'node:http';
import WebSocket from 'ws';
import { NS, parseXml } from '../../src/xml/index.js';
import { RawWsClient } from './ws-client.js';
import { post } from './bosh-client.js';
import { BOSH_CORPUS, WS_CORPUS, WS_STANZAS, mutate, planBatch, type Step } from './fuzz-inputs.js';

const BATCH = 500;

/** The steps of one lane, drawn batch by batch from its own seed (so a lane replays identically). */
export function* lanePlan(seed: number, count: number): Generator<Step> {
  for (let i = 0; i * BATCH < count; i++) {
    for (const step of planBatch(seed, i, Math.min(BATCH, count - i * BATCH))) yield step;
  }
}

/** The last inputs a lane sent, printed when the run fails. */
export type Recent = string[];
function remember(recent: Recent, what: string): void {
  recent.push(what.length > 300 ? `${what.slice(0, 300)}…(${what.length})` : what);
  if (recent.length > 20) recent.shift();
}

/** A WebSocket that answers pings, for flow control: resolves false when the socket is gone or stalls. */
function roundTrip(ws: WebSocket, ms: number): Promise<boolean> {
  if (ws.readyState !== WebSocket.OPEN) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (ok: boolean) => { clearTimeout(timer); ws.off('pong', pong); ws.off('close', closed); resolve(ok); };
    const pong = () => finish(true);
    const closed = () => finish(false);
    const timer = setTimeout(closed, ms);
    ws.on('pong', pong);
    ws.on('close', closed);
    ws.ping();
  });
}

export interface LaneResult {
  sent: number;
  connections: number;
  stalls: number;
  /** The last inputs before each stall (an open socket that stopped answering pings), at most 5. */
  readonly stalled: string[][];
}

/** One WebSocket lane: connects (logged in on every other connection), sends its steps, reconnects when closed. */
export async function wsLane(url: string, lane: number, steps: Iterable<Step>, maxStanza: number, recent: Recent): Promise<LaneResult> {
  const result: LaneResult = { sent: 0, connections: 0, stalls: 0, stalled: [] };
  let ws: WebSocket | undefined;
  const smids: string[] = [];
  for (const step of steps) {
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      ws?.terminate();
      ws = await connectLane(url, lane, result.connections++, smids);
    }
    // A real smid of this lane's earlier (now hibernating) session, with a wrong or right h.
    // Three in four from the stanzas: most other first-level elements end the stream by design.
    const pool = (step.base >> 10) % 4 === 0 ? WS_CORPUS : WS_STANZAS;
    const base = pool[step.base % pool.length]!.replace('{SMID}', smids.at(-1) ?? 'none').replace('{H}', String(step.n % 4));
    const { data, binary } = mutate(base, step, maxStanza);
    remember(recent, `${binary ? 'binary ' : ''}${data.toString()}`);
    ws.send(data, { binary });
    result.sent++;
    if (result.sent % 8 === 0 && !(await roundTrip(ws, 5_000))) {
      if (ws.readyState === WebSocket.OPEN && result.stalls++ < 5) result.stalled.push([...recent.slice(-5)]);
      ws.terminate();
    }
  }
  ws?.terminate();
  return result;
}

async function connectLane(url: string, lane: number, n: number, smids: string[]): Promise<WebSocket> {
  // Each connection its own address (trusted loopback proxy), so login throttling does not end the fuzzing.
  const headers = { 'x-forwarded-for': `10.${lane}.${(n >> 8) & 255}.${n & 255}` };
  const c = await RawWsClient.connect(url, 'xmpp', headers);
  if (n % 4 !== 3) { // a quarter stay unauthenticated
    await c.login(`fuzz${lane % 4}`, 'fuzz', `lane${lane}-${n}`).catch(() => undefined);
    if (n % 4 === 0) c.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  } else {
    c.open();
    await c.next().then(() => c.next()).catch(() => undefined);
  }
  c.ws.removeAllListeners('message'); // responses are not kept: the run stays bounded in the test process too
  // RFC 7395 §3.6: once the server ends the stream it waits for our <close/> and answers no pings; start afresh.
  c.ws.on('message', (data) => {
    const text = data.toString();
    if (text.startsWith('<close') || text.includes(NS.STREAMS)) c.ws.terminate();
    const enabled = /^<enabled [^>]*\bid="([^"]+)"/.exec(text);
    if (enabled) smids.splice(0, smids.length, enabled[1]!);
  });
  return c.ws;
}

/** One BOSH lane: session creations, live and guessed sids, rids in and out of the window, mutated bodies. */
export async function boshLane(url: string, lane: number, steps: Iterable<Step>, maxStanza: number, recent: Recent): Promise<LaneResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const result: LaneResult = { sent: 0, connections: 0, stalls: 0, stalled: [] };
  let sid = '';
  let rid = 1000 + lane * 1_000_000;
  for (const step of steps) {
    const guessed = step.n % 3 === 0;
    rid += guessed ? step.pos : 1;
    const base = BOSH_CORPUS[step.base % BOSH_CORPUS.length]!
      .replace('SID', guessed || !sid ? step.pos.toString(36).padStart(24, 'x') : sid).replace('RID', String(rid));
    const { data } = mutate(base, step, maxStanza);
    remember(recent, `bosh ${data.toString()}`);
    const res = await post(url, data, { agent, timeout: 10_000, headers: { 'x-forwarded-for': `10.200.${lane}.${step.n % 200}` } })
      .catch(() => undefined);
    result.sent++;
    if (!res) { result.stalls++; continue; }
    const created = /^<body[^>]*\ssid=['"]([^'"]+)['"]/.exec(res.text);
    if (created && base.includes("to='localhost'")) { sid = created[1]!; result.connections++; }
  }
  agent.destroy();
  return result;
}

/**
 * Two raw XEP-0198 clients: `from` sends numbered messages to `to`, which
 * acks every <r/>; `received` holds the numbers in arrival order.
 */
export class Bystanders {
  readonly received: number[] = [];
  sent = 0;
  #timer: NodeJS.Timeout | undefined;

  private constructor(readonly from: RawWsClient, readonly to: RawWsClient, readonly toJid: string) {
    for (const c of [from, to]) answerAcks(c, c === to ? this.received : undefined);
  }

  static async start(url: string): Promise<Bystanders> {
    const pair: RawWsClient[] = [];
    const jids: string[] = [];
    for (const [user, ip] of [['alice', '198.51.100.1'], ['bob', '198.51.100.2']] as const) {
      const c = await RawWsClient.connect(url, 'xmpp', { 'x-forwarded-for': ip });
      jids.push(await c.login(user, `${user}-secret`, 'bystander'));
      c.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
      await c.until((el) => el.local === 'enabled');
      pair.push(c);
    }
    return new Bystanders(pair[0]!, pair[1]!, jids[1]!);
  }

  /** Sends one numbered message every `ms` until stop(). */
  chat(ms: number): void {
    this.#timer = setInterval(() => {
      this.sent++;
      this.from.send(`<message xmlns='jabber:client' to='${this.toJid}' type='chat' id='n${this.sent}'><body>n${this.sent}</body></message>`);
    }, ms);
  }

  stop(): void { clearInterval(this.#timer); }
}

/** XEP-0198 §4: answer every <r/> with the count of stanzas handled; collect numbered bodies. */
function answerAcks(c: RawWsClient, received: number[] | undefined): void {
  let h = 0;
  c.ws.removeAllListeners('message');
  c.ws.on('message', (data) => {
    const el = parseXml(data.toString(), undefined, NS.CLIENT);
    if (el.local === 'message' || el.local === 'presence' || el.local === 'iq') h++;
    if (el.local === 'r' && el.ns === NS.SM) c.send(`<a xmlns='${NS.SM}' h='${h}'/>`);
    const n = /^n(\d+)$/.exec(el.local === 'message' ? el.getChildText('body') ?? '' : '');
    if (received && n) received.push(Number(n[1]));
  });
}
