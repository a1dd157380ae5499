/**
 * Remote stubs: a session bound on another cluster node, as a `Session` of
 * this node's SessionManager, so every feature (message routing, presence,
 * roster pushes, carbons) works unchanged. Its transport is a RemoteConn:
 * what a feature sends to it goes to the owning node's inbox (delivery.ts)
 * as `{kind: 'stanza'}`, and closing it asks the owner to close the real
 * session (`{kind: 'close'}`, e.g. conflict). Stanzas sent to a stub skip
 * this node's stanza-out pipeline: the owner runs its own (stream
 * management, CSI) when it delivers.
 */
import { makeJid, tryParseJid, type Jid } from '../jid/index.js';
import { WRITTEN_LIMITS, NS, parseXml, serialize, type XmlElement } from '../xml/index.js';
import type { Conn, StreamHeader } from '../xmpp/conn.js';
import type { StreamError } from '../xmpp/errors.js';
import { Session, type SessionOwner } from '../xmpp/session.js';
import type { InboxEntry } from './delivery.js';
import type { DirEntry } from './directory.js';

/** Where a stub's output goes: the owner's inbox (with the fallback when it is refused). */
export interface RemoteSink {
  stanza(stub: Session, node: string, el: XmlElement): void;
  close(stub: Session, node: string, entry: InboxEntry): void;
}

/** A stub's transport: every element becomes an inbox entry for `node`. */
class RemoteConn implements Conn {
  readonly transport = 'websocket' as const;
  readonly secure = true;
  readonly ip = '';
  readonly bufferedBytes = 0;
  stub: Session | undefined;

  constructor(readonly node: string, private readonly sink: RemoteSink) {}

  open(_header: StreamHeader): void {}
  send(el: XmlElement): void {
    // Nonzas (SM acks, stream features) belong to the owner's stream, never to a stub.
    if (this.stub && (el.name === 'message' || el.name === 'presence' || el.name === 'iq')) this.sink.stanza(this.stub, this.node, el);
  }
  close(): void {}
  /** A stub's transport is its owner's business: only local sessions are dropped. */
  drop(): void {}
  attach(): void {}
}

/** The owner side of a stub: no filters (the owner runs them), closing becomes a 'close' entry. */
function stubOwner(node: string, sid: string, sink: RemoteSink): SessionOwner {
  return {
    dispatchOpen() {}, dispatchElement() {}, dispatchClose() {}, lost() {}, undelivered() {}, drained() {},
    filterOut: () => false,
    mayHibernate: () => false,
    inputBacklogged: () => false,
    closed(session: Session, reason: StreamError | undefined) {
      sink.close(session, node, {
        kind: 'close', to: session.full_jid!, sid, condition: reason?.condition ?? 'reset',
        ...(reason?.text === undefined ? {} : { text: reason.text }),
      });
    },
  };
}

/** A stub for `entry`, the session at bare/resource on another node. */
export function createStub(bare: string, resource: string, entry: DirEntry, sink: RemoteSink): Session {
  const conn = new RemoteConn(entry.node, sink);
  const stub = new Session(conn, stubOwner(entry.node, entry.sid, sink));
  conn.stub = stub;
  const jid = makeJid(bare.slice(0, bare.indexOf('@')), bare.slice(bare.indexOf('@') + 1), resource);
  stub.type = 'c2s';
  stub.notopen = false;
  stub.username = jid.local;
  stub.host = jid.domain;
  stub.resource = jid.resource;
  stub.jid = jid;
  stub.full_jid = jid.full;
  stub.anonymous = entry.anonymous;
  stub.carbons = entry.carbons;
  refresh(stub, entry);
  return stub;
}

/**
 * Copies what may change of a remote session (presence, priority, interest, blocklist pushes,
 * directed-presence recipients) onto its stub; carbons go through the SessionManager.
 */
export function refresh(stub: Session, entry: DirEntry): void {
  stub.priority = entry.priority;
  stub.interested = entry.interested ? true : undefined;
  stub.blocklistRequested = entry.blocklist === true;
  stub.presence = entry.presence === null ? undefined : readPresence(entry.presence);
  stub.directed = readJids(entry.directed);
}

/** Full JIDs as a Session's `directed` map (undefined when none); an unreadable one is skipped. */
export function readJids(list: readonly string[] | undefined): Map<string, Jid> | undefined {
  if (list === undefined || list.length === 0) return undefined;
  const jids = new Map<string, Jid>();
  for (const full of list) {
    const jid = tryParseJid(full);
    if (jid) jids.set(full, jid);
  }
  return jids.size > 0 ? jids : undefined;
}

function readPresence(xml: string): XmlElement | undefined {
  try {
    return parseXml(xml, WRITTEN_LIMITS, NS.CLIENT);
  } catch {
    return undefined;
  }
}

/** What a stub's owner keeps of a stanza: the XML as it would go on the wire. */
export function stanzaEntry(to: string, el: XmlElement): InboxEntry {
  return { kind: 'stanza', to, xml: serialize(el) };
}
