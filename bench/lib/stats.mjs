// Latency histogram with 1 % wide logarithmic buckets from 1 µs to ~10 min:
// constant memory per worker, mergeable across workers, percentiles within 1 %.

const BASE = Math.log(1.01);
const MIN_MS = 0.001;
const SIZE = Math.ceil(Math.log(600000 / MIN_MS) / BASE) + 2;

export class Histogram {
  constructor() {
    this.counts = new Uint32Array(SIZE);
    this.n = 0;
    this.sum = 0;
    this.max = 0;
  }

  /** @param {number} ms */
  add(ms) {
    const i = ms <= MIN_MS ? 0 : Math.min(SIZE - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / BASE));
    this.counts[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }

  /** @param {{ counts: ArrayLike<number>, n: number, sum: number, max: number }} other */
  merge(other) {
    for (let i = 0; i < SIZE; i++) this.counts[i] += other.counts[i];
    this.n += other.n;
    this.sum += other.sum;
    this.max = Math.max(this.max, other.max);
    return this;
  }

  /** @param {number} q in [0, 1] @returns {number} milliseconds (bucket midpoint) */
  quantile(q) {
    if (this.n === 0) return NaN;
    const target = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < SIZE; i++) {
      seen += this.counts[i];
      if (seen >= target) {
        if (i === 0) return MIN_MS;
        const lo = MIN_MS * Math.exp((i - 1) * BASE);
        return Math.min(this.max, lo * Math.sqrt(1.01));
      }
    }
    return this.max;
  }

  toJSON() {
    return { counts: this.counts, n: this.n, sum: this.sum, max: this.max };
  }

  /** @param {{ counts: ArrayLike<number>, n: number, sum: number, max: number }} h */
  static from(h) {
    return new Histogram().merge(h);
  }
}

/** @param {number[]} xs */
export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/** Wall-clock milliseconds comparable across worker threads. */
export const now = () => performance.timeOrigin + performance.now();
