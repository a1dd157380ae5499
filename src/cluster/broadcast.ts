/**
 * A Redis pub/sub channel every node publishes to and reads, for the
 * cluster modules that only tell the others what happened here
 * (account-sync.ts, login-sync.ts): a message is the module's fields and
 * the publishing node's id, and runs `received` on every other node.
 * Fire-and-forget by design (not the inbox's streams): a message lost while
 * a subscriber reconnects is not seen there, which each module says what
 * it costs.
 */
import type { ModuleContext } from '../xmpp/context.js';
import { connectionOf, type Redis } from './redis.js';
import type { ClusterModule, ClusterServices } from './module.js';

export interface Broadcast<M extends object> {
  /** The channel's name after the cluster's key prefix. */
  readonly channel: string;
  /** What it carries, for the log lines of a failed publish or subscriber ('an account change'). */
  readonly what: string;
  /** Registers the hooks whose runs are told to the other nodes, through `publish`. */
  publishing(ctx: ModuleContext, publish: (msg: M) => void): void;
  /** Another node's message, parsed JSON as it came: checked here before use. */
  received(ctx: ModuleContext, msg: Partial<M>): void;
}

export function createBroadcastModule<M extends object>({ node, log }: ClusterServices, b: Broadcast<M>): ClusterModule {
  const channel = `${node.prefix}${b.channel}`;
  let ctx: ModuleContext | undefined;
  let subscriber: Redis | undefined;

  function received(raw: string): void {
    let msg: Partial<M> & { node?: unknown };
    try {
      msg = JSON.parse(raw) as Partial<M> & { node?: unknown };
    } catch {
      return;
    }
    if (typeof msg !== 'object' || msg === null || msg.node === node.id || !ctx) return;
    b.received(ctx, msg);
  }

  return {
    feature(c) {
      ctx = c;
      b.publishing(c, (msg) => {
        node.redis.publish(channel, JSON.stringify({ ...msg, node: node.id }))
          .catch((err: unknown) => log.warn({ err, channel: b.channel }, `publishing ${b.what} failed`));
      });
    },
    async start() {
      subscriber = connectionOf(node.redis);
      subscriber.on('error', (err: Error) => log.warn({ err: { message: err.message }, channel: b.channel }, `${b.what}: subscriber error`));
      await subscriber.connect();
      await subscriber.subscribe(channel, received);
    },
    async stop() {
      const sub = subscriber;
      subscriber = undefined;
      if (sub) await sub.quit().catch(() => sub.destroy());
    },
  };
}
