/**
 * Account cache coherence across nodes: every node keeps the accounts of
 * its sessions in memory, and those of remote stubs it needs (a local
 * roster lists them, or a stanza needed them: features/accounts/remote.ts),
 * so a roster, subscription or blocklist change written on one node must
 * reach the copies elsewhere. After a write settled ('account-written') the node
 * publishes `{prefix}account` with the bare JID; every other node reads its
 * copy again from the store ('account-stale').
 *
 * A subscription presence does not wait for this message: the node it
 * reaches reads both accounts again first (directory-module.ts).
 *
 * Races that remain (simple by design): a node that changes the same
 * account at the same moment works on its stale copy until the message
 * arrives, and two nodes may then give two different changes the same
 * roster version (XEP-0237 only asks for a new one; a client may miss one
 * push and get the full roster next time); a message lost while the
 * subscriber reconnects leaves a copy stale until the next change.
 */
import type { ModuleContext } from '../xmpp/context.js';
import { PRIORITY } from '../xmpp/priorities.js';
import type { Redis } from './redis.js';
import type { ClusterModule, ClusterServices } from './module.js';

interface Changed { readonly node: string; readonly host: string; readonly username: string }

export function createAccountSyncModule({ node, log }: ClusterServices): ClusterModule {
  const channel = `${node.prefix}account`;
  let ctx: ModuleContext | undefined;
  let subscriber: Redis | undefined;

  function received(raw: string): void {
    let msg: Changed;
    try {
      msg = JSON.parse(raw) as Changed;
    } catch {
      return;
    }
    if (msg.node === node.id || !ctx) return;
    ctx.hooks.run('account-stale', { host: msg.host, username: msg.username });
  }

  return {
    feature(c) {
      ctx = c;
      c.hooks.notify('account-written', ({ host, username }) => {
        node.redis.publish(channel, JSON.stringify({ node: node.id, host, username } satisfies Changed))
          .catch((err: unknown) => log.warn({ err, account: `${username}@${host}` }, 'publishing an account change failed'));
      }, PRIORITY.lifecycle.default);
    },
    async start() {
      subscriber = node.redis.duplicate();
      subscriber.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'account subscriber error'));
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
