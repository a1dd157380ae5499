/**
 * Where a client's answer to a question from the server goes back to. A
 * feature that asks a client something sends an IQ get from the server's
 * domain (caps/: XEP-0115 §6.2 disco#info) and waits for the result on
 * 'iq/host' of its own process. In a cluster the question to a client bound
 * on another node goes through that client's stub to its owner's inbox, and
 * the client's answer, addressed to the domain, is routed by the owner: it
 * must go back to the node that asked, the only one waiting for it. So the
 * owner remembers, per client and IQ id, which node a question came from,
 * and hands the result or error back through that node's inbox
 * (directory-module.ts), where it is routed to the domain again and taken as
 * a local answer would be.
 *
 * The memory is bounded (MAX_QUESTIONS, the oldest forgotten first) and
 * short (ANSWER_WAIT_MS, longer than any asker waits): an answer that comes
 * later finds nothing and ends on this node, as every answer did before,
 * and its asker has timed out. Only questions that came through the inbox
 * from the server's domain are remembered, so a client can only send back
 * the answer to a question it was asked (keyed by its own full JID, which
 * the core stamps on what it sends).
 */

/** How long an answer is awaited (the caps query waits 10 s: server.ts). */
export const ANSWER_WAIT_MS = 30_000;
/** Questions remembered at once; each node asks at most caps' maxPending (1,000) at a time. */
export const MAX_QUESTIONS = 10_000;

export interface AnswerRoutes {
  /** The server of `node` asked the local session `to` the IQ `id`: its answer goes back there. */
  asked(node: string, to: string, id: string): void;
  /** The node that asked `from` (a local full JID) the IQ `id`, forgotten once told; undefined if none. */
  take(from: string, id: string): string | undefined;
}

export function createAnswerRoutes(now: () => number = Date.now, max = MAX_QUESTIONS, waitMs = ANSWER_WAIT_MS): AnswerRoutes {
  /** In the order asked: the first ones are the oldest. */
  const asked = new Map<string, { readonly node: string; readonly at: number }>();
  // No JID holds a control character (RFC 7622 §3.2, §3.3, §3.4): the key cannot be forged from another pair.
  const key = (jid: string, id: string): string => `${jid}\n${id}`;
  return {
    asked(node, to, id) {
      const t = now();
      for (const [k, q] of asked) {
        if (asked.size < max && t - q.at < waitMs) break;
        asked.delete(k);
      }
      const k = key(to, id);
      asked.delete(k); // a repeated id counts from now
      asked.set(k, { node, at: t });
    },
    take(from, id) {
      if (asked.size === 0) return undefined; // the usual case: nothing asked from elsewhere
      const k = key(from, id);
      const q = asked.get(k);
      if (q === undefined) return undefined;
      asked.delete(k);
      return now() - q.at < waitMs ? q.node : undefined;
    },
  };
}
