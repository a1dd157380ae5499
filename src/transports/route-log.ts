/**
 * For the session endpoints (WebSocket upgrade, BOSH POST): the request's
 * logger is the server's own, not a pino child bound to a request id made
 * for every request (1.5 % of the CPU of a login, as much per BOSH request).
 * Request logging is off and what these routes log carries the session id.
 */
export function sessionRouteLogger<L>(logger: L): L {
  return logger;
}
