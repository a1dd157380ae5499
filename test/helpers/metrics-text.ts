/**
 * Reads samples out of a real /metrics scrape (the Prometheus text format),
 * so tests see exactly what Prometheus would: a tiny parser, not prom-client's
 * registry objects.
 */
import type { TestServer } from './server.js';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(LABEL)) labels[k!] = v!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** GET /metrics over HTTP, parsed. */
export async function scrape(server: Pick<TestServer, 'httpUrl'>): Promise<Sample[]> {
  const res = await fetch(`${server.httpUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** The sum of every sample named `name` whose labels include `labels` (0 when none). */
export function value(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Scrapes now; `delta(name, labels)` then says how much a sample moved since, by scraping again. */
export async function baseline(server: Pick<TestServer, 'httpUrl'>): Promise<(name: string, labels?: Readonly<Record<string, string>>) => Promise<number>> {
  const before = await scrape(server);
  return async (name, labels = {}) => value(await scrape(server), name, labels) - value(before, name, labels);
}
