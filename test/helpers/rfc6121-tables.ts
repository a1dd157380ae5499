/**
 * RFC 6121 Appendix A, copied from the RFC (states by their RFC names) so
 * tests compare the implementation with the text, not with itself.
 */
import type { SubscriptionType } from '../../src/xmpp/features/roster/state.js';

export const NO = 'no state change';
export type Row = readonly [existing: string, routeOrDeliver: 'yes' | 'no', next: string];

/** A.2: the user's server, for outbound subscription stanzas: EXISTING STATE, ROUTE?, NEW STATE. */
export const OUTBOUND: Record<SubscriptionType, readonly Row[]> = {
  subscribe: [ // A.2.1
    ['None', 'yes', 'None + Pending Out'],
    ['None + Pending Out', 'yes', NO],
    ['None + Pending In', 'yes', 'None + Pending Out/In'],
    ['None + Pending Out/In', 'yes', NO],
    ['To', 'yes', NO],
    ['To + Pending In', 'yes', NO],
    ['From', 'yes', 'From + Pending Out'],
    ['From + Pending Out', 'yes', NO],
    ['Both', 'yes', NO],
  ],
  unsubscribe: [ // A.2.2
    ['None', 'yes', NO],
    ['None + Pending Out', 'yes', 'None'],
    ['None + Pending In', 'yes', NO],
    ['None + Pending Out/In', 'yes', 'None + Pending In'],
    ['To', 'yes', 'None'],
    ['To + Pending In', 'yes', 'None + Pending In'],
    ['From', 'yes', NO],
    ['From + Pending Out', 'yes', 'From'],
    ['Both', 'yes', 'From'],
  ],
  subscribed: [ // A.2.3
    ['None', 'no', NO],
    ['None + Pending Out', 'no', NO],
    ['None + Pending In', 'yes', 'From'],
    ['None + Pending Out/In', 'yes', 'From + Pending Out'],
    ['To', 'no', NO],
    ['To + Pending In', 'yes', 'Both'],
    ['From', 'no', NO],
    ['From + Pending Out', 'no', NO],
    ['Both', 'no', NO],
  ],
  unsubscribed: [ // A.2.4
    ['None', 'no', NO],
    ['None + Pending Out', 'no', NO],
    ['None + Pending In', 'yes', 'None'],
    ['None + Pending Out/In', 'yes', 'None + Pending Out'],
    ['To', 'no', NO],
    ['To + Pending In', 'yes', 'To'],
    ['From', 'yes', 'None'],
    ['From + Pending Out', 'yes', 'None + Pending Out'],
    ['Both', 'yes', 'To'],
  ],
};

/** A.3: the contact's server, for inbound subscription stanzas: EXISTING STATE, DELIVER?, NEW STATE. */
export const INBOUND: Record<SubscriptionType, readonly Row[]> = {
  subscribe: [ // A.3.1 (the three "no" rows marked * are auto-replied, checked below)
    ['None', 'yes', 'None + Pending In'],
    ['None + Pending Out', 'yes', 'None + Pending Out/In'],
    ['None + Pending In', 'no', NO],
    ['None + Pending Out/In', 'no', NO],
    ['To', 'yes', 'To + Pending In'],
    ['To + Pending In', 'no', NO],
    ['From', 'no', NO],
    ['From + Pending Out', 'no', NO],
    ['Both', 'no', NO],
  ],
  unsubscribe: [ // A.3.2
    ['None', 'no', NO],
    ['None + Pending Out', 'no', NO],
    ['None + Pending In', 'yes', 'None'],
    ['None + Pending Out/In', 'yes', 'None + Pending Out'],
    ['To', 'no', NO],
    ['To + Pending In', 'yes', 'To'],
    ['From', 'yes', 'None'],
    ['From + Pending Out', 'yes', 'None + Pending Out'],
    ['Both', 'yes', 'To'],
  ],
  subscribed: [ // A.3.3
    ['None', 'no', NO],
    ['None + Pending Out', 'yes', 'To'],
    ['None + Pending In', 'no', NO],
    ['None + Pending Out/In', 'yes', 'To + Pending In'],
    ['To', 'no', NO],
    ['To + Pending In', 'no', NO],
    ['From', 'no', NO],
    ['From + Pending Out', 'yes', 'Both'],
    ['Both', 'no', NO],
  ],
  unsubscribed: [ // A.3.4
    ['None', 'no', NO],
    ['None + Pending Out', 'yes', 'None'],
    ['None + Pending In', 'no', NO],
    ['None + Pending Out/In', 'yes', 'None + Pending In'],
    ['To', 'yes', 'None'],
    ['To + Pending In', 'yes', 'None + Pending In'],
    ['From', 'no', NO],
    ['From + Pending Out', 'yes', 'From'],
    ['Both', 'yes', 'From'],
  ],
};
