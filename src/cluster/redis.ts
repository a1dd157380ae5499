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

/** Connects to `url`; the returned client reconnects by itself, and reports errors to `log` instead of throwing them. */
export async function connectRedis(url: string, log: RedisLog, name: string): Promise<Redis> {
  const client: Redis = createClient({
    url,
    name,
    // Reconnect with a capped backoff; commands issued meanwhile wait in the offline queue.
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
  });
  client.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis connection error'));
  await client.connect();
  return client;
}

/** The key prefix for the database `url` selects: `xwg:<db>:`. */
export function keyPrefix(url: string): string {
  const db = Number(new URL(url).pathname.replace(/^\//, '') || '0');
  return `xwg:${Number.isInteger(db) ? db : 0}:`;
}
