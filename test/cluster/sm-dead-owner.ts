/**
 * A cluster node that owns one resumable session and then dies without a
 * word (the in-process stand-in for kill -9): it joins the cluster, writes
 * alice's session and its unacknowledged messages through the Redis SM
 * registry exactly as a gateway does, then its Redis connection goes, so
 * its lease runs out and it never writes again.
 */
import type { Test } from 'tap';
import { x } from '../../src/xml/index.js';
import { connectRedis, keyPrefix } from '../../src/cluster/redis.js';
import { joinCluster } from '../../src/cluster/node.js';
import { createRedisSmRegistry } from '../../src/cluster/sm-registry.js';
import { createMemoryStorage } from '../../src/storage/index.js';
import type { Session } from '../../src/xmpp/session.js';
import { pushed } from '../helpers/sm-journal.js';

export interface DeadOwner {
  readonly smid: string;
  /** Its Redis connection goes: no lease renewal, no write, no clean leave. */
  kill(): Promise<void>;
}

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

export async function startDeadOwner(t: Test, url: string, id: string, opts: { resource: string; max: number; ids: readonly string[]; handled?: number }): Promise<DeadOwner> {
  const redis = await connectRedis(url, quiet, `xwg-${id}`);
  t.teardown(() => { if (redis.isOpen) redis.destroy(); });
  const node = await joinCluster(redis, { id, prefix: keyPrefix(url), ttlMs: 300, log: quiet });
  const registry = createRedisSmRegistry({ node, stale: createMemoryStorage().smState, log: quiet, marginSeconds: 60, release: () => undefined, replaced: async () => undefined });
  const session = {
    host: 'localhost', username: 'alice', resource: opts.resource, anonymous: false,
    presence: undefined, priority: 0, interested: true, carbons: false,
  } as unknown as Session;
  const smid = `dead-${id}-${Math.random().toString(36).slice(2)}`;
  registry.register(smid, session);
  registry.journal.open(smid, session, opts.max);
  for (const msgId of opts.ids) {
    const stanza = x('message', { xmlns: 'jabber:client', from: 'bob@localhost/desk', to: `alice@localhost/${opts.resource}`, type: 'chat', id: msgId }, x('body', {}, msgId));
    const result = await pushed(registry.journal, smid, { stanza, at: Date.now() });
    if (result !== 'stored') throw new Error(`the dead owner's push was not stored: ${result}`);
  }
  // The stanzas the client had sent and the node handled (the server's h), stored as a gateway does.
  if (opts.handled !== undefined) registry.journal.received(smid, opts.handled);
  return {
    smid,
    async kill() {
      // What it wrote has been applied (replies come in order), then it is gone.
      await redis.ping();
      redis.destroy();
    },
  };
}
