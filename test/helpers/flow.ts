import type { Test } from 'tap';
import { type TestServer, withUsers } from './server.js';
import type { Feature } from '../../src/server.js';
import type { Session } from '../../src/xmpp/session.js';

/** Inbound shaping out of the way, for tests of the output side (issue 10). */
export const UNSHAPED = { MAX_INBOUND_BYTES_PER_SECOND: String(64 * 1024 * 1024), MAX_INBOUND_BURST_BYTES: String(64 * 1024 * 1024) };

/** The value of xmpp_flow_control_total for one transport and event, from /metrics. */
export async function flowCount(server: TestServer, transport: 'websocket' | 'bosh', event: string): Promise<number> {
  const text = await (await fetch(`${server.httpUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('xmpp_flow_control_total{') && l.includes(`transport="${transport}"`) && l.includes(`event="${event}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A server with PLAIN allowed, `env` and the given accounts (password = first letter), closed at the end of `t`. */
export async function flowServer(t: Test, env: Record<string, string>, users: readonly string[], features: readonly Feature[] = []): Promise<TestServer> {
  return withUsers(t, Object.fromEntries(users.map((u) => [u, u[0]!])), { ALLOW_INSECURE_PLAIN: 'true', ...env }, undefined, { features });
}

/** A feature that counts the core's 'session-drained' events for sessions `which` picks (nothing a client sees shows them). */
export function drainCounter(which: (session: Session) => boolean): { readonly feature: Feature; count(): number } {
  let drained = 0;
  return {
    feature: (ctx) => { ctx.hooks.notify('session-drained', ({ session }) => { if (which(session)) drained++; }, 0); },
    count: () => drained,
  };
}
