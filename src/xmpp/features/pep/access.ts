/** Who may see a PEP node's items and notifications: XEP-0060 §4.5 access models as XEP-0163 §4.2 applies them. */
import type { Jid } from '../../../jid/index.js';
import type { PepNodeConfig } from '../../../storage/ports/pep.js';
import type { Account, AccountsService } from '../accounts/index.js';
import { hasFrom } from '../accounts/subscription.js';
import { PubsubError } from './errors.js';

/**
 * Why `viewer` may not see a node of `owner` (loaded), or undefined when
 * it may. The owner always may. XEP-0060 §6.5.9 gives each model its error.
 */
export function denial(svc: AccountsService, owner: Account, viewer: Jid, config: PepNodeConfig): PubsubError | undefined {
  if (viewer.bare === owner.bare) return undefined;
  // XEP-0163 §4.3: "MUST NOT send notifications to a subscriber if the user has blocked the
  // subscriber" (XEP-0191), whatever the model: a blocked JID sees nothing of the user's nodes.
  if (svc.isBlocked(owner, viewer)) return new PubsubError('forbidden', 'closed-node');
  const affiliation = config.affiliations?.[viewer.bare];
  // XEP-0060 §4.1: an outcast is barred from the node, whatever its model.
  if (affiliation === 'outcast') return new PubsubError('forbidden', 'closed-node');
  switch (config.accessModel) {
    case 'open':
      return undefined;
    case 'presence':
      // XEP-0163 §4.2: "presence subscription of type from or both".
      return hasFrom(owner.state(viewer.bare).subscription)
        ? undefined : new PubsubError('not-authorized', 'presence-subscription-required');
    case 'roster': {
      const groups = owner.items.get(viewer.bare)?.groups ?? [];
      return groups.some((g) => config.rosterGroupsAllowed.includes(g))
        ? undefined : new PubsubError('not-authorized', 'not-in-roster-group');
    }
    case 'whitelist':
      // XEP-0060 §4.5 / §6.5.9.x: the whitelist is the owner and the members (affiliations.ts).
      return affiliation === 'member' ? undefined : new PubsubError('not-allowed', 'closed-node');
  }
}

/** The same, loading `owner` for the question (an open node too: its blocklist decides). */
export async function mayView(svc: AccountsService, owner: Jid, viewer: Jid, config: PepNodeConfig): Promise<PubsubError | undefined> {
  if (viewer.bare === owner.bare) return undefined;
  return svc.accounts.use(owner.bareJid(), (account) => denial(svc, account, viewer, config));
}
