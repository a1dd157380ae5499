/**
 * The Redis connection of a cluster node (node-redis, the client Redis
 * itself maintains: RESP3, Streams, scripts and pub/sub in one typed
 * package; see docs/ARCHITECTURE.md "Cluster"). Every key and channel a
 * node uses starts with `prefix`, which names the database: pub/sub is
 * server-wide in Redis, so nodes on two databases of one server never hear
 * each other.
 */
import { createClient, type RedisClientType } from '@redis/client';

export type Redis = RedisClientType<{}, {}, {}, 3>;

export interface RedisLog {
  warn(obj: object, msg: string): void;
}

/**
 * Connects to `url`; the returned client reconnects by itself, and reports
 * errors to `log` instead of throwing them. With `startTimeoutMs`, a first
 * connection not made in time rejects (naming REDIS_URL, not echoing it: it
 * may hold a password) instead of retrying for ever.
 */
/** The longest wait between two reconnection attempts: a live node is back this long after Redis is (node.ts). */
export const RECONNECT_MAX_MS = 2000;

export async function connectRedis(url: string, log: RedisLog, name: string, startTimeoutMs?: number): Promise<Redis> {
  const client: Redis = createClient({
    url,
    name,
    // Reconnect with a capped backoff; commands issued meanwhile wait in the offline queue.
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, RECONNECT_MAX_MS) },
  });
  client.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis connection error'));
  if (startTimeoutMs === undefined) {
    await client.connect();
    return client;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`REDIS_URL: cannot connect to Redis within ${startTimeoutMs} ms`)), startTimeoutMs);
  });
  try {
    await Promise.race([client.connect(), timeout]);
    return client;
  } catch (err) {
    if (client.isOpen) client.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** The connections made from each node's client (connectionOf), for closeConnections. */
const connections = new WeakMap<Redis, Set<Redis>>();

/**
 * A connection of its own (pub/sub, a blocking read), made from `redis`
 * and remembered with it: closeConnections(redis) ends it if its owner's
 * stop did not. Not connected yet.
 */
export function connectionOf(redis: Redis): Redis {
  const conn = redis.duplicate() as Redis;
  let set = connections.get(redis);
  if (!set) connections.set(redis, set = new Set());
  set.add(conn);
  return conn;
}

/**
 * Destroys every connection made from `redis`; returns how many were still
 * open. The last step of a node's close: a connection whose owner's stop hung or failed
 * would otherwise reconnect for ever once Redis is gone, and keep the
 * process from exiting.
 */
export function closeConnections(redis: Redis): number {
  const set = connections.get(redis);
  if (!set) return 0;
  let closed = 0;
  for (const conn of set) {
    if (conn.isOpen) closed++;
    // Whether open or not: one whose quit() waits for a Redis that is gone reads as closed and still reconnects.
    conn.destroy();
  }
  connections.delete(redis);
  return closed;
}

/** The key prefix for the database `url` selects: `xwg:<db>:`. */
export function keyPrefix(url: string): string {
  const db = Number(new URL(url).pathname.replace(/^\//, '') || '0');
  return `xwg:${Number.isInteger(db) ? db : 0}:`;
}

/**
 * How many sessions or entries a recovery (a dead node's, or a previous run's at start) handles at once
 * (util/batches.ts): their commands share a round trip. A start recovers before it listens, so 10,000
 * sessions one by one kept it closed for seconds.
 */
export const RECOVERY_BATCH = 64;

