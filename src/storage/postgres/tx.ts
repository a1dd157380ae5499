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
 * Share-locks the account's users row, first thing in a transaction that then locks rows of the
 * account's own (a counter, a roster item and the version, FAST tokens): deleting the account locks the
 * users row, then each of those rows in its cascade, so a transaction that held one of them and
 * waited for the users row (a foreign key check, or a row the cascade already holds) deadlocked
 * with it, and PostgreSQL aborted one of the two ('deadlock detected'). Taken first, the
 * deletion waits for the whole transaction, or the transaction for the deletion.
 */
export async function lockAccount(client: PoolClient, host: string, username: string): Promise<void> {
  await client.query('SELECT 1 FROM users WHERE host = $1 AND username = $2 FOR KEY SHARE', [host, username]);
}

/**
 * node-postgres returns BIGINT (int8) as a string, since it may exceed 2^53.
 * Ours are milliseconds, ids and 32-bit h values, all far below it.
 */
export function toNumber(value: string | number): number {
  return typeof value === 'number' ? value : Number(value);
}
