/** What every PostgreSQL store shares: transactions on one pooled client, and BIGINT columns read as numbers. */
import type { Pool, PoolClient } from 'pg';

/**
 * Runs `fn` in one transaction on one client of the pool: COMMIT when it
 * resolves, ROLLBACK when it throws (the error is rethrown), and the client
 * goes back to the pool either way (destroyed when even ROLLBACK failed,
 * since its connection is then broken).
 */
export async function inTransaction<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(begin);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: Error) => { broken = rollbackErr; });
    throw err;
  } finally {
    client.release(broken);
  }
}

/**
 * node-postgres returns BIGINT (int8) as a string, since it may exceed 2^53.
 * Ours are milliseconds, ids and 32-bit h values, all far below it.
 */
export function toNumber(value: string | number): number {
  return typeof value === 'number' ? value : Number(value);
}
