import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import { serialize, x } from '../xml/index.js';

export interface HttpOptions {
  readonly websocketPath: string;
  /** Absent until BOSH is served. */
  readonly boshPath?: string;
  /** False while starting or shutting down: /readyz answers 503. */
  readonly ready: () => boolean;
}

/**
 * For the session endpoints (WebSocket upgrade, BOSH POST): the request's
 * logger is the server's own, not a pino child bound to a request id made
 * for every request (1.5 % of the CPU of a login, as much per BOSH request).
 * Request logging is off and what these routes log carries the session id.
 */
export function sessionRouteLogger<L>(logger: L): L {
  return logger;
}

/** The public base of a request: scheme and host as the browser sees them (trusted proxies only). */
function origin(req: FastifyRequest, secureScheme: string, plainScheme: string): string {
  return `${req.protocol === 'https' ? secureScheme : plainScheme}://${req.host}`;
}

/** /healthz, /readyz, /metrics and XEP-0156 host-meta. */
export function registerHttpRoutes(app: FastifyInstance, registry: Registry, opts: HttpOptions): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    if (!opts.ready()) return reply.code(503).send({ status: 'not ready' });
    return { status: 'ready' };
  });
  app.get('/metrics', async (_req, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });

  // XEP-0156 §3: advertise the WebSocket (RFC 7395 §4) and BOSH endpoints.
  const links = (req: FastifyRequest) => {
    const out = [{ rel: 'urn:xmpp:alt-connections:websocket', href: `${origin(req, 'wss', 'ws')}${opts.websocketPath}` }];
    if (opts.boshPath) out.push({ rel: 'urn:xmpp:alt-connections:xbosh', href: `${origin(req, 'https', 'http')}${opts.boshPath}` });
    return out;
  };
  app.get('/.well-known/host-meta', async (req, reply) => {
    const xrd = x('XRD', { xmlns: 'http://docs.oasis-open.org/ns/xri/xrd-1.0' });
    for (const l of links(req)) xrd.append(x('Link', l));
    reply.type('application/xrd+xml; charset=utf-8').header('access-control-allow-origin', '*');
    return `<?xml version='1.0' encoding='utf-8'?>\n${serialize(xrd)}`;
  });
  app.get('/.well-known/host-meta.json', async (req, reply) => {
    reply.header('access-control-allow-origin', '*');
    return { links: links(req) };
  });
}
