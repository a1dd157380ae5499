import { NS, x, type XmlElement } from '../../xml/index.js';
import { PRIORITY } from '../priorities.js';
import { isPromise } from '../pipeline.js';
import { JidError, makeJid, normalizeResource } from '../../jid/index.js';
import { StanzaErrorException } from '../errors.js';
import type { ModuleContext } from '../context.js';
import type { Session } from '../session.js';
import { randomId } from '../../util/random.js';

export interface BindOptions {
  /** Connected resources one account may hold; more gets resource-constraint (RFC 6120 §7.6.2.1). */
  readonly maxResourcesPerUser: number;
}

/**
 * Resource binding (RFC 6120 §7) and the legacy session establishment of
 * RFC 3921 §3, advertised as optional (draft-cridland-xmpp-session-01) for
 * old clients.
 */
export function register(ctx: ModuleContext, opts: BindOptions): void {
  ctx.hooks.transform('stream-features', ({ session, features }) => {
    if (session.type !== 'c2s' || session.full_jid !== undefined) return;
    features.append(x('bind', { xmlns: NS.BIND }));
    features.append(x('session', { xmlns: NS.SESSION }, x('optional', {})));
  }, PRIORITY.features.bind);

  ctx.iq.register('both', 'set', NS.BIND, (session, _iq, payload) => {
    // RFC 6120 §7.7.2.1: a second bind on the same stream is not allowed.
    if (session.full_jid !== undefined) throw new StanzaErrorException('not-allowed', 'a resource is already bound');
    const requested = payload.getChildText('resource');
    let resource: string;
    try {
      resource = requested === undefined || requested.trim() === '' ? generated() : normalizeResource(requested);
    } catch (err) {
      if (err instanceof JidError) throw new StanzaErrorException('bad-request', 'the resource cannot be normalised');
      throw err;
    }
    const result = (): XmlElement => x('bind', { xmlns: NS.BIND }, x('jid', {}, session.full_jid!));
    const bound = bindResource(ctx, opts, session, resource);
    return isPromise(bound) ? bound.then(result) : result();
  }, { beforeBind: true });

  // RFC 3921 §3 session establishment: a no-op kept for old clients.
  ctx.iq.register('both', 'set', NS.SESSION, () => undefined, { beforeBind: true });
}

/**
 * Binds `resource` (already normalised) for an authenticated session, as
 * RFC 6120 §7 and Bind2 (XEP-0386) do it: the per-account limit, then the
 * conflict rule. Throws StanzaErrorException('resource-constraint') past the limit.
 */
export function bindResource(ctx: ModuleContext, opts: BindOptions, session: Session, resource: string): void | Promise<unknown> {
  const jid = makeJid(session.username!, session.host!, resource);
  const existing = ctx.sessions.get(jid.domain, jid.local, resource);
  if (existing === undefined && ctx.sessions.countResources(jid.domain, jid.local) >= opts.maxResourcesPerUser) {
    ctx.metrics.limitRefused('resources');
    throw new StanzaErrorException('resource-constraint', 'too many connected resources');
  }
  // RFC 6120 §7.7.2.2: our conflict policy is Prosody's default, "kick_old":
  // the old session gets a <conflict/> stream error and the new one binds.
  if (existing !== undefined && existing !== session) existing.close({ condition: 'conflict', text: 'replaced by a new connection' });
  // The result waits for what features load for a bound resource (its roster).
  return bindSession(ctx, session, jid.local, resource);
}

/** Makes `session` a connected resource and tells the features; a promise while they load what it needs. */
export function bindSession(ctx: ModuleContext, session: Session, username: string, resource: string): void | Promise<unknown> {
  const jid = makeJid(username, session.host!, resource);
  session.username = jid.local;
  session.resource = jid.resource;
  session.jid = jid;
  session.full_jid = jid.full;
  ctx.sessions.bind(session);
  const loaded = ctx.hooks.run('resource-bound', { session });
  return isPromise(loaded) ? loaded : undefined;
}

/** A server-chosen resource: unguessable and unique (RFC 6120 §7.6.2.1). */
function generated(): string {
  return `web-${randomId(9)}`;
}
