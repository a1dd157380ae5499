/**
 * XEP-0198 §4: h is an unsigned 32-bit counter that wraps to 0 after
 * 2^32 - 1. These helpers do the modular arithmetic in one place.
 */
export const MOD = 2 ** 32;

/** (a + n) mod 2^32 */
export function add(a: number, n: number): number {
  return (a + n) % MOD;
}

/** How far `to` is ahead of `from`, modulo 2^32 (0 .. 2^32-1). */
export function distance(from: number, to: number): number {
  return (to - from + MOD) % MOD;
}

/** Parses an h attribute: a decimal integer in 0 .. 2^32-1, else undefined. */
export function parseH(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d{1,10}$/.test(raw)) return undefined;
  const n = Number(raw);
  return n < MOD ? n : undefined;
}
