import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CoreMetrics } from '../xmpp/metrics-port.js';
import type { SessionManager } from '../xmpp/session-manager.js';

/**
 * The gateway's Prometheus metrics on a registry of its own (not prom-client's
 * global one, so two servers can run in one test process), plus prom-client's
 * default process metrics.
 */
export function createMetrics(sessions: () => SessionManager | undefined): { registry: Registry; core: CoreMetrics } {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  new Gauge({
    name: 'xmpp_sessions',
    help: 'Current client sessions by transport and state',
    labelNames: ['transport', 'state'],
    registers: [registry],
    // Computed at scrape time: nothing to keep in step on the hot path.
    collect() {
      this.reset();
      const sm = sessions();
      if (!sm) return;
      for (const s of sm.all) {
        const state = s.conn === null ? 'hibernating' : s.full_jid !== undefined ? 'bound' : s.type === 'c2s' ? 'authenticated' : 'unauthenticated';
        this.inc({ transport: s.transport, state });
      }
    },
  });
  const stanzas = new Counter({ name: 'xmpp_stanzas_received_total', help: 'Stanzas received from clients', labelNames: ['kind'], registers: [registry] });
  const byKind = { message: stanzas.labels('message'), presence: stanzas.labels('presence'), iq: stanzas.labels('iq') };
  const streamErrors = new Counter({ name: 'xmpp_stream_errors_total', help: 'Streams closed with a stream error, by condition', labelNames: ['condition'], registers: [registry] });
  const sasl = new Counter({ name: 'xmpp_sasl_total', help: 'SASL outcomes', labelNames: ['mechanism', 'result'], registers: [registry] });
  const saslFailures = new Counter({ name: 'xmpp_sasl_failures_total', help: 'SASL failures by mechanism and RFC 6120 condition', labelNames: ['mechanism', 'condition'], registers: [registry] });
  const tokenLogins = new Counter({ name: 'xmpp_token_logins_total', help: 'Token (JWT) logins by result and reason (ok, expired, bad-signature, wrong-audience, ...)', labelNames: ['result', 'reason'], registers: [registry] });
  const started = new Counter({ name: 'xmpp_sessions_started_total', help: 'Sessions started', labelNames: ['transport'], registers: [registry] });
  const duration = new Histogram({
    name: 'xmpp_session_duration_seconds', help: 'Lifetime of ended sessions', labelNames: ['transport'], registers: [registry],
    buckets: [1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600],
  });
  const internal = new Counter({ name: 'xmpp_internal_errors_total', help: 'Unexpected exceptions caught at the edge', registers: [registry] });
  const restamped = new Counter({
    name: 'xmpp_client_from_restamped_total', registers: [registry],
    help: 'Client stanzas whose from named their own account with another resource, stamped with the bound JID',
  });
  const refused = new Counter({ name: 'xmpp_refused_total', help: 'New sessions refused before they started, by reason (origin, per-address limits)', labelNames: ['reason'], registers: [registry] });

  const sm = new Counter({ name: 'xmpp_sm_events_total', help: 'Stream management: sessions enabled, hibernated, resumed, failed resumes, resume timeouts', labelNames: ['event'], registers: [registry] });
  const flow = new Counter({
    name: 'xmpp_flow_control_total', help: 'Input paused for the output backlog (paused-output) or the inbound rate (paused-rate), and slow consumers dropped',
    labelNames: ['transport', 'event'], registers: [registry],
  });
  const fast = new Counter({
    name: 'xmpp_fast_tokens_total', help: 'FAST tokens (XEP-0484): issued, used, and refused logins by reason (unknown, replayed, wrong-agent, expired, wrong-mechanism)',
    labelNames: ['event'], registers: [registry],
  });
  const core: CoreMetrics = {
    stanzaIn: (kind) => byKind[kind].inc(),
    streamError: (condition) => streamErrors.inc({ condition }),
    sasl: (mechanism, result, condition) => {
      sasl.inc({ mechanism, result });
      if (condition !== undefined) saslFailures.inc({ mechanism, condition });
    },
    tokenLogin: (result, reason) => tokenLogins.inc({ result, reason }),
    sessionStarted: (transport) => started.inc({ transport }),
    sessionEnded: (transport, seconds) => duration.observe({ transport }, seconds),
    internalError: () => internal.inc(),
    fromRestamped: () => restamped.inc(),
    refused: (reason) => refused.inc({ reason }),
    sm: (event, count = 1) => sm.inc({ event }, count),
    flowControl: (transport, event) => flow.inc({ transport, event }),
    fast: (event) => fast.inc({ event }),
  };
  return { registry, core };
}
