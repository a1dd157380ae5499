/**
 * Runs `work` on every item, `size` at a time: each batch's commands go out in
 * one turn (node-redis and pg pipeline them), so N items cost N / size round
 * trips instead of N. `stop` is asked before each batch. Written here rather
 * than taken from p-limit: batches, not a sliding window, are what lets one
 * turn's commands share a round trip, and it is four lines.
 */
export async function inBatches<T>(items: readonly T[], size: number, work: (item: T) => Promise<void>, stop?: () => boolean): Promise<void> {
  for (let i = 0; i < items.length; i += size) {
    if (stop?.()) return;
    await Promise.all(items.slice(i, i + size).map(work));
  }
}
