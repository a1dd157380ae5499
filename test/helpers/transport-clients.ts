/**
 * One small client interface over both transports, for the transport
 * contract suite (test/integration/transport-contract.test.ts), after
 * graphql-ws: the same cases run over an adapter per transport. Each
 * adapter speaks its wire protocol (RFC 7395 frames, XEP-0124/0206 bodies)
 * and hands back parsed elements; stream errors come back as the RFC 6120
 * condition whichever way the transport carries them.
 */
import type { Test } from 'tap';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { RawBoshClient, payloads, type BoshResponse } from './bosh-client.js';
import { eventually } from './eventually.js';
import type { TestServer } from './server.js';
import { RawWsClient, streamErrorCondition } from './ws-client.js';
import { plain } from './scram-client.js';

export interface TransportClient {
  /** Opens the stream (to `to`); resolves with its <stream:features/>. */
  open(to?: string): Promise<XmlElement>;
  /** Sends XML text (one or more top-level elements) as the transport carries it. */
  send(xml: string): Promise<void>;
  /** The next element from the server not yet read, waiting up to `ms`. */
  next(ms?: number): Promise<XmlElement>;
  /** Reads elements until one matches (those before it are dropped). */
  until(pred: (el: XmlElement) => boolean, ms?: number): Promise<XmlElement>;
  /** SASL PLAIN, stream restart and bind; resolves with the full JID. */
  login(user: string, password: string, resource?: string): Promise<string>;
  /** SASL PLAIN and the stream restart only (as before <resume/>); resolves with the new features. */
  authenticate(user: string, password: string): Promise<XmlElement>;
  /** Ends the stream cleanly; resolves once the server has acknowledged the end. */
  close(): Promise<void>;
  /** Goes away without ending the stream, as a reloaded page does. */
  drop(): void;
  /** Waits for the server to end the stream with an error; resolves with its RFC 6120 condition. */
  streamError(): Promise<string>;
}

export interface TransportAdapter {
  readonly name: 'websocket' | 'bosh';
  connect(t: Test, server: TestServer): Promise<TransportClient>;
}

const auth = (user: string, password: string) => `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain(user, password)}</auth>`;

/** RFC 7395 over the raw WebSocket client. */
export const websocket: TransportAdapter = {
  name: 'websocket',
  async connect(t, server) {
    const c = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => c.ws.terminate());
    return {
      open: (to) => c.openStream(to),
      async send(xml) { c.send(xml); },
      next: (ms) => c.next(ms),
      until: (pred, ms) => c.until(pred, ms),
      login: (user, password, resource) => c.login(user, password, resource),
      authenticate: (user, password) => c.authenticate(user, password),
      async close() {
        c.send(`<close xmlns='${NS.FRAMING}'/>`);
        await c.until((el) => el.is('close', NS.FRAMING));
        const { code } = await c.waitClosed();
        if (code !== 1000) throw new Error(`the WebSocket closed with ${code}, not 1000`);
      },
      drop() { c.ws.terminate(); },
      async streamError() {
        // open() may have read it already (an error right after the header): look at every frame received.
        const isError = (el: XmlElement) => el.is('error', NS.STREAM);
        const isClose = (el: XmlElement) => el.is('close', NS.FRAMING);
        const err = c.frames.find(isError) ?? await c.until(isError);
        // RFC 7395 §3.6: the stream error is followed by <close/>.
        if (!c.frames.some(isClose)) await c.until(isClose);
        return streamErrorCondition(err) ?? '';
      },
    };
  },
};

/**
 * XEP-0124/0206 over the raw BOSH client: every response's payloads are
 * queued and read in order; next() polls while nothing is queued; a
 * terminate body ends the stream. Terminal conditions map to RFC 6120:
 * remote-stream-error carries the stream error inside (XEP-0206 §7), and a
 * body that is not well-formed is bad-request (XEP-0124 §17.2).
 */
export const bosh: TransportAdapter = {
  name: 'bosh',
  async connect(t, server) {
    const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
    t.teardown(() => c.destroy());
    const queue: XmlElement[] = [];
    let ended: BoshResponse | undefined;
    const take = (res: BoshResponse): BoshResponse => {
      if (res.body?.attr('type') === 'terminate') ended ??= res;
      else queue.push(...payloads(res.body));
      return res;
    };
    const next = async (ms = 5000): Promise<XmlElement> => {
      await eventually(async () => {
        if (queue.length === 0 && !ended) take(await c.send());
        return queue.length > 0 || ended;
      }, { timeout: ms, interval: 0, message: 'a BOSH payload' });
      if (queue.length === 0) throw new Error(`session terminated: ${ended!.text}`);
      return queue.shift()!;
    };
    const until = async (pred: (el: XmlElement) => boolean, ms = 5000): Promise<XmlElement> => {
      const deadline = Date.now() + ms;
      for (;;) {
        const el = await next(Math.max(1, deadline - Date.now()));
        if (pred(el)) return el;
      }
    };
    const featuresOf = (res: BoshResponse): XmlElement => {
      const features = take(res).body?.getChild('features', NS.STREAM);
      if (!features) throw new Error(`no stream features: ${res.text}`);
      queue.splice(queue.indexOf(features), 1);
      return features;
    };
    return {
      async open(to = 'localhost') { return featuresOf(await c.create({ to })); },
      async send(xml) {
        // The payloads go inside a <body/>: text, so that malformed input reaches the server as it is.
        take(await c.raw(`<body xmlns='${NS.HTTPBIND}' rid='${c.rid++}' sid='${c.sid}'>${xml}</body>`));
      },
      next,
      until,
      login: (user, password, resource) => c.login(user, password, resource),
      async authenticate(user, password) {
        await c.create();
        take(await c.raw(`<body xmlns='${NS.HTTPBIND}' rid='${c.rid++}' sid='${c.sid}'>${auth(user, password)}</body>`));
        await until((el) => el.is('success', NS.SASL));
        return featuresOf(await c.restart());
      },
      async close() {
        const res = await c.terminate();
        if (res.body?.attr('type') !== 'terminate') throw new Error(`terminate not acknowledged: ${res.text}`);
      },
      drop() { c.destroy(); },
      async streamError() {
        await eventually(async () => {
          if (!ended) take(await c.send());
          return ended;
        }, { interval: 0, message: 'the session to be terminated' });
        const condition = ended!.body!.attr('condition') ?? '';
        if (condition === 'remote-stream-error') return streamErrorCondition(ended!.body!.getChild('error', NS.STREAM)!) ?? '';
        return condition === 'bad-request' ? 'not-well-formed' : condition;
      },
    };
  },
};

export const TRANSPORTS: readonly TransportAdapter[] = [websocket, bosh];
