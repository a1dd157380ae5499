import { Counter, Histogram, type Registry } from 'prom-client';
import type { Storage } from '../storage/index.js';

/** The ports of Storage whose methods are timed (the op label is `port.method`: a bounded set, fixed by the types). */
const PORTS = ['users', 'offline', 'vcards', 'rosters', 'blocklists', 'smState', 'pep', 'fastTokens', 'archive'] as const;

export interface StorageMetrics {
  observe(op: string, seconds: number, failed: boolean): void;
}

export function storageMetrics(registry: Registry): StorageMetrics {
  const registers = [registry];
  const seconds = new Histogram({
    name: 'xmpp_storage_operation_seconds', help: 'Storage operations by op (port.method), successful or not', labelNames: ['op'], registers,
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  const errors = new Counter({ name: 'xmpp_storage_errors_total', help: 'Storage operations that failed, by op (port.method)', labelNames: ['op'], registers });
  // Bound once per op on first use (the op set is the ports' method names, fixed by the types).
  const children = new Map<string, { time: { observe(v: number): void }; error: { inc(): void } }>();
  return {
    observe(op, s, failed) {
      let child = children.get(op);
      if (!child) children.set(op, child = { time: seconds.labels(op), error: errors.labels(op) });
      child.time.observe(s);
      if (failed) child.error.inc();
    },
  };
}

/**
 * `storage` with every port method timed, wrapped once at wiring time
 * (server.ts) instead of at each call site. A Proxy, so a method replaced
 * later on the inner port (a test's spy) is still the one called; only
 * functions of the known ports are wrapped, so the op label stays bounded.
 */
export function timedStorage(inner: Storage, metrics: StorageMetrics): Storage {
  const ports = new Map<string | symbol, object>();
  for (const port of PORTS) ports.set(port, timedPort(inner[port], port, metrics));
  return new Proxy(inner, { get: (target, prop, receiver) => ports.get(prop) ?? Reflect.get(target, prop, receiver) });
}

function timedPort<T extends object>(port: T, name: string, metrics: StorageMetrics): T {
  const wrapped = new Map<string | symbol, unknown>();
  return new Proxy(port, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      let fn = wrapped.get(prop);
      if (fn === undefined) wrapped.set(prop, fn = timed(target, prop, `${name}.${prop}`, metrics));
      return fn;
    },
  });
}

function timed(target: object, method: string, op: string, metrics: StorageMetrics): (...args: unknown[]) => unknown {
  return (...args) => {
    const start = performance.now();
    const done = (failed: boolean): void => metrics.observe(op, (performance.now() - start) / 1000, failed);
    let result: unknown;
    try {
      // Looked up at each call: the current method, as the shutdown ledger's proxy does it.
      result = (Reflect.get(target, method) as (...a: unknown[]) => unknown).apply(target, args);
    } catch (err) {
      done(true);
      throw err;
    }
    if (!(result instanceof Promise)) { done(false); return result; }
    return result.then((v: unknown) => { done(false); return v; }, (err: unknown) => { done(true); throw err; });
  };
}
