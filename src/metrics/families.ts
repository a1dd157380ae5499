import { Counter, Histogram, type CounterConfiguration, type Registry } from 'prom-client';
import type { CoreMetrics, HandOverTarget, Limit, ResumeOutcome, SessionEndReason, StanzaKind, Transport } from '../xmpp/metrics-port.js';

export const TRANSPORTS: readonly Transport[] = ['websocket', 'bosh'];
const KINDS: readonly StanzaKind[] = ['message', 'presence', 'iq'];
const END_REASONS: readonly SessionEndReason[] = ['closed', 'stream-error', 'conflict', 'timeout', 'resume-timeout', 'shutdown', 'kicked', 'dropped', 'resumed', 'released'];
const OUTCOMES: readonly ResumeOutcome[] = ['resumed', 'unknown-smid', 'wrong-user', 'timed-out', 'replaced', 'handled-count-too-high'];
const HAND_OVER: readonly HandOverTarget[] = ['offline', 'resource', 'bounced'];
const LIMITS: readonly Limit[] = ['size', 'depth', 'rate', 'per-ip', 'resources', 'roster', 'blocklist', 'offline', 'pep', 'other'];

type Child = { inc(value?: number): void };

/** A counter whose series the hot path moves: see hotCounter. */
export interface HotCounter { series(...labelValues: string[]): Child }

/**
 * A Counter for the hot path. A prom-client `labels()` child still hashes
 * and validates its label values at every `inc`, and allocates a result
 * object: per stanza and per frame that was 3 to 8 % of a message's or a
 * resume's CPU (the gateway's profile, bench/RESULTS.md). Here each series
 * is a number the hot path adds to, copied into the Counter when it is
 * scraped. Every series made is exported from the first scrape, at 0, so a
 * rate() over it starts at 0 instead of being absent.
 */
export function hotCounter(config: CounterConfiguration<string>): HotCounter {
  const all: Array<{ readonly labels: Record<string, string>; n: number }> = [];
  new Counter({
    ...config,
    collect() {
      this.reset();
      for (const s of all) this.inc(s.labels, s.n);
    },
  });
  const names = config.labelNames ?? [];
  return {
    series(...values) {
      const s = { labels: Object.fromEntries(names.map((name, i) => [name, values[i]!])), n: 0 };
      all.push(s);
      return { inc: (value = 1) => { s.n += value; } };
    },
  };
}

/** One series per label value (after `prefix`), made once: the hot path indexes an object. */
export function bound<V extends string>(counter: HotCounter, values: readonly V[], ...prefix: string[]): Record<V, Child> {
  return Object.fromEntries(values.map((v) => [v, counter.series(...prefix, v)])) as Record<V, Child>;
}

function byTransport<V extends string>(counter: HotCounter, values: readonly V[]): Record<Transport, Record<V, Child>> {
  return { websocket: bound(counter, values, 'websocket'), bosh: bound(counter, values, 'bosh') };
}

/** Stanzas, bytes and session ends (issue 17 item 1), by transport. */
export function trafficMetrics(registry: Registry): Pick<CoreMetrics, 'stanzaIn' | 'stanzaOut' | 'bytesIn' | 'bytesOut' | 'sessionEnded'> {
  const registers = [registry];
  const inbound = byTransport(hotCounter({ name: 'xmpp_stanzas_received_total', help: 'Stanzas received from clients, by transport and kind (message, presence, iq)', labelNames: ['transport', 'kind'], registers }), KINDS);
  const outbound = byTransport(hotCounter({ name: 'xmpp_stanzas_sent_total', help: 'Stanzas sent to client sessions, by transport and kind (message, presence, iq)', labelNames: ['transport', 'kind'], registers }), KINDS);
  const received = bound(hotCounter({ name: 'xmpp_received_bytes_total', help: 'Bytes received from clients (WebSocket frames, BOSH bodies)', labelNames: ['transport'], registers }), TRANSPORTS);
  const sent = bound(hotCounter({ name: 'xmpp_sent_bytes_total', help: 'Bytes sent to clients (WebSocket frames, BOSH bodies)', labelNames: ['transport'], registers }), TRANSPORTS);
  const ended = byTransport(hotCounter({ name: 'xmpp_sessions_ended_total', help: `Sessions ended, by transport and reason (${END_REASONS.join(', ')})`, labelNames: ['transport', 'reason'], registers }), END_REASONS);
  const duration = new Histogram({
    name: 'xmpp_session_duration_seconds', help: 'Lifetime of ended sessions', labelNames: ['transport'], registers,
    buckets: [1, 10, 60, 600, 3600, 6 * 3600, 24 * 3600],
  });
  const lifetimes = { websocket: duration.labels('websocket'), bosh: duration.labels('bosh') };
  return {
    stanzaIn: (kind, transport) => inbound[transport][kind].inc(),
    stanzaOut: (kind, transport) => outbound[transport][kind].inc(),
    bytesIn: (transport, bytes) => received[transport].inc(bytes),
    bytesOut: (transport, bytes) => sent[transport].inc(bytes),
    sessionEnded: (transport, seconds, reason) => {
      lifetimes[transport].observe(seconds);
      ended[transport][reason].inc();
    },
  };
}

