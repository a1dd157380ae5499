/**
 * Keeps a credential cache (../credential-cache.ts) true to the database:
 * one connection of its own (LISTEN holds a server session, so not a pooled
 * one) listens on ACCOUNT_CHANNEL, where the change log's trigger (migration
 * 8) notifies every deleted account and every change of credentials, by
 * any writer, when its transaction commits. Each notification drops that
 * account from the cache; a payload that cannot be read drops them all.
 *
 * The notification reaches this process some time after the commit (the
 * listening backend's signal, the network, this event loop): until then a
 * login here is still checked against the old credentials. The window is
 * bounded by the change log too (account-changes.ts reads it every 500 ms
 * through the cache, which forgets what it reads there and serves nothing
 * while those readings stall or fail, and ends a session verified against
 * replaced credentials); docs/ARCHITECTURE.md, `storage/`.
 *
 * Notifications sent while nobody listens are lost, so the cache serves
 * nothing from the moment the connection fails until LISTEN is in place
 * again (`suspend`/`resume`); meanwhile every login reads the store as
 * without a cache. The connection is opened again every `retryMs`. It has
 * TCP keepalive, so a peer that vanished without closing it is noticed.
 */
import pg from 'pg';
import type { CredentialCache } from '../credential-cache.js';
import { ACCOUNT_CHANNEL } from './migrations.js';

/**
 * Idle time before TCP keepalive probes a connection (this one, which carries nothing but notifications, and
 * the pools' too, index.ts): without it a peer gone with no FIN or RST (a partition, a frozen host) leaves it
 * open for good. The probes' interval and count are the system's (Linux: 75 s, 9); meanwhile the change log's
 * readings bound the cache.
 */
export const KEEPALIVE_IDLE_MS = 10_000;

/** Why the cache is suspended while this does not listen. */
const LISTENER = 'listener';

export interface CredentialListenerOptions {
  readonly url: string;
  readonly cache: CredentialCache;
  /** Pause before the connection is opened again after it failed. */
  readonly retryMs: number;
  /** Milliseconds an attempt to open it may take (DATABASE_CONNECT_TIMEOUT); 0: no limit. */
  readonly connectTimeoutMs: number;
  /** The connection failed (it is opened again); for the log. */
  readonly onError: (err: Error) => void;
  /** A notification dropped this account (undefined: every account, the payload could not be read); for the log. */
  readonly onDropped?: (account: readonly [host: string, username: string] | undefined) => void;
}

export interface CredentialListener {
  close(): Promise<void>;
}

/** [host, username] as the trigger builds it; undefined for anything else. */
function accountOf(payload: string | undefined): [string, string] | undefined {
  try {
    const v: unknown = JSON.parse(payload ?? '');
    return Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' ? [v[0], v[1]] : undefined;
  } catch {
    return undefined;
  }
}

/** Starts listening; resolves once the first attempt settled (listening, or failed and retrying). */
export async function listenForCredentialChanges(opts: CredentialListenerOptions): Promise<CredentialListener> {
  const { cache } = opts;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const lost = (from: pg.Client, err: Error): void => {
    if (closed || client !== from) return;
    client = undefined;
    cache.suspend(LISTENER);
    opts.onError(err);
    from.end().catch(() => undefined);
    timer = setTimeout(() => void connect(), opts.retryMs);
    timer.unref();
  };

  async function connect(): Promise<void> {
    timer = undefined;
    const c = new pg.Client({
      connectionString: opts.url, keepAlive: true, keepAliveInitialDelayMillis: KEEPALIVE_IDLE_MS, connectionTimeoutMillis: opts.connectTimeoutMs,
    });
    client = c;
    c.on('notification', ({ channel, payload }) => {
      if (channel !== ACCOUNT_CHANNEL) return;
      const account = accountOf(payload);
      if (account) cache.invalidate(account[0], account[1]);
      else { cache.suspend(LISTENER); cache.resume(LISTENER); }
      opts.onDropped?.(account);
    });
    c.on('error', (err) => lost(c, err));
    c.on('end', () => lost(c, new Error('the connection that listens for account changes ended')));
    try {
      await c.connect();
      await c.query(`LISTEN ${ACCOUNT_CHANNEL}`);
      if (client === c && !closed) cache.resume(LISTENER);
    } catch (err) {
      lost(c, err instanceof Error ? err : new Error(String(err)));
    }
  }

  cache.suspend(LISTENER);
  await connect();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      cache.suspend(LISTENER);
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
