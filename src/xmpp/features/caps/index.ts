import { NS, x, type XmlElement } from '../../../xml/index.js';
import { tryParseJid, type Jid } from '../../../jid/index.js';
import type { ModuleContext } from '../../context.js';
import { PRIORITY } from '../../priorities.js';
import { randomId } from '../../../util/random.js';
import { capsVer, supportedHash } from './hash.js';

export interface CapsOptions {
  /** Distinct verification strings whose features are kept; the least recently used goes first. */
  readonly maxEntries: number;
  /** A disco#info result whose features take more UTF-8 bytes than this is not cached (nor used): the cache's bytes stay bounded. */
  readonly maxEntryBytes: number;
  /** Queries waiting for their answer at once; more are not sent (their clients count as featureless). */
  readonly maxPending: number;
  /** How long a client has to answer the disco#info query. */
  readonly timeoutMs: number;
}

/** What XEP-0115 tells of a client: the features its `<c/>` stands for, learnt once per ver. */
export interface Caps {
  /** The features of the `<c/>` of a presence if already known, else undefined. */
  known(c: XmlElement | undefined): ReadonlySet<string> | undefined;
  /** The features of `c`, asking `jid` (the full JID that sent it) once per ver when unknown; undefined if it cannot tell. */
  resolve(jid: Jid, c: XmlElement | undefined): Promise<ReadonlySet<string> | undefined>;
}

interface Waiting {
  readonly to: string;
  readonly resolve: (query: XmlElement | undefined) => void;
}

/**
 * Entity capabilities (XEP-0115) as a server learns them: the `<c/>` a
 * client puts in its presence names a hash of its disco#info; the server
 * asks one client per ver (through the router, so a session on another
 * node answers too: that node sends the answer back here, cluster/answers.ts),
 * checks the answer hashes to that ver (§5.4: an answer that does not is
 * never cached), and keeps the features by ver in a bounded LRU map.
 * Cluster-neutral: nothing here knows where a session lives.
 */
export function register(ctx: ModuleContext, opts: CapsOptions): Caps {
  const cache = new Map<string, ReadonlySet<string>>();
  const inFlight = new Map<string, Promise<ReadonlySet<string> | undefined>>();
  const waiting = new Map<string, Waiting>();

  const keyOf = (c: XmlElement | undefined): string | undefined => {
    const hash = c?.attr('hash');
    const ver = c?.attr('ver');
    // §5.1: a <c/> without a registered hash is the legacy format, which cannot be verified.
    return c !== undefined && supportedHash(hash) && ver ? `${hash} ${ver}` : undefined;
  };
  const known = (c: XmlElement | undefined): ReadonlySet<string> | undefined => {
    const key = keyOf(c);
    const features = key === undefined ? undefined : cache.get(key);
    if (features) { cache.delete(key!); cache.set(key!, features); }
    return features;
  };
  const remember = (key: string, features: ReadonlySet<string>): void => {
    cache.set(key, features);
    for (const oldest of cache.keys()) {
      if (cache.size <= opts.maxEntries) break;
      cache.delete(oldest);
    }
  };

  /** §6.2: disco#info to the full JID, on the node `node#ver`. */
  const ask = (jid: Jid, c: XmlElement): Promise<XmlElement | undefined> => {
    const id = `caps-${randomId(9)}`;
    const iq = x('iq', { xmlns: NS.CLIENT, type: 'get', id, from: jid.domain, to: jid.full },
      x('query', { xmlns: NS.DISCO_INFO, node: `${c.attr('node') ?? ''}#${c.attr('ver')!}` }));
    return new Promise((resolve) => {
      const timer = setTimeout(() => { waiting.delete(id); resolve(undefined); }, opts.timeoutMs);
      timer.unref();
      waiting.set(id, { to: jid.full, resolve: (q) => { clearTimeout(timer); waiting.delete(id); resolve(q); } });
      void ctx.router.route(null, iq, jid);
    });
  };

  const learn = async (key: string, jid: Jid, c: XmlElement): Promise<ReadonlySet<string> | undefined> => {
    const query = await ask(jid, c);
    if (!query) return undefined;
    const features = query.getChildren('feature').map((f) => f.attr('var') ?? '');
    if (features.reduce((n, f) => n + Buffer.byteLength(f), 0) > opts.maxEntryBytes || capsVer(query, c.attr('hash')!) !== c.attr('ver')) return undefined;
    const set = new Set(features);
    remember(key, set);
    return set;
  };

  // The client's answer comes back addressed to the server's domain; ours are taken here (a client on another
  // node: its node routes the answer here again, with no origin and the from it stamped).
  ctx.hooks.deliver('iq/host', ({ origin, stanza }) => {
    const type = stanza.attr('type');
    const entry = type === 'result' || type === 'error' ? waiting.get(stanza.attr('id') ?? '') : undefined;
    if (!entry || tryParseJid(stanza.attr('from') ?? '')?.full !== entry.to || (origin && origin.full_jid !== entry.to)) return undefined;
    entry.resolve(type === 'result' ? stanza.getChild('query', NS.DISCO_INFO) : undefined);
    return 'delivered';
  }, PRIORITY.route.onBehalf);

  // The query timers are this module's: none outlives the server.
  ctx.hooks.notify('server-shutdown', () => {
    for (const entry of [...waiting.values()]) entry.resolve(undefined);
  }, PRIORITY.lifecycle.default);

  return {
    known,
    resolve(jid, c) {
      const key = keyOf(c);
      if (key === undefined) return Promise.resolve(undefined);
      const features = known(c);
      if (features) return Promise.resolve(features);
      let pending = inFlight.get(key);
      if (!pending) {
        if (inFlight.size >= opts.maxPending) return Promise.resolve(undefined);
        pending = learn(key, jid, c!).finally(() => inFlight.delete(key));
        inFlight.set(key, pending);
      }
      return pending;
    },
  };
}
