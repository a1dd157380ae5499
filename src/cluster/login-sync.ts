/**
 * Login throttling across nodes (issue 13's throttle in issue 14's
 * cluster): each node's throttle (sasl/login-throttle.ts) counted only the
 * logins it saw, so a guesser whose connections a balancer spread over N
 * nodes, or the kernel over WORKERS=N processes, got N times the free
 * failures and N backoff clocks. After the throttle counts a failure, or a
 * success that cleared a pair ('login-counted'), the node publishes
 * `{prefix}login` with the address key and account; every other node counts
 * it too ('login-counted-elsewhere').
 *
 * Simple by design, as account-sync.ts: a message lost while the
 * subscriber reconnects, or sent before a node started, is not counted
 * there (a restart forgets the counts too); attempts that reach two nodes
 * within the publish's round trip are both checked before either counts.
 */
import type { ModuleContext } from '../xmpp/context.js';
import { PRIORITY } from '../xmpp/priorities.js';
import type { Redis } from './redis.js';
import type { ClusterModule, ClusterServices } from './module.js';

interface Counted { readonly node: string; readonly ip: string; readonly account: string | null; readonly failed: boolean }

export function createLoginSyncModule({ node, log }: ClusterServices): ClusterModule {
  const channel = `${node.prefix}login`;
  let ctx: ModuleContext | undefined;
  let subscriber: Redis | undefined;

  function received(raw: string): void {
    let msg: Counted;
    try {
      msg = JSON.parse(raw) as Counted;
    } catch {
      return;
    }
    if (msg.node === node.id || !ctx) return;
    if (typeof msg.ip !== 'string' || typeof msg.failed !== 'boolean' || (msg.account !== null && typeof msg.account !== 'string')) return;
    void ctx.hooks.run('login-counted-elsewhere', { ip: msg.ip, account: msg.account ?? undefined, failed: msg.failed });
  }

  return {
    feature(c) {
      ctx = c;
      c.hooks.notify('login-counted', ({ ip, account, failed }) => {
        node.redis.publish(channel, JSON.stringify({ node: node.id, ip, account: account ?? null, failed } satisfies Counted))
          .catch((err: unknown) => log.warn({ err, ip }, 'publishing a counted login failed'));
      }, PRIORITY.lifecycle.default);
    },
    async start() {
      subscriber = node.redis.duplicate();
      subscriber.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'login subscriber error'));
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
