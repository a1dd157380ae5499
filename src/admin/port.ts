/**
 * What the admin socket may do to the running server, and nothing more: a
 * narrow port onto the core (list sessions, end some, count, announce, back
 * up). In a cluster it sees this node's sessions only (SessionsView.all is local).
 */
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import { JidError, parseJid } from '../jid/jid.js';
import { x } from '../xml/index.js';
import { randomId } from '../util/random.js';
import type { Session } from '../xmpp/session.js';
import type { SessionsView } from '../xmpp/session-manager.js';
import type { StreamErrorCondition } from '../xmpp/errors.js';
import { AdminError } from './protocol.js';

export type SessionState = 'unauthenticated' | 'authenticated' | 'bound' | 'hibernating';

export interface SessionInfo {
  /** The full JID, or null before bind. */
  readonly jid: string | null;
  readonly transport: string;
  readonly ip: string;
  readonly state: SessionState;
  readonly ageSeconds: number;
  /** XEP-0198 stanzas sent and not yet acked; null without stream management. */
  readonly unacked: number | null;
}

export interface AdminStats {
  /** The cluster node this answer is about; null outside a cluster. */
  readonly node: string | null;
  readonly uptimeSeconds: number;
  /** transport → state → sessions. */
  readonly sessions: Record<string, Partial<Record<SessionState, number>>>;
  /** Message stanzas received from and sent to clients since the start (xmpp_stanzas_*_total); null when not counted. */
  readonly messages: { readonly in: number | null; readonly out: number | null };
  readonly storage: string;
}

export interface AdminPort {
  listSessions(): SessionInfo[];
  /** Ends the sessions of a bare JID (all resources) or a full JID with a stream error; returns how many. */
  kick(jid: string, condition: StreamErrorCondition): number;
  stats(): Promise<AdminStats>;
  /** XEP-0133-style announcement: a headline from `host` to every available resource on it; returns how many. */
  announce(host: string, body: string, subject?: string): Promise<number>;
  /** An online SQLite backup into `dir`/`file`; returns the path written. */
  backup(dir: string): Promise<string>;
}

export interface AdminPortDeps {
  readonly sessions: SessionsView;
  readonly unacked: (session: Session) => number | undefined;
  readonly hosts: readonly string[];
  readonly registry: Registry;
  readonly storage: { readonly backend: string; backup?(file: string): Promise<void> };
  /** The name the backup gets in its directory (the live database's file name). */
  readonly backupFile: string;
  readonly node: string | null;
  readonly now: () => number;
}

/** Sessions handled per event-loop turn by announce, so a large server stays responsive. */
const ANNOUNCE_BATCH = 500;

export function sessionState(s: Session): SessionState {
  if (s.conn === null) return 'hibernating';
  if (s.full_jid !== undefined) return 'bound';
  return s.type === 'c2s' ? 'authenticated' : 'unauthenticated';
}

/** Sums a counter's series whose `kind` label is 'message'; null when the metric is not registered. */
async function messageCount(registry: Registry, name: string): Promise<number | null> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return null;
  const { values } = await metric.get();
  return values.filter((v) => v.labels.kind === 'message').reduce((sum, v) => sum + v.value, 0);
}

function kickTarget(jid: string): { host: string; username: string; resource: string | undefined } {
  try {
    const parsed = parseJid(jid);
    if (!parsed.local) throw new AdminError('bad-request', `'${jid}' is not a user JID (user@host[/resource])`);
    return { host: parsed.domain, username: parsed.local, resource: parsed.resource || undefined };
  } catch (err) {
    if (err instanceof JidError) throw new AdminError('bad-request', `invalid JID '${jid}': ${err.message}`);
    throw err;
  }
}

export function createAdminPort(deps: AdminPortDeps): AdminPort {
  const startedAt = deps.now();
  const local = (): Session[] => [...deps.sessions.all].filter((s) => !s.destroyed);
  return {
    listSessions: () => local().map((s) => ({
      jid: s.full_jid ?? null, transport: s.transport, ip: s.ip, state: sessionState(s),
      ageSeconds: Math.floor((deps.now() - s.startedAt) / 1000), unacked: deps.unacked(s) ?? null,
    })),
    kick(jid, condition) {
      const t = kickTarget(jid);
      const targets = local().filter((s) => s.host === t.host && s.username === t.username && (t.resource === undefined || s.resource === t.resource));
      if (targets.length === 0) throw new AdminError('item-not-found', `no session of ${jid} on this node`);
      // RFC 6120 §4.9: the stream error ends the session; closing (not losing) it means XEP-0198 never
      // hibernates it, so the kicked client cannot resume (a hibernating one is destroyed too).
      for (const s of targets) s.close({ condition, text: 'ended by the administrator', kicked: true });
      return targets.length;
    },
    async stats() {
      const sessions: Record<string, Partial<Record<SessionState, number>>> = {};
      for (const s of local()) {
        const byState = (sessions[s.transport] ??= {});
        const state = sessionState(s);
        byState[state] = (byState[state] ?? 0) + 1;
      }
      const messages = {
        in: await messageCount(deps.registry, 'xmpp_stanzas_received_total'),
        out: await messageCount(deps.registry, 'xmpp_stanzas_sent_total'),
      };
      return { node: deps.node, uptimeSeconds: Math.floor((deps.now() - startedAt) / 1000), sessions, messages, storage: deps.storage.backend };
    },
    announce: (host, body, subject) => announce(deps, host, body, subject),
    backup: (dir) => backup(deps, dir),
  };
}

async function announce(deps: AdminPortDeps, host: string, body: string, subject: string | undefined): Promise<number> {
  const domain = host.toLowerCase();
  if (!deps.hosts.includes(domain)) throw new AdminError('item-not-found', `unknown host '${host}'; served hosts: ${deps.hosts.join(', ')}`);
  // XEP-0133 §4.23 (send announcement to online users): a headline to each available resource;
  // hibernating ones get it through their XEP-0198 queue.
  const targets = [...deps.sessions.all].filter((s) => !s.destroyed && s.host === domain && s.full_jid !== undefined && s.available);
  let sent = 0;
  for (const s of targets) {
    if (sent > 0 && sent % ANNOUNCE_BATCH === 0) await nextTurn();
    if (s.destroyed) continue;
    s.send(x('message', { type: 'headline', from: domain, to: s.full_jid, id: randomId(12) },
      subject === undefined ? undefined : x('subject', {}, subject), x('body', {}, body)));
    sent++;
  }
  return sent;
}

async function backup(deps: AdminPortDeps, dir: string): Promise<string> {
  const copy = deps.storage.backup?.bind(deps.storage);
  if (!copy) throw new AdminError('not-allowed', `STORAGE=${deps.storage.backend} has no built-in backup: use pg_dump`);
  return writeBackup(dir, deps.backupFile, copy);
}

/**
 * Creates `dir`/`name` (0600 from the first byte: it holds SCRAM keys and
 * messages; never over an existing file) and has `copy` fill it; a failed
 * copy leaves nothing behind. Also used by the CLI when the server is stopped.
 */
export async function writeBackup(dir: string, name: string, copy: (file: string) => Promise<unknown>): Promise<string> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, name);
  try {
    closeSync(openSync(file, 'wx', 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new AdminError('conflict', `${file} already exists; not overwritten`);
    throw err;
  }
  try {
    await copy(file);
  } catch (err) {
    rmSync(file, { force: true });
    throw err;
  }
  return file;
}
