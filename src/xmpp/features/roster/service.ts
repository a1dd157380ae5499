import { NS, x, type XmlElement } from '../../../xml/index.js';
import type { RosterItem, RosterPending } from '../../../storage/types.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { StanzaErrorException } from '../../errors.js';
import type { Jid } from '../../../jid/index.js';
import { blocks, type Account } from './account.js';
import type { Accounts } from './accounts.js';
import { itemElement, removedItemElement } from './items.js';
import { drive, type Fanout } from './queue.js';
import { chosenBytes, pendingBytes, type RosterLimits } from './quota.js';
import type { PresenceRelay } from './relay.js';
import { hasFrom, sameVisible, type SubState } from './state.js';
import { randomId } from '../../../util/random.js';

/**
 * What the roster feature shares with presence and blocking: the accounts
 * in memory, presence relaying and roster pushes.
 * Made once per server by roster.register() and passed on by app.ts.
 */
export class RosterService {
  readonly #bound = new WeakMap<Session, Account>();

  constructor(
    private readonly ctx: ModuleContext,
    readonly accounts: Accounts,
    readonly relay: PresenceRelay,
    readonly limits: RosterLimits,
  ) {}

  /** The account of a bound session; set by the first job on its queue, so every later job sees it. */
  accountOf(session: Session): Account {
    const account = this.#bound.get(session);
    if (!account) throw new StanzaErrorException('internal-server-error', 'the roster is not loaded');
    return account;
  }

  /** The account of a bound session if it is loaded already (for synchronous hooks). */
  peekAccount(session: Session): Account | undefined {
    return this.#bound.get(session);
  }

  bind(session: Session, account: Account): void { this.#bound.set(session, account); }
  unbind(session: Session): Account | undefined {
    const account = this.#bound.get(session);
    this.#bound.delete(session);
    return account;
  }

  /**
   * RFC 6121 §2.1.6: a roster push for `jid` (its item, or a removal) to
   * every interested resource of the account, with the new version
   * (XEP-0237 §3). No 'from': the push comes from the account itself.
   * A fan-out (queue.ts): undefined when it is done.
   */
  push(account: Account, jid: string, _session?: Session): Promise<void> | undefined {
    return drive(pushes(this.ctx, account, jid));
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
   * Whether `contact` may see `account`'s presence (subscription from or
   * both, and not blocked): what XEP-0030 §8 asks before the server answers
   * disco queries on an account's behalf.
   */
  async isSubscribed(account: Jid, contact: Jid): Promise<boolean> {
    const bare = account.bareJid();
    if (!(await this.accounts.exists(bare))) return false;
    return this.accounts.use(bare, (a) => hasFrom(a.state(contact.bare).subscription) && !blocks(a, contact));
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
      throw new StanzaErrorException('not-allowed', `the roster is full (at most ${maxItems} items)`);
    }
    if (grows > 0 && account.bytes + grows > maxBytes) {
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

function* pushes(ctx: ModuleContext, account: Account, jid: string): Fanout {
  const item = account.items.get(jid);
  for (const s of [...ctx.sessions.interested(account.host, account.username)]) {
    s.send(x('iq', { xmlns: NS.CLIENT, type: 'set', id: pushId(), to: s.full_jid },
      x('query', { xmlns: NS.ROSTER, ver: String(account.version) }, item ? itemElement(item) : removedItemElement(jid))));
    yield 1;
  }
}

/** Push ids only need to be unique per stream; random ones never collide with a client's. */
function pushId(): string {
  return `push-${randomId(6)}`;
}
