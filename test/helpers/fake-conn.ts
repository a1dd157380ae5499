import type { Test } from 'tap';
import { loadConfig } from '../../src/config/index.js';
import { createMemoryStorage, deriveStoredCredentials, type Storage } from '../../src/storage/index.js';
import { pino } from 'pino';
import { createXmppServer, type Feature, type XmppServer, type XmppServerOptions } from '../../src/server.js';
import type { Log } from '../../src/xmpp/log.js';
import { NS, WRITTEN_LIMITS, parseXml, type XmlElement } from '../../src/xml/index.js';
import type { Conn, ConnEvents, StreamHeader } from '../../src/xmpp/conn.js';
import { streamErrorElement, type StreamError } from '../../src/xmpp/errors.js';
import type { Session } from '../../src/xmpp/session.js';
import { eventually } from './eventually.js';
import { PRE_SASL2 } from './pre-sasl2.js';

/**
 * A transport with no socket, for protocol tests of the core (layer 2 of
 * ARCHITECTURE.md): what the server writes is collected as elements; what
 * the test "sends" is parsed exactly as a WebSocket frame would be.
 */
export class FakeConn implements Conn {
  readonly transport = 'websocket' as const;
  readonly out: XmlElement[] = [];
  events: ConnEvents | undefined;
  closed = false;
  /** What the test says is still unwritten (flow control reads it). */
  bufferedBytes = 0;
  #read = 0;

  constructor(readonly secure = true, readonly ip = '192.0.2.1') {}

  open(header: StreamHeader): void { this.out.push(parseXml(`<open xmlns='${NS.FRAMING}' id='${header.id}' from='${header.from}'/>`)); }
  /** Written at once: `sent` runs now (Conn.send). */
  send(el: XmlElement, sent?: () => void): void {
    this.out.push(parseXml(el.toString(), WRITTEN_LIMITS, NS.CLIENT));
    sent?.();
  }
  close(error?: StreamError): void {
    if (error) this.send(streamErrorElement(error));
    this.closed = true;
  }
  /** Conn.drop: a network cut, nothing written; the session hears of it as a lost transport. */
  drop(): void {
    this.closed = true;
    if (this.events && !this.events.destroyed) this.events.transportLost('dropped');
  }
  attach(events: ConnEvents): void { this.events = events; }

