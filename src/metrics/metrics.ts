import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { BoshMetrics, CoreMetrics } from '../xmpp/metrics-port.js';
import type { SessionManager } from '../xmpp/session-manager.js';
import { boshMetrics } from './bosh.js';
import { smMetrics, storeAndLimitMetrics, trafficMetrics, TRANSPORTS } from './families.js';
import { storageMetrics, type StorageMetrics } from './storage.js';

export interface Metrics {
  readonly registry: Registry;
  readonly core: CoreMetrics;
  /** Handed to the BOSH transport (app.ts). */
  readonly bosh: BoshMetrics;
  /** For timedStorage (server.ts). */
  readonly storage: StorageMetrics;
}

/**
 * The gateway's Prometheus metrics on a registry of its own (not prom-client's
 * global one, so two servers can run in one test process), plus prom-client's
 * default process metrics. The names and labels are a contract with the
 * dashboard and alerts in deploy/ (README "Monitor" lists them, generated).
 */
export function createMetrics(sessions: () => SessionManager | undefined): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerSessionsGauge(registry, sessions);
  const registers = [registry];
  const streamErrors = new Counter({ name: 'xmpp_stream_errors_total', help: 'Streams closed with a stream error, by condition', labelNames: ['condition'], registers });
  const sasl = new Counter({ name: 'xmpp_sasl_total', help: 'SASL outcomes', labelNames: ['mechanism', 'result'], registers });
  const saslFailures = new Counter({ name: 'xmpp_sasl_failures_total', help: 'SASL failures by mechanism and RFC 6120 condition', labelNames: ['mechanism', 'condition'], registers });
  const tokenLogins = new Counter({ name: 'xmpp_token_logins_total', help: 'Token (JWT) logins by result and reason (ok, expired, bad-signature, wrong-audience, ...)', labelNames: ['result', 'reason'], registers });
  const started = new Counter({ name: 'xmpp_sessions_started_total', help: 'Sessions started', labelNames: ['transport'], registers });
  const startedBy = { websocket: started.labels('websocket'), bosh: started.labels('bosh') };
  const internal = new Counter({ name: 'xmpp_internal_errors_total', help: 'Unexpected exceptions caught at the edge', registers });
  const restamped = new Counter({
    name: 'xmpp_client_from_restamped_total', registers,
    help: 'Client stanzas whose from named their own account with another resource, stamped with the bound JID',
  });
  const refused = new Counter({ name: 'xmpp_refused_total', help: 'New sessions refused before they started, by reason (origin, per-address limits)', labelNames: ['reason'], registers });
  const sm = new Counter({ name: 'xmpp_sm_events_total', help: 'Stream management: sessions enabled, hibernated, resumed, failed resumes, resume timeouts', labelNames: ['event'], registers });
  const flow = new Counter({
    name: 'xmpp_flow_control_total', help: 'Input paused for the output backlog (paused-output) or the inbound rate (paused-rate), and slow consumers dropped',
    labelNames: ['transport', 'event'], registers,
  });
  const fast = new Counter({
    name: 'xmpp_fast_tokens_total', help: 'FAST tokens (XEP-0484): issued, used, and refused logins by reason (unknown, replayed, wrong-agent, expired, wrong-mechanism)',
    labelNames: ['event'], registers,
  });
  const core: CoreMetrics = {
    ...trafficMetrics(registry),
    ...smMetrics(registry),
    ...storeAndLimitMetrics(registry),
    streamError: (condition) => streamErrors.inc({ condition }),
    sasl: (mechanism, result, condition) => {
      sasl.inc({ mechanism, result });
      if (condition !== undefined) saslFailures.inc({ mechanism, condition });
    },
    tokenLogin: (result, reason) => tokenLogins.inc({ result, reason }),
    sessionStarted: (transport) => startedBy[transport].inc(),
    internalError: () => internal.inc(),
    fromRestamped: () => restamped.inc(),
    refused: (reason) => refused.inc({ reason }),
    sm: (event, count = 1) => sm.inc({ event }, count),
    flowControl: (transport, event) => flow.inc({ transport, event }),
    fast: (event) => fast.inc({ event }),
  };
  return { registry, core, bosh: boshMetrics(registry), storage: storageMetrics(registry) };
}

function registerSessionsGauge(registry: Registry, sessions: () => SessionManager | undefined): void {
  new Gauge({
    name: 'xmpp_sessions',
    help: 'Current client sessions by transport and state',
    labelNames: ['transport', 'state'],
    registers: [registry],
    // Computed at scrape time: nothing to keep in step on the hot path.
    collect() {
      this.reset();
      // Every series present, at 0 when empty: a dashboard's sum does not go missing.
      for (const transport of TRANSPORTS) for (const state of STATES) this.set({ transport, state }, 0);
      const sm = sessions();
      if (!sm) return;
      for (const s of sm.all) {
        const state = s.conn === null ? 'hibernating' : s.full_jid !== undefined ? 'bound' : s.type === 'c2s' ? 'authenticated' : 'unauthenticated';
        this.inc({ transport: s.transport, state });
      }
    },
  });
}

const STATES = ['unauthenticated', 'authenticated', 'bound', 'hibernating'] as const;
