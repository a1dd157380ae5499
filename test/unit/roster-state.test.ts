/**
 * The subscription state machine against RFC 6121 Appendix A, row by row
 * (the tables are in test/helpers/rfc6121-tables.ts, copied from the RFC).
 */
import t from 'tap';
import { inbound, outbound, parseStateName, stateName, type SubscriptionType } from '../../src/xmpp/features/roster/state.js';
import { INBOUND, NO, OUTBOUND, type Row } from '../helpers/rfc6121-tables.js';

t.test('state names round-trip for the nine states of Appendix A', async (t) => {
  for (const [existing] of OUTBOUND.subscribe) t.equal(stateName(parseStateName(existing)), existing);
  t.throws(() => parseStateName('Both + Pending In'), /not an RFC 6121 Appendix A state/);
});

for (const [type, rows] of Object.entries(OUTBOUND) as Array<[SubscriptionType, readonly Row[]]>) {
  t.test(`outbound ${type} follows RFC 6121 Appendix A.2`, async (t) => {
    for (const [existing, route, next] of rows) {
      const step = outbound(type, parseStateName(existing));
      t.equal(step.route ? 'yes' : 'no', route, `${existing}: route ${route}`);
      t.equal(stateName(step.next), next === NO ? existing : next, `${existing} → ${next}`);
    }
  });
}

for (const [type, rows] of Object.entries(INBOUND) as Array<[SubscriptionType, readonly Row[]]>) {
  t.test(`inbound ${type} follows RFC 6121 Appendix A.3`, async (t) => {
    for (const [existing, deliver, next] of rows) {
      const step = inbound(type, parseStateName(existing));
      t.equal(step.deliver ? 'yes' : 'no', deliver, `${existing}: deliver ${deliver}`);
      t.equal(stateName(step.next), next === NO ? existing : next, `${existing} → ${next}`);
    }
  });
}

t.test('an inbound subscribe from an existing subscriber is answered by the server (A.3.1 *)', async (t) => {
  for (const existing of ['From', 'From + Pending Out', 'Both']) t.ok(inbound('subscribe', parseStateName(existing)).autoReply, existing);
  for (const existing of ['None', 'None + Pending Out', 'None + Pending In', 'To', 'To + Pending In']) {
    t.notOk(inbound('subscribe', parseStateName(existing)).autoReply, existing);
  }
});

t.test('pre-approval (RFC 6121 §3.4): outbound subscribed without a request pre-approves, and a later request is approved at once', async (t) => {
  for (const existing of ['None', 'None + Pending Out', 'To']) {
    const step = outbound('subscribed', parseStateName(existing));
    t.equal(step.route, false, `${existing}: nothing to route`);
    t.equal(step.next.approved, true, `${existing}: pre-approved`);
    const request = inbound('subscribe', step.next);
    t.equal(request.deliver, false, `${existing}: the later request is not shown to the user`);
    t.equal(request.autoReply, true, `${existing}: the server approves it`);
    t.equal(request.next.approved, false, `${existing}: the pre-approval is used up`);
    t.equal(stateName(request.next), { None: 'From', 'None + Pending Out': 'From + Pending Out', To: 'Both' }[existing]);
  }
  for (const existing of ['From', 'Both']) {
    t.equal(outbound('subscribed', parseStateName(existing)).next.approved, false, `${existing}: the contact is subscribed already, nothing to pre-approve`);
  }
  const approved = outbound('subscribed', parseStateName('None')).next;
  const cancelled = outbound('unsubscribed', approved);
  t.equal(cancelled.next.approved, false, 'unsubscribed cancels a pre-approval');
  t.equal(cancelled.route, false, 'and is not routed');
});
