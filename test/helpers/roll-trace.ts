/**
 * Where did a message go? The rolling-restart test's record of each message
 * it sends (when, and which node the session directory gave for its sender
 * and its recipient at that moment), of the roll's steps, and of every
 * node's whole output across its restarts (cluster.ts `logDir`). For a
 * message that never arrived, `explain` prints all of it with the server's
 * log lines that name the message's id: the debug lines at the points a
 * stanza can leave the live path (sm-push-unjournaled, sm-push-refused,
 * sm-settled, cluster-entry-no-session, sm-not-handed-over) or be sent a
 * second time (sm-resent: XEP-0198 §5 resumption; bosh-resent: a repeated
 * rid answered from the buffer, XEP-0124 §14.3; handed-over,
 * offline-stored, offline-delivered) need LOG_LEVEL=debug, which
 * ROLL_TRACE=1 in the test's environment turns on. A message delivered
 * twice is also explained by the clients (roll-run.ts arrivals and notes:
 * the BOSH response that carried each copy, a XEP-0203 delay, the client's
 * own resends), and any failure lists the nodes' incidents (a lost lease).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { connectRedis, keyPrefix, type Redis } from '../../src/cluster/redis.js';

/** The environment ROLL_TRACE=1 adds to every node. */
export const TRACE_ENV: Readonly<Record<string, string>> = process.env.ROLL_TRACE === '1' ? { LOG_LEVEL: 'debug' } : {};

interface Sent { readonly at: number; from: string; to: string }

export interface RollTrace {
  /** For cluster.ts's `logDir`. */
  readonly logDir: string;
  /** The cluster's Redis, where the owners are looked up (before the first `sent`). */
  connect(redisUrl: string): Promise<void>;
  /** A step of the roll (a SIGTERM, an exit, a restart). */
  step(what: string): void;
  /** A message `id` sent from `from` to `to` (full JIDs) now; the owners are looked up without waiting. */
  sent(id: string, from: string, to: string): void;
  /** One line per id: when it was sent, between which nodes, the roll around it and the log lines naming it. */
  explain(ids: readonly string[]): string[];
  /**
   * The nodes' log lines of events that end sessions outside the roll's plan (a node that lost its lease stops and
   * ends its sessions for good: what they had not acknowledged goes to offline storage, and their clients log in
   * afresh), with the late heartbeats that lead there: at any log level.
   */
  incidents(): string[];
}

const INCIDENTS = ['cluster-lease-lost', 'cluster-heartbeat-late', 'cluster-lease-renewed', 'cluster-node-down'].map((e) => `"event":"${e}"`);

export function rollTrace(t: Test): RollTrace {
  const logDir = mkdtempSync(join(tmpdir(), 'xwg-roll-'));
  // Traced runs keep the nodes' logs for a look afterwards (the path is printed).
  if (TRACE_ENV.LOG_LEVEL) t.comment(`node logs: ${logDir}`);
  else t.teardown(() => rmSync(logDir, { recursive: true, force: true }));
  let redis: Redis | undefined;
  let prefix = '';
  const start = Date.now();
  const steps: Array<{ at: number; what: string }> = [];
  const messages = new Map<string, Sent>();

  async function owner(full: string): Promise<string> {
    if (!redis) return 'unknown';
    const slash = full.indexOf('/');
    const entry = await redis.hGet(`${prefix}dir:${full.slice(0, slash)}`, full.slice(slash + 1)).catch(() => null);
    return entry ? String((JSON.parse(entry) as { node?: string }).node) : 'none';
  }

  function logLines(id: string): string[] {
    const needle = `"${id}"`;
    return grep((line) => line.includes(needle));
  }

  function grep(match: (line: string) => boolean): string[] {
    return readdirSync(logDir).flatMap((file) => readFileSync(join(logDir, file), 'utf8').split('\n')
      .filter(match).map((line) => `${file}: ${line}`));
  }

  return {
    logDir,
    async connect(redisUrl) {
      const conn = await connectRedis(redisUrl, { warn: () => undefined }, 'roll-trace');
      redis = conn;
      prefix = keyPrefix(redisUrl);
      t.teardown(() => { if (conn.isOpen) conn.destroy(); });
    },
    step(what) { steps.push({ at: Date.now() - start, what }); },
    sent(id, from, to) {
      const m: Sent = { at: Date.now() - start, from: '?', to: '?' };
      messages.set(id, m);
      void owner(from).then((n) => { m.from = n; });
      void owner(to).then((n) => { m.to = n; });
    },
    incidents() {
      return grep((line) => INCIDENTS.some((e) => line.includes(e)));
    },
    explain(ids) {
      return ids.map((id) => {
        const m = messages.get(id);
        if (!m) return `${id}: not recorded`;
        const before = steps.filter((s) => s.at <= m.at).at(-1);
        const after = steps.find((s) => s.at > m.at);
        return [
          `${id}: sent at ${m.at} ms (${start + m.at}) from ${m.from} to ${m.to}; after ${before ? `${before.what} (${before.at})` : 'start'}, before ${after ? `${after.what} (${after.at})` : 'the end'}`,
          ...logLines(id).map((l) => `  ${l}`),
        ].join('\n');
      });
    },
  };
}
