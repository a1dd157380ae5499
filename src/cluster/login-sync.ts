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
import { PRIORITY } from '../xmpp/priorities.js';
import type { ClusterModule, ClusterServices } from './module.js';
import { createBroadcastModule } from './broadcast.js';

interface Counted { readonly ip: string; readonly account: string | null; readonly failed: boolean }

export function createLoginSyncModule(services: ClusterServices): ClusterModule {
  return createBroadcastModule<Counted>(services, {
    channel: 'login',
    what: 'a counted login',
    publishing(c, publish) {
      c.hooks.notify('login-counted', ({ ip, account, failed }) => { publish({ ip, account: account ?? null, failed }); }, PRIORITY.lifecycle.default);
    },
    received(c, { ip, account, failed }) {
      if (typeof ip !== 'string' || typeof failed !== 'boolean' || (account !== null && typeof account !== 'string')) return;
      void c.hooks.run('login-counted-elsewhere', { ip, account: account ?? undefined, failed });
    },
  });
}
