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
import { PRIORITY } from '../xmpp/priorities.js';
import type { ClusterModule, ClusterServices } from './module.js';
import { createBroadcastModule } from './broadcast.js';

interface Changed { readonly host: string; readonly username: string }

export function createAccountSyncModule(services: ClusterServices): ClusterModule {
  return createBroadcastModule<Changed>(services, {
    channel: 'account',
    what: 'an account change',
    publishing(c, publish) {
      c.hooks.notify('account-written', ({ host, username }) => { publish({ host, username }); }, PRIORITY.lifecycle.default);
    },
    received(c, { host, username }) {
      if (typeof host !== 'string' || typeof username !== 'string') return;
      c.hooks.run('account-stale', { host, username });
    },
  });
}
