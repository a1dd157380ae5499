import type { XmlElement } from '../xml/index.js';
import type { Jid } from '../jid/index.js';
import type { Session } from './session.js';
import type { StanzaErrorCondition, StreamError } from './errors.js';
import type { Undelivered } from './undelivered.js';
import type { Pipeline } from './pipeline.js';

/** A stanza on its way through the router (Prosody's event.origin / event.stanza). */
export interface RouteEvent {
  /** The local session that sent it, or null when the server (or a component) originates it. */
  readonly origin: Session | null;
  readonly stanza: XmlElement;
  /** Parsed `to`; for stanzas without `to` the router fills in what RFC 6120 §10.3 implies. */
  readonly to: Jid;
  /**
   * XEP-0191 §3.3: the recipient refuses this message from a client (it blocks the sender); set by
   * blocking's filter. It was sent all the same, as to an account that does not exist: the sender's
   * side goes on (its archive, its XEP-0280 §8 sent copies), the recipient's does not (no delivery,
   * offline storage, archive entry or received copy), and blocking's deliver handler answers
   * service-unavailable. Otherwise the sender could tell the block from its own archive and copies.
   */
  refusedByRecipient?: boolean;
}

/**
 * The core's events, run as phased pipelines (pipeline.ts). A feature that
 * brings an event of its own declares it next to its code by module
 * augmentation (`declare module '../events.js' { interface CoreEvents { … } }`),
 * so no feature edits this file.
 */
