/**
 * A cluster that cannot start for a reason of configuration: main.ts reports it as one (exit 2). In a module of its
 * own, so that main.ts can tell it apart without loading the cluster (and its Redis client) when CLUSTER=none.
 */
export class ClusterStartError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClusterStartError';
  }
}
