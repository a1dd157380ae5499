import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { serialize, x } from '../xml/index.js';
import { ownAuthority } from '../util/own-host.js';
import { registerMetricsRoute, type PeerFilter } from './metrics-access.js';
import type { NotReadyReason } from './readiness.js';
import { machineReadiness, type ProcessReadiness } from './workers-readiness.js';

export interface HttpOptions {
  readonly websocketPath: string;
  /** Absent until BOSH is served. */
  readonly boshPath?: string;
  /** False while starting or shutting down: /readyz answers 503. */
  readonly ready: () => boolean;
  /** The store and the event loop (readiness.ts): a reason makes /readyz answer 503 with it. */
  readonly health?: () => Promise<NotReadyReason | undefined>;
  /** PUBLIC_URL: the base browsers reach us at; '' to derive it from the request. */
  readonly publicUrl: string;
  /** The served XMPP domains: the only Host names host-meta answers for without PUBLIC_URL. */
  readonly domains: readonly string[];
  /** METRICS_ALLOW; undefined when /metrics has a listener of its own (METRICS_PORT). */
  readonly metricsAllowed?: PeerFilter;
}

/**
 * The public base of a request, as the browser sees it: PUBLIC_URL when set;
 * otherwise the scheme (trusted proxies only) and the Host header, but only
 * when that names a served domain or the address the request really came
 * in on (util/own-host.ts says why).
 */
function publicBase(req: FastifyRequest, opts: HttpOptions): { secure: boolean; authority: string } | undefined {
  if (opts.publicUrl !== '') {
    const url = new URL(opts.publicUrl);
    return { secure: url.protocol === 'https:', authority: `${url.host}${url.pathname.replace(/\/+$/, '')}` };
  }
  const authority = ownAuthority(req.host, req.socket.localAddress, opts.domains);
  return authority === undefined ? undefined : { secure: req.protocol === 'https', authority };
}

/** /healthz, /readyz, /metrics (unless METRICS_PORT) and XEP-0156 host-meta. */
export function registerHttpRoutes(app: FastifyInstance, registry: Registry, opts: HttpOptions): void {
  // Liveness: this process's own, whichever worker of WORKERS > 1 answers.
  app.get('/healthz', async () => ({ status: 'ok' }));
  const own = async (): Promise<ProcessReadiness> => {
    if (!opts.ready()) return { status: 'not ready' };
    const reason = await opts.health?.();
    return reason === undefined ? { status: 'ready' } : { status: 'not ready', reason };
  };
  // With WORKERS > 1, every worker's readiness, gathered by the primary (workers-readiness.ts).
  const readiness = machineReadiness(own);
  app.get('/readyz', async (_req, reply) => {
    const body = await readiness();
    return reply.code(body.status === 'ready' ? 200 : 503).send(body);
  });
  if (opts.metricsAllowed) registerMetricsRoute(app, registry, opts.metricsAllowed);

  // XEP-0156 §3: advertise the WebSocket (RFC 7395 §4) and BOSH endpoints.
  type Link = { rel: string; href: string };
  // Any page may read host-meta (XEP-0156 §3), its 404 included: without the header a cross-origin
  // browser sees a CORS failure where the answer is "not served here".
  const cors = (reply: FastifyReply) => reply.header('access-control-allow-origin', '*');
  const links = (req: FastifyRequest, reply: FastifyReply): Link[] | undefined => {
    const base = publicBase(req, opts);
    if (!base) return undefined;
    // A fixed PUBLIC_URL answer may be cached anywhere; one derived from the request may not be shared.
    reply.header('cache-control', opts.publicUrl !== '' ? 'public, max-age=3600' : 'private, no-store');
    cors(reply);
    const out = [{ rel: 'urn:xmpp:alt-connections:websocket', href: `${base.secure ? 'wss' : 'ws'}://${base.authority}${opts.websocketPath}` }];
    if (opts.boshPath) out.push({ rel: 'urn:xmpp:alt-connections:xbosh', href: `${base.secure ? 'https' : 'http'}://${base.authority}${opts.boshPath}` });
    return out;
  };
  const unknownHost = (reply: FastifyReply) => cors(reply).code(404).type('text/plain').header('cache-control', 'no-store')
    .send('host-meta is served for the XMPP domains of this server only (or set PUBLIC_URL)\n');
  app.get('/.well-known/host-meta', async (req, reply) => {
    const found = links(req, reply);
    if (!found) return unknownHost(reply);
    const xrd = x('XRD', { xmlns: 'http://docs.oasis-open.org/ns/xri/xrd-1.0' });
    for (const l of found) xrd.append(x('Link', l));
    reply.type('application/xrd+xml; charset=utf-8');
    return `<?xml version='1.0' encoding='utf-8'?>\n${serialize(xrd)}`;
  });
  app.get('/.well-known/host-meta.json', async (req, reply) => {
    const found = links(req, reply);
    return found ? { links: found } : unknownHost(reply);
  });
}