  /** Every element written since the last call. */
  take(): XmlElement[] {
    const out = this.out.slice(this.#read);
    this.#read = this.out.length;
    return out;
  }

  /** Elements of the given local name written since the last take(). */
  takeStanzas(local?: string): XmlElement[] {
    return this.take().filter((el) => local === undefined || el.local === local);
  }
}

export interface FakeClient {
  readonly conn: FakeConn;
  readonly session: Session;
  /** Parses `xml` as a client frame and hands it to the session. */
  send(xml: string): void;
}

export interface FakeServer {
  /** The XMPP server without Fastify or sockets (createXmppServer). */
  readonly app: XmppServer;
  readonly storage: Storage;
  addUser(username: string, password?: string): Promise<void>;
  /** An authenticated, restarted stream with no resource bound yet (SASL PLAIN), e.g. to send <resume/>. */
  authenticate(username: string, password?: string): Promise<FakeClient>;
  /** A bound session for username/resource (SASL PLAIN over a "secure" fake conn). */
  login(username: string, resource: string, password?: string): Promise<FakeClient>;
  /** A bound SASL ANONYMOUS session with the resource the server assigns (needs SASL_ANONYMOUS_HOSTS=localhost). */
  loginAnonymous(): Promise<FakeClient>;
  close(): Promise<void>;
}

/** Lets queued promise callbacks (storage, SASL) run. */
export const settle = () => new Promise<void>((r) => setImmediate(r));

/** Lets the async store/deliver line run for `turns` event-loop turns (memory storage settles within a few). */
export async function settled(turns = 10): Promise<void> {
  for (let i = 0; i < turns; i++) await settle();
}

/** Enables resumable stream management (XEP-0198 §3) and returns the smid; what the client was sent so far is taken. */
export async function enableSm(c: FakeClient): Promise<string> {
  c.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
  await settled(2);
  const enabled = c.conn.take().find((el) => el.local === 'enabled');
  if (!enabled) throw new Error('SM not enabled');
  return enabled.attr('id')!;
}

/** Whether the server has answered SASL on `conn` (success or failure). */
export function saslAnswered(conn: FakeConn): boolean {
  return conn.out.some((el) => el.ns === NS.SASL && (el.local === 'success' || el.local === 'failure'));
}

/**
 * `logger`: pino options with an optional `stream` (e.g. a level and a stream that collects the lines); none by
 * default. `storage`: in memory unless given. `features`: more features or components, registered after the
 * built-in ones. `opts`: createXmppServer's other options (the logger is `logger`'s).
 */
export async function startFakeServer(
  env: Record<string, string> = {}, logger: { level: string; stream?: { write(line: string): void } } | false = false,
  storage: Storage = createMemoryStorage(), features: readonly Feature[] = [], opts: Omit<XmppServerOptions, 'log'> = {},
): Promise<FakeServer> {
  const config = loadConfig({ LOG_LEVEL: 'silent', SCRAM_ITERATIONS: '4096', ...PRE_SASL2, ...env });
  const log = (logger === false ? pino({ level: 'silent' }) : pino({ level: logger.level }, logger.stream ?? process.stdout)) as unknown as Log;
  const app = createXmppServer(config, storage, features, { ...opts, log });
  const connect = (): FakeClient => {
    const conn = new FakeConn();
    const session = app.core.connect(conn);
    conn.attach(session);
    return { conn, session, send: (xml) => conn.events!.element(parseXml(xml, undefined, NS.CLIENT)) };
  };
  const authenticate = async (username: string, password = 'pw'): Promise<FakeClient> => {
    const c = connect();
    c.session.streamOpened({ to: 'localhost', version: '1.0' });
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from(`\0${username}\0${password}`).toString('base64')}</auth>`);
    // PLAIN's PBKDF2 runs on the thread pool: wait for the SASL answer itself, not a number of ticks.
    await eventually(() => saslAnswered(c.conn), { interval: 1, message: 'the SASL answer' });
    if (c.session.type !== 'c2s') throw new Error(`login failed: ${c.conn.out.map(String).join('')}`);
    c.session.streamOpened({ to: 'localhost', version: '1.0' });
    return c;
  };
  return {
    app, storage,
    async addUser(username, password = 'pw') {
      await storage.users.create('localhost', username, await deriveStoredCredentials(password, 4096));
    },
    authenticate,
    async loginAnonymous() {
      const c = connect();
      c.session.streamOpened({ to: 'localhost', version: '1.0' });
      c.send(`<auth xmlns='${NS.SASL}' mechanism='ANONYMOUS'/>`);
      await eventually(() => saslAnswered(c.conn), { interval: 1, message: 'the SASL answer' });
      if (c.session.type !== 'c2s') throw new Error(`anonymous login failed: ${c.conn.out.map(String).join('')}`);
      c.session.streamOpened({ to: 'localhost', version: '1.0' });
      c.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='${NS.BIND}'/></iq>`);
      await eventually(() => c.session.full_jid !== undefined, { interval: 1, message: 'the bind result' });
      c.conn.take();
      return c;
    },
    async login(username, resource, password = 'pw') {
      const c = await authenticate(username, password);
      c.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='${NS.BIND}'><resource>${resource}</resource></bind></iq>`);
      // The bind result waits for what features load for the resource (its roster).
      await eventually(() => c.conn.out.some((el) => el.local === 'iq' && el.attr('id') === 'bind'), { interval: 1, message: 'the bind result' });
      if (c.session.full_jid === undefined) throw new Error(`bind failed: ${c.conn.out.map(String).join('')}`);
      c.conn.take();
      return c;
    },
    async close() {
      app.closeSessions();
      await app.drain();
      await storage.close();
    },
  };
}

/** A fake-transport server with `env`, the accounts `users` (password 'pw') and createXmppServer's `opts`, closed when `t` ends. */
export async function withFakeUsers(t: Test, users: readonly string[], env: Record<string, string> = {}, opts: Omit<XmppServerOptions, 'log'> = {}): Promise<FakeServer> {
  const server = await startFakeServer(env, false, undefined, [], opts);
  t.teardown(() => server.close());
  for (const u of users) await server.addUser(u);
  return server;
}
