/**
 * One browser page with strophe.js 5 and its native XEP-0198 support (opt in
 * with `enableStreamManagement`): it persists its SM state (smid, h, the
 * bound JID, unacked stanzas) through a pluggable storage backend,
 * sessionStorage in a browser; here a Map of strings plays sessionStorage,
 * the only thing that survives from one page load to the next.
 *
 * strophe.js 5's Node entry installs `ws` and @xmldom/xmldom as the browser
 * globals it needs.
 */
import type { Test } from 'tap';
import { Strophe, type SMState, type SMStorageBackend } from 'strophe.js';
import type { TestServer } from './server.js';
import { WAIT_MS, sleep } from './xmppjs.js';

Strophe.setLogLevel(Strophe.LogLevel.FATAL);
const { Status } = Strophe;

/** The DOM surface (xmldom) of the elements strophe.js hands out; the project's tsconfig has no DOM lib. */
export interface DomEl { getAttribute(name: string): string | null }

/** sessionStorage, as far as strophe.js uses it: strings under keys, outliving any one page. */
class TabStorage implements SMStorageBackend {
  constructor(private readonly store: Map<string, string>) {}
  load(key: string): SMState | null {
    const s = this.store.get(key);
    return s === undefined ? null : (JSON.parse(s) as SMState);
  }
  save(key: string, state: SMState): void { this.store.set(key, JSON.stringify(state)); }
  clear(key: string): void { this.store.delete(key); }
}

/** One page load: a strophe.js connection with SM on, its frames and the stanzas its handlers saw. */
export class Page {
  readonly conn: InstanceType<typeof Strophe.Connection>;
  readonly rawIn: string[] = [];
  readonly rawOut: string[] = [];
  readonly messages: DomEl[] = [];
  readonly presences: DomEl[] = [];
  readonly statuses: string[] = [];

  constructor(url: string, sessionStorage: Map<string, string>) {
    this.conn = new Strophe.Connection(url, {
      protocol: 'ws', enableStreamManagement: true, streamManagement: { storage: new TabStorage(sessionStorage) },
    });
    this.conn.rawInput = (data: string) => { this.rawIn.push(data); };
    this.conn.rawOutput = (data: string) => { this.rawOut.push(data); };
  }

  /** Logs in (or resumes); resolves on CONNECTED, rejects on any other terminal status. */
  async connect(jid: string, password: string): Promise<void> {
    const names: Record<number, string> = Object.fromEntries(Object.entries(Status).map(([k, v]) => [v, k]));
    const outcome = new Promise<void>((resolve, reject) => {
      this.conn.connect(jid, password, (status: number, condition: string | null) => {
        this.statuses.push(names[status] ?? String(status));
        if (status === Status.CONNECTED) {
          // As an application does: handlers are registered once connected.
          this.conn.addHandler((el: unknown) => { this.messages.push(el as DomEl); return true; }, null, 'message');
          this.conn.addHandler((el: unknown) => { this.presences.push(el as DomEl); return true; }, null, 'presence');
          resolve();
        } else if ([Status.AUTHFAIL, Status.CONNFAIL, Status.ERROR, Status.DISCONNECTED].includes(status)) {
          reject(new Error(`strophe.js ended in ${names[status]} (${condition ?? 'no condition'}); frames in: ${this.rawIn.join(' ')}`));
        }
      });
    });
    const timer = sleep(WAIT_MS).then(() => { throw new Error(`strophe.js login of ${jid} timed out; statuses: ${this.statuses.join(', ')}; frames in: ${this.rawIn.join(' ')}`); });
    await Promise.race([outcome, timer]);
  }

  sent(pattern: RegExp): string[] { return this.rawOut.filter((f) => pattern.test(f)); }

  /** The page goes away: the TCP connection dies, no <close/>, no WebSocket close handshake. */
  unload(): void {
    const ws = (this.conn._proto as unknown as { socket: { terminate(): void } | null }).socket;
    if (!ws) throw new Error('strophe.js has no live WebSocket');
    ws.terminate();
  }
}

export function ids(els: DomEl[]): string[] {
  return els.map((m) => m.getAttribute('id') ?? '(no id)');
}

export function page(tt: Test, server: TestServer, sessionStorage: Map<string, string>): Page {
  const p = new Page(server.wsUrl, sessionStorage);
  tt.teardown(() => { if (p.conn.connected) p.conn.disconnect(); });
  return p;
}