type SmPort = Pick<CoreMetrics, 'smEnabled' | 'smResume' | 'smHibernation' | 'smResumeTimeout' | 'smHandedOver' | 'smQueueDepth'>;

/** XEP-0198 stream management, with the transports before and after a resumption (what no other server reports). */
export function smMetrics(registry: Registry): SmPort {
  const registers = [registry];
  const enabled = bound(hotCounter({ name: 'xmpp_sm_enabled_total', help: 'XEP-0198 stream management enabled, by transport', labelNames: ['transport'], registers }), TRANSPORTS);
  const resumes = hotCounter({
    name: 'xmpp_sm_resumes_total', help: `XEP-0198 resumptions by outcome (${OUTCOMES.join(', ')}), and the transport before (none: not held here) and after`,
    labelNames: ['outcome', 'from', 'to'], registers,
  });
  const byOutcome = Object.fromEntries(OUTCOMES.map((o) => [o, {
    websocket: bound(resumes, TRANSPORTS, o, 'websocket'), bosh: bound(resumes, TRANSPORTS, o, 'bosh'), none: bound(resumes, TRANSPORTS, o, 'none'),
  }])) as Record<ResumeOutcome, Record<Transport | 'none', Record<Transport, Child>>>;
  const hibernation = new Histogram({
    name: 'xmpp_sm_hibernation_seconds', help: 'Time a session hibernated before it was resumed', registers,
    buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800],
  });
  const timeouts = new Counter({ name: 'xmpp_sm_resume_timeouts_total', help: 'Hibernating sessions not resumed within their resume timeout', registers });
  const handedOver = bound(hotCounter({
    name: 'xmpp_sm_handed_over_total', help: 'Undelivered stanzas of ended sessions, by where they went (offline storage, another resource, bounced)',
    labelNames: ['to'], registers,
  }), HAND_OVER);
  const depth = new Histogram({
    name: 'xmpp_sm_queue_depth', help: 'Unacknowledged stanzas of a session when its client acknowledges (sampled at each <a/>)', registers,
    buckets: [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
  });
  return {
    smEnabled: (transport) => enabled[transport].inc(),
    smResume: (outcome, from, to) => byOutcome[outcome][from][to].inc(),
    smHibernation: (seconds) => hibernation.observe(seconds),
    smResumeTimeout: () => timeouts.inc(),
    smHandedOver: (to, count) => handedOver[to].inc(count),
    smQueueDepth: (unacked) => depth.observe(unacked),
  };
}

/** Offline storage (XEP-0160) and the limits that refuse what a client sends or asks for. */
export function storeAndLimitMetrics(registry: Registry): Pick<CoreMetrics, 'offline' | 'limitRefused'> {
  const registers = [registry];
  const offline = bound(hotCounter({
    name: 'xmpp_offline_messages_total', help: 'XEP-0160 offline messages stored, delivered, and refused over the quota', labelNames: ['event'], registers,
  }), ['stored', 'delivered', 'refused-quota'] as const);
  const limits = bound(hotCounter({ name: 'xmpp_limit_refusals_total', help: `Requests refused by a configured limit, by limit (${LIMITS.join(', ')})`, labelNames: ['limit'], registers }), LIMITS);
  return {
    offline: (event, count = 1) => offline[event].inc(count),
    limitRefused: (limit) => limits[limit].inc(),
  };
}
