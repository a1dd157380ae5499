import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { RosterItem, RosterPending } from '../../../storage/types.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { StanzaErrorException } from '../../errors.js';
import type { Account } from '../accounts/account.js';
import { itemElement, removedItemElement } from './items.js';
import { drive, type Fanout } from '../accounts/fanout.js';
import { chosenBytes, pendingBytes, type RosterLimits } from '../accounts/quota.js';
import { sameVisible, type SubState } from './state.js';
import { randomId } from '../../../util/random.js';

/**
 * What roster sets and subscriptions share: roster pushes, state changes
 * and the roster limits. The accounts themselves are the accounts
 * service's (accounts/); made once per server by roster.register().
 */
export class RosterService {
  constructor(
    private readonly ctx: ModuleContext,
    readonly limits: RosterLimits,
  ) {}

  /**
   * RFC 6121 §2.1.6: a roster push for `jid` (its item, or a removal) to
   * every interested resource of the account, with the new version
   * (XEP-0237 §3). No 'from': the push comes from the account itself.
   * A fan-out (queue.ts): undefined when it is done.
   */
  push(account: Account, jid: string, _session?: Session): Promise<void> | undefined {
    return drive(pushes(this.ctx, account, jid, false));
  }

  /**
   * The same push to this process's interested resources only, never to a
   * cluster's remote stubs: for a change every node makes to its own copy
   * (a deleted contact), which each node announces to its own sessions.
   */
  pushLocal(account: Account, jid: string): Promise<void> | undefined {
    return drive(pushes(this.ctx, account, jid, true));
  }

  /**
   * Moves `jid` on the account's roster to the Appendix A state `next`:
   * Pending In is stored off the roster with the request (`request`), the
   * visible part goes into the item (created if needed) and is pushed.
   */
  setState(account: Account, jid: string, next: SubState, session: Session | undefined, request?: XmlElement): Promise<void> | undefined {
    const before = account.state(jid);
    if (next.pendingIn && !before.pendingIn) {
      void account.addPending({ jid, stanza: (request ?? x('presence', { xmlns: NS.CLIENT, type: 'subscribe', from: jid })).toString() });
    } else if (!next.pendingIn && before.pendingIn) {
      void account.dropPending(jid);
    }
    if (sameVisible(before, next)) return undefined;
    const current = account.items.get(jid);
    const item: RosterItem = current
      ? { ...current, subscription: next.subscription, ask: next.ask, approved: next.approved }
      : { jid, name: undefined, groups: [], subscription: next.subscription, ask: next.ask, approved: next.approved };
    void account.saveItem(item);
    return this.push(account, jid, session);
  }

  /**
   * Refuses a change that needs a new item on a roster at MAX_ROSTER_ITEMS,
   * or that grows the roster by `grows` bytes past MAX_ROSTER_BYTES. RFC
   * 6121 gives no condition; not-allowed (cancel) says retrying will not
   * help. A change that does not grow the roster always passes, so an
   * account over a lowered limit can still tidy up.
   */
  checkRoom(account: Account, jid: string, grows = 0): void {
    const { maxItems, maxBytes } = this.limits;
    if (!account.items.has(jid) && account.items.size >= maxItems) {
      this.ctx.metrics.limitRefused('roster');
      throw new StanzaErrorException('not-allowed', `the roster is full (at most ${maxItems} items)`);
    }
    if (grows > 0 && account.bytes + grows > maxBytes) {
      this.ctx.metrics.limitRefused('roster');
      throw new StanzaErrorException('not-allowed', `the roster is full (at most ${maxBytes} bytes)`);
    }
  }

  /**
   * RFC 6121 §2.3.3: a name or group "greater than a server-configured
   * limit" is not-acceptable; MAX_ROSTER_ITEM_BYTES is that limit for the
   * name and groups together, in UTF-8.
   */
  checkItemSize(name: string | undefined, groups: readonly string[]): void {
    if (chosenBytes(name, groups) > this.limits.maxItemBytes) {
      throw new StanzaErrorException('not-acceptable', `the item's name and groups exceed ${this.limits.maxItemBytes} bytes`);
    }
  }

  /** Whether `account` can keep one more unanswered request (Pending In) within MAX_ROSTER_BYTES. */
  hasRoomFor(account: Account, pending: RosterPending): boolean {
    const replaced = account.pending.get(pending.jid);
    return account.bytes + pendingBytes(pending) - (replaced ? pendingBytes(replaced) : 0) <= this.limits.maxBytes;
  }
}

function* pushes(ctx: ModuleContext, account: Account, jid: string, localOnly: boolean): Fanout {
  const item = account.items.get(jid);
  for (const s of [...ctx.sessions.interested(account.host, account.username)]) {
    if (localOnly && ctx.sessions.getLocal(account.host, account.username, s.resource!) !== s) continue;
    s.send(x('iq', { xmlns: NS.CLIENT, type: 'set', id: pushId(), to: s.full_jid },
      x('query', { xmlns: NS.ROSTER, ver: String(account.version) }, item ? itemElement(item) : removedItemElement(jid))));
    yield 1;
  }
}

/** Push ids only need to be unique per stream; random ones never collide with a client's. */
function pushId(): string {
  return `push-${randomId(6)}`;
}
