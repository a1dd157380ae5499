/**
 * The presence subscription state machine of RFC 6121 Appendix A, as pure
 * functions. A state is the RFC's "None + Pending Out/In" and friends:
 * the `subscription` attribute plus the two pending flags, and the
 * pre-approval of §3.4. Every user here is local, so for one stanza the
 * sender's server applies the outbound table (A.2) to the sender's roster
 * and then, when the table says "route", the contact's server applies the
 * inbound table (A.3) to the contact's roster.
 */

import { hasFrom, hasTo, type SubState, type Subscription, type SubscriptionType } from '../accounts/subscription.js';

export type { SubState, SubscriptionType } from '../accounts/subscription.js';

const withTo = (s: Subscription, to: boolean): Subscription => {
  const from = hasFrom(s);
  return to ? (from ? 'both' : 'to') : (from ? 'from' : 'none');
};
const withFrom = (s: Subscription, from: boolean): Subscription => {
  const to = hasTo(s);
  return from ? (to ? 'both' : 'from') : (to ? 'to' : 'none');
};

export interface OutboundStep {
  /** A.2 "ROUTE?": whether the stanza goes on to the contact. */
  readonly route: boolean;
  readonly next: SubState;
}

/**
 * RFC 6121 Appendix A.2: the user's server handling a subscription stanza
 * the user sends. `subscribed` without a pending request is the
 * pre-approval of §3.4 (when the contact is not subscribed yet); an
 * `unsubscribed` then cancels a pre-approval.
 */
export function outbound(type: SubscriptionType, s: SubState): OutboundStep {
  switch (type) {
    case 'subscribe':
      // A.2.1: always routed; Pending Out unless the user is already subscribed.
      return { route: true, next: hasTo(s.subscription) ? s : { ...s, ask: true } };
    case 'unsubscribe':
      // A.2.2: always routed; ends To and Pending Out.
      return { route: true, next: { ...s, ask: false, subscription: withTo(s.subscription, false) } };
    case 'subscribed':
      // A.2.3: only an answer to Pending In is routed; it gives the contact From.
      if (s.pendingIn) return { route: true, next: { ...s, pendingIn: false, approved: false, subscription: withFrom(s.subscription, true) } };
      return { route: false, next: hasFrom(s.subscription) ? s : { ...s, approved: true } };
    case 'unsubscribed':
      // A.2.4: refuses Pending In, or cancels From; otherwise only a pre-approval goes.
      if (s.pendingIn || hasFrom(s.subscription)) {
        return { route: true, next: { ...s, pendingIn: false, approved: false, subscription: withFrom(s.subscription, false) } };
      }
      return { route: false, next: { ...s, approved: false } };
  }
}

export interface InboundStep {
  /** A.3 "DELIVER?": whether the contact's available resources get the stanza. */
  readonly deliver: boolean;
  /** A.3.1 footnote / §3.1.3 and §3.4: the server answers `subscribed` on the contact's behalf. */
  readonly autoReply: boolean;
  readonly next: SubState;
}

/** RFC 6121 Appendix A.3: the contact's server handling a subscription stanza from the user. */
export function inbound(type: SubscriptionType, s: SubState): InboundStep {
  const none = { deliver: false, autoReply: false, next: s };
  switch (type) {
    case 'subscribe':
      // A.3.1: already subscribed → auto-reply; pre-approved → approve now (§3.4); else Pending In once.
      if (hasFrom(s.subscription)) return { ...none, autoReply: true };
      if (s.approved) return { deliver: false, autoReply: true, next: { ...s, approved: false, subscription: withFrom(s.subscription, true) } };
      if (s.pendingIn) return none;
      return { deliver: true, autoReply: false, next: { ...s, pendingIn: true } };
    case 'unsubscribe':
      // A.3.2: ends Pending In and From.
      if (!s.pendingIn && !hasFrom(s.subscription)) return none;
      return { deliver: true, autoReply: false, next: { ...s, pendingIn: false, subscription: withFrom(s.subscription, false) } };
    case 'subscribed':
      // A.3.3: only an answer to Pending Out counts; it gives the user To.
      if (!s.ask) return none;
      return { deliver: true, autoReply: false, next: { ...s, ask: false, subscription: withTo(s.subscription, true) } };
    case 'unsubscribed':
      // A.3.4: refuses Pending Out, or cancels To.
      if (!s.ask && !hasTo(s.subscription)) return none;
      return { deliver: true, autoReply: false, next: { ...s, ask: false, subscription: withTo(s.subscription, false) } };
  }
}

/** The RFC 6121 Appendix A name of a state, e.g. "None + Pending Out/In" (pre-approval is not part of it). */
export function stateName(s: SubState): string {
  const base = { none: 'None', to: 'To', from: 'From', both: 'Both' }[s.subscription];
  const pending = s.ask && s.pendingIn ? 'Pending Out/In' : s.ask ? 'Pending Out' : s.pendingIn ? 'Pending In' : '';
  return pending ? `${base} + ${pending}` : base;
}

/** The inverse of stateName for the nine states of Appendix A. */
export function parseStateName(name: string): SubState {
  const m = /^(None|To|From|Both)(?: \+ Pending (Out\/In|Out|In))?$/.exec(name);
  if (!m) throw new Error(`not an RFC 6121 Appendix A state: ${name}`);
  const subscription = m[1]!.toLowerCase() as Subscription;
  const pending = m[2] ?? '';
  const state = { subscription, ask: pending.startsWith('Out'), pendingIn: pending.endsWith('In'), approved: false };
  // Pending Out only while not subscribed to the contact, Pending In only while the contact is not subscribed.
  if ((state.ask && hasTo(subscription)) || (state.pendingIn && hasFrom(subscription))) throw new Error(`not an RFC 6121 Appendix A state: ${name}`);
  return state;
}

/** Whether two states show the same on the roster (pending-in is not shown, RFC 6121 §3.1.3). */
export function sameVisible(a: SubState, b: SubState): boolean {
  return a.subscription === b.subscription && a.ask === b.ask && a.approved === b.approved;
}
