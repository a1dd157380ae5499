import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import type { OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import { serialize } from '../../xml/index.js';
import type { TransportHost } from '../../xmpp/transport-host.js';
import type { Log } from '../../xmpp/log.js';
import { terminateBody, type TerminalCondition } from './body.js';
import { HOP_HEADER, HOP_NODE_HEADER, MISROUTED_STATUS, type BoshForwarder, type ClientInfo, type HttpReply } from './types.js';
import { sessionRouteLogger } from '../route-log.js';
import { BoshTransport, DEFAULT_CONTENT_TYPE, type BoshOptions } from './transport.js';

// Static text, no client data in it.
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BOSH endpoint</title></head>
<body><p>This is an XMPP over BOSH (XEP-0124, XEP-0206) endpoint. Point your XMPP client's BOSH URL here;
requests are HTTP POSTs of &lt;body/&gt; elements.</p></body></html>
`;

/** A fastify reply as the transport sees it: send once, or learn that the client went away. */
function httpReply(reply: FastifyReply): HttpReply {
  let done = false;
  /** A streamed body not yet all written: the client may still go away, and abort still applies. */
  let streaming = false;
  const headed = (status: number, contentType: string): FastifyReply => reply.code(status)
    .header('content-type', contentType)
    // Responses depend on the session's state: never cache, never sniff (XEP-0124 §7.1 content).
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff');
  return {
    send(status, contentType, body) {
      if (done) return;
      done = true;
      headed(status, contentType).send(body);
    },
    // Written here, not by fastify: a body that fails must drop the connection, never become fastify's error
    // (an error response, a terminal condition for a session that lives on, would follow if nothing was written yet).
    stream(status, contentType, body) {
      if (done) return void body.destroy();
      done = true;
      streaming = true;
      headed(status, contentType).hijack();
      reply.raw.once('finish', () => { streaming = false; });
      reply.raw.writeHead(status, reply.getHeaders() as OutgoingHttpHeaders);
      pipeline(body, reply.raw, () => undefined);
    },
    onGone(fn) {
      reply.raw.once('close', () => {
        if (done && !streaming) return;
        done = true;
        streaming = false;
        fn();
      });
    },
    // Not `done` yet: the close that follows tells onGone.
    abort() {
      if (!done || streaming) reply.raw.destroy();
    },
  };
}

function client(req: FastifyRequest): ClientInfo {
  return { ip: req.ip, secure: req.protocol === 'https' };
}

/**
 * A request a cluster peer forwarded (HOP_HEADER): the peer is this node's
 * trusted proxy, whatever TRUSTED_PROXIES says, and it replaced the client's
 * X-Forwarded-For/-Proto by the address and scheme it established by its own
 * (identical) trust rules. 'refused': the header without the cluster's proof
 * (a client cannot claim to be a peer). 'misrouted': a peer's request meant
 * for another node (HOP_NODE_HEADER; a peer of an earlier version names none).
 * undefined: not forwarded, or no cluster (then the header means nothing and
 * is ignored).
 */
function peerClient(req: FastifyRequest, forwarder: BoshForwarder | undefined): ClientInfo | 'refused' | 'misrouted' | undefined {
  if (forwarder === undefined) return undefined;
  const token = req.headers[HOP_HEADER];
  if (token === undefined) return undefined;
  if (typeof token !== 'string' || !forwarder.fromPeer(token)) return 'refused';
  const meant = req.headers[HOP_NODE_HEADER];
  if (meant !== undefined && meant !== forwarder.node) return 'misrouted';
  // The peer sends one address; were a proxy between the nodes to append its own, the peer's is the first.
  const ip = String(req.headers['x-forwarded-for'] ?? '').split(',')[0]!.trim();
  return { ip: ip || req.ip, secure: req.headers['x-forwarded-proto'] === 'https' };
}

/**
 * Fastify's own errors on the BOSH route become terminal binding
 * conditions (XEP-0124 §17.2) so clients always get a <body/>: an oversized
 * body is policy-violation, any other request error bad-request.
 */
function errorCondition(err: FastifyError): TerminalCondition {
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.statusCode === 413) return 'policy-violation';
  return err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? 'bad-request' : 'internal-server-error';
}

/**
 * Registers the XEP-0124/XEP-0206 endpoint at `opts.path`: POST for the
 * protocol, GET for a short page, OPTIONS for CORS preflight. Content-type
 * parsing, the error handler and CORS are scoped to this path only.
 */
export async function registerBosh(app: FastifyInstance, host: TransportHost, opts: BoshOptions, log: Log): Promise<BoshTransport> {
  const transport = new BoshTransport(host, opts, log);
  await app.register(async (scope) => {
    // XEP-0124 §4: clients may send any Content-Type (text/plain, form-encoded, none); it is ignored.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    // CORS for the listed origins only: the gateway's own pages need none, and a foreign page's
    // BOSH request is refused below (issue 13: one ALLOWED_ORIGINS list for both transports).
    {
      await scope.register(cors, {
        origin: opts.admission.anyOrigin ? '*' : (origin, cb) => cb(null, origin !== undefined && opts.admission.listed(origin)),
        methods: ['GET', 'HEAD', 'POST', 'OPTIONS'],
        allowedHeaders: ['Content-Type'],
        maxAge: 86400,
        strictPreflight: false,
      });
    }
    scope.setErrorHandler((err: FastifyError, _req, reply) => {
      const condition = errorCondition(err);
      // Fastify's bodyLimit (MAX_STANZA_SIZE) refused the body.
      if (condition === 'policy-violation') host.metrics.limitRefused('size');
      if (condition === 'internal-server-error') {
        host.metrics.internalError();
        log.error({ err }, 'bosh request failed');
      }
      return reply.code(200).header('content-type', DEFAULT_CONTENT_TYPE).send(serialize(terminateBody(condition)));
    });
    scope.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').send(PAGE));
    scope.options('/', async (_req, reply) => reply.code(204).header('allow', 'GET, HEAD, POST, OPTIONS').send());
    scope.post('/', { childLoggerFactory: sessionRouteLogger }, (req, reply) => {
      const peer = peerClient(req, opts.forwarder);
      if (peer === 'refused') {
        opts.admission.warnRefused('bosh-hop-refused', req.ip, log, {}, 'a BOSH request claimed to come from a cluster node without its proof');
        reply.code(403).header('content-type', DEFAULT_CONTENT_TYPE).send(serialize(terminateBody('policy-violation')));
        return;
      }
      // Not processed: the peer that sent it logs the address that led here and tells its client.
      if (peer === 'misrouted') return void reply.code(MISROUTED_STATUS).send();
      // A peer's request passed the origin check on the node that received it (same configuration).
      if (peer === undefined && !opts.admission.originAllowed(req)) {
        opts.admission.note({ reason: 'origin', ip: req.ip, origin: req.headers.origin }, host.metrics, log);
        reply.code(403).header('content-type', DEFAULT_CONTENT_TYPE).send(serialize(terminateBody('policy-violation')));
        return;
      }
      transport.handle(req.body as Buffer | undefined, peer ?? client(req), transport.track(httpReply(reply), peer !== undefined), peer !== undefined);
    });
  }, { prefix: opts.path });
  // Before the listener stops: answer every held request so shutdown does not wait for 'wait' to pass.
  app.addHook('preClose', async () => transport.shutdown());
  return transport;
}