export interface CoreEvents {
  /** Gathering <stream:features> for a stream (re)start; transform handlers append children. */
  'stream-features': { readonly session: Session; readonly features: XmlElement };
  /** The session became a connected resource; notify handlers may load what it needs (awaited before its next stanza). */
  'resource-bound': { readonly session: Session };
  /**
   * A bound session's presence/priority (presence.ts, available and
   * unavailable), `interested` (roster get), `carbons` (XEP-0280),
   * `blocklistRequested` (XEP-0191 blocklist get) or `directed` (RFC 6121
   * §4.6: a directed-presence recipient added or removed) changed.
   * Run only when someone listens (see resourceChanged): the cluster's
   * directory and stream-management snapshot observe it. Handlers are
   * synchronous observers: they record, they never hold the event up. One
   * that writes the change where other processes read it hands the write to
   * `answerAfter`: an answer telling the client the change took effect waits
   * for it (resourceChanged).
   */
  'resource-changed': { readonly session: Session; answerAfter(work: Promise<unknown>): void };
  /**
   * Cluster only (src/cluster/ runs it): a bound session of one of our
   * accounts lives on another node (`present`: a remote stub was added to
   * the SessionManager) or no longer. The accounts feature keeps the
   * account in memory while one does, as it does for a local session.
   */
  'remote-session': { readonly session: Session; readonly present: boolean };
  /**
   * Cluster only (src/cluster/remote-presence.ts runs it): the directory shows that remote stub
   * `session` broadcast `stanza` (its new available presence, or its unavailable). Its owner's
   * broadcast reached the sessions of this node it knew available then; this one reaches this
   * node's recipients of it as they are now (a filter there keeps one copy of each).
   */
  'remote-presence': { readonly session: Session; readonly stanza: XmlElement };
  /**
   * RFC 6121 §3.1.5: `contact` (a local bare JID) now receives the presence of `account` (its
   * subscription became from or both on the account's side), after the account's current presence
   * went to it. PEP sends it the last items it may see (XEP-0163 §4.3.2); run only when someone listens.
   */
  'subscriber-added': { readonly account: Jid; readonly contact: Jid };
  /** An account's stored state (roster, subscriptions, a part such as the blocklist) was written; run only when someone listens. */
  'account-written': { readonly host: string; readonly username: string };
  /** Cluster only: another node changed this account's stored state; a copy in memory is read again. */
  'account-stale': { readonly host: string; readonly username: string };
  /**
   * An account was deleted, by whichever writer (account-changes.ts follows the store's log; the
   * CLI deletes in another process): its sessions were told to end. The store already made the
   * other accounts forget it (their items of it at none, its requests gone); features bring what
   * they hold in memory up to date (the roster: loaded accounts read again, their resources pushed).
   */
  'account-deleted': { readonly host: string; readonly username: string };
  /**
   * Cluster only (src/cluster/sm-orphans.ts runs it): `session`, a stub of a session no process
   * held, ended while a newer available session holds its full JID. Its contacts are not told
   * (they would take the unavailable for the newer session's, whose broadcast reached them); the
   * JIDs it sent directed presence to that the newer session's presence does not reach are (RFC
   * 6121 §4.6.3). presence.ts sends them unavailable.
   */
  'session-superseded': { readonly session: Session };
  /** The transport died and the session hibernates (the core's lifecycle; stream management decided it may). */
  'session-hibernated': { readonly session: Session; readonly reason: string };
  /** A hibernating (or still connected) session got a new transport: XEP-0198 resumption, done by the core. */
  /**
   * `wasUnavailable`: its contacts were told it went unavailable meanwhile (its node died, a cluster ended its
   * presence on its behalf), and it is announced available again: what was sent to the account in between went
   * by the rules for an account with no available resource (offline storage). `queued` then: the stanzas its
   * XEP-0198 queue held when it was taken over (acknowledged by <resume h/>, or resent): stored messages among
   * them (a page its dead node delivered) are the queue's, not to be delivered from storage again.
   */
  'session-resumed': { readonly session: Session; readonly wasUnavailable?: boolean; readonly queued?: readonly XmlElement[] };
  /** The session is gone for good; features release what they hold for it. */
  'session-destroyed': { readonly session: Session; readonly reason: StreamError | undefined };
  /** A stanza is about to be written to a session: filters may hold it (CSI), a deliver handler may write it (SM). */
  'stanza-out': { readonly session: Session; readonly stanza: XmlElement };
  /** Every stanza a client sends, before any check (XEP-0198 counts what it received). */
  'stanza-received': { readonly session: Session; readonly stanza: XmlElement };
  /**
   * The transport of `session` could not deliver these stanzas. A feature
   * that still holds them (XEP-0198's queue) removes them from `stanzas`;
   * what is left is handed over once the session is gone.
   */
  'stanzas-undelivered': { readonly session: Session; stanzas: XmlElement[] };
  /**
   * `session` ended for good and these stanzas it never delivered are about
   * to be routed again (hand-over.ts). A feature that still owns some of
   * them elsewhere (offline storage) takes them out of `stanzas`.
   */
  'hand-over': { readonly session: Session; stanzas: Undelivered[] };
  /** The session's transport drained its output backlog: work waiting for room may go on (flow control). */
  'session-drained': { readonly session: Session };
  /** The server is shutting down: features hand over what they hold before sessions close. */
  'server-shutdown': Record<string, never>;
  /**
   * The router answered a route event with an error to its sender (a veto, nothing delivered,
   * a failure): the recipient did not take the stanza. Run only when someone listens; observers
   * only (the message archive takes the recipient's copy back out).
   */
  'route-bounced': { readonly event: RouteEvent; readonly condition: StanzaErrorCondition };
  /** A stanza from a bound client, `from` already stamped; filters may veto it before it is routed. */
  'stanza-in': { readonly session: Session; readonly stanza: XmlElement };
  'message/full': RouteEvent; 'message/bare': RouteEvent; 'message/host': RouteEvent;
  'presence/full': RouteEvent; 'presence/bare': RouteEvent; 'presence/host': RouteEvent;
  /** Presence without `to`: the broadcast of RFC 6121 §4.2/§4.4. */
  'presence/broadcast': RouteEvent;
  'iq/full': RouteEvent; 'iq/bare': RouteEvent; 'iq/host': RouteEvent;
  /** Any stanza to a local component (components.ts); the component itself delivers it. */
  'route/component': RouteEvent;
  /** Any stanza to a domain we neither serve nor host a component for (there is no s2s). */
  'route/remote': RouteEvent;
}

/**
 * Runs 'resource-changed' for `session`. With no listener (the single
 * process default) it allocates nothing and costs one map lookup.
 * A promise while a listener writes the change where other processes read it
 * (the cluster's directory, through `answerAfter`): an answer that tells the
 * client the change took effect (roster get, blocklist get, carbons enable)
 * waits for it, or another node could miss the push or the copy that the
 * client now expects.
 */
export function resourceChanged(hooks: Pipeline<CoreEvents>, session: Session): Promise<unknown> | undefined {
  if (!hooks.has('resource-changed')) return undefined;
  let work: Promise<unknown>[] | undefined;
  void hooks.run('resource-changed', { session, answerAfter: (p) => { (work ??= []).push(p); } });
  return work && Promise.all(work);
}
