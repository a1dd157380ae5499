/**
 * The subscription state of one roster entry (RFC 6121 §3, Appendix A):
 * what an account in memory keeps, and what presence and blocking read.
 * The state machine that moves it is the roster's (roster/state.ts).
 */

export type Subscription = 'none' | 'to' | 'from' | 'both';
export type SubscriptionType = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

export const SUBSCRIPTION_TYPES: ReadonlySet<string> = new Set<SubscriptionType>(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);

export function isSubscriptionType(type: string | undefined): type is SubscriptionType {
  return type !== undefined && SUBSCRIPTION_TYPES.has(type);
}

export interface SubState {
  readonly subscription: Subscription;
  /** Pending Out: the user asked the contact and has no answer yet (ask='subscribe'). */
  readonly ask: boolean;
  /** Pending In: the contact asked the user and has no answer yet (kept off the roster, RFC 6121 §3.1.3). */
  readonly pendingIn: boolean;
  /** RFC 6121 §3.4: the user approved a request the contact has not sent yet. */
  readonly approved: boolean;
}

export const NONE: SubState = { subscription: 'none', ask: false, pendingIn: false, approved: false };

/** The user receives the contact's presence. */
export const hasTo = (s: Subscription): boolean => s === 'to' || s === 'both';
/** The contact receives the user's presence. */
export const hasFrom = (s: Subscription): boolean => s === 'from' || s === 'both';
