/**
 * The one table of hook priorities. Within a phase (pipeline.ts) higher
 * runs first; the phase itself already orders filter → transform → deliver
 * → notify, so a priority only orders handlers of one phase on one event.
 * A feature names its priority here, with the reason, instead of a bare
 * number coordinated by comments across files.
 */
export const PRIORITY = {
  // <stream:features> order (RFC 6120 §4.3.2: mandatory-to-negotiate first).
  features: {
    sasl: 100,
    /** XEP-0388 §2.1: SASL2's <authentication/> next to the legacy <mechanisms/>. */
    sasl2: 95,
    bind: 90,
    streamManagement: 80,
    /** CSI (XEP-0352) and roster versioning / pre-approval: informational, after the rest. */
    informational: 70,
  },
  stanzaIn: {
    /** XEP-0191: a stanza to a blocked JID is vetoed before anything else looks at it. */
    blocking: 1000,
    /** XEP-0203 §7: forged server delays come off before anyone stores or forwards the message. */
    forgedDelays: 200,
  },
  route: {
    /**
     * XEP-0191: what a blocked JID sends is stopped before any delivery, copy or storage (a filter), and a
     * client's message to a blocker, marked refused by that filter, is answered before any delivery (a deliver).
     */
    blocking: 1000,
    /** XEP-0160 §2: a new available presence starts offline delivery, seen before presence changes the state. */
    offlineTrigger: 50,
    /** RFC 6121 A.2/A.3: subscription presence changes rosters instead of being relayed as presence. */
    subscriptions: 50,
    /**
     * Cluster: a stanza for a full JID with no session here, before the answers and offline storage take
     * it as gone (cluster/directory-module.ts): one just resumed on another node waits for its new entry;
     * any other reads its directory entry from Redis first (it may have been bound elsewhere a moment ago).
     */
    unknownHere: 30,
    /** Cluster: a client's answer to a question another node's server asked goes back there (cluster/answers.ts). */
    answerElsewhere: 20,
    /** Answers the server gives on an account's behalf (roster of another account forbidden, disco, vCard). */
    onBehalf: 10,
    /** XEP-0160: messages for an account with no available resource are stored; after the answers above. */
    offline: -50,
    /** The RFC 6121 rules of delivery, the last resort of every route event. */
    standard: -100,
    /** XEP-0280: copies go out once the message has been delivered, stored or refused. */
    carbons: 0,
    /** XEP-0313: a message is archived and gets its XEP-0359 stanza-id before anyone delivers, stores or copies it. */
    archive: 0,
    /** Filters that only look (the shutdown's count of what goes to offline storage): after every filter that may stop. */
    observe: -1000,
  },
  stanzaOut: {
    /** Cluster (remote-presence.ts): a second copy of another node's session's presence goes before CSI folds or SM counts it. */
    clusterRemotePresence: 120,
    /** XEP-0352: inactive clients get presence folded; held before stream management counts it. */
    csi: 110,
    /** XEP-0198: every stanza is counted and buffered until acknowledged; SM writes it. */
    streamManagement: 100,
  },
  lifecycle: {
    /** XEP-0198 hands its unacknowledged queue over before features forget the session. */
    streamManagement: 50,
    /** After stream management: resend its queue, then let CSI flush its held presence. */
    csi: 0,
    default: 0,
    /** The roster's account is released last: every clean-up job queued before it (unavailable presence) still sees it. */
    releaseAccount: -1000,
  },
} as const;
