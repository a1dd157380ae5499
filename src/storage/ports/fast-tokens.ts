/** The FAST token port (XEP-0484). Types only. */

/**
 * XEP-0484 §5.1's slots per client: a token just issued waits in 'new'; its
 * first use moves it to 'current' and the 'current' before it to 'retired',
 * kept (until its expiry) only so that a replay is recognised and counted.
 */
export type FastSlot = 'new' | 'current' | 'retired';

/**
 * A token as stored: never the token itself. HT-SHA-256-NONE proves the
 * token with HMAC(token, "Initiator"); the store keeps the SHA-256 of that
 * proof (as SCRAM keeps StoredKey) and the server's answer HMAC(token,
 * "Responder") (as SCRAM keeps ServerKey). Neither logs anyone in.
 */
export interface FastToken {
  readonly host: string;
  readonly username: string;
  /** The SASL2 user-agent id (XEP-0388 §4) the token was issued to. */
  readonly agent: string;
  readonly mechanism: string;
  /** SHA-256 of the client's proof, hex: what a login is looked up by. */
  readonly storedKey: string;
  /** HMAC(token, "Responder"), base64. */
  readonly serverKey: string;
  /** Milliseconds since the epoch. */
  readonly expiresAt: number;
  readonly slot: FastSlot;
}

export interface FastTokenStore {
  /**
   * Puts a token in the agent's 'new' slot, replacing an unused one (§3.4:
   * "SHOULD invalidate any tokens previously generated that have not been
   * used"). At most `maxAgents` user agents per account keep tokens: those
   * whose newest token expires first go; on a tie the agent just issued to
   * stays, then agents in code point order of their ids.
   */
  issue(token: Omit<FastToken, 'slot'>, maxAgents: number): Promise<void>;
  /** The account's token with this stored key, in any slot, expired or not. */
  find(host: string, username: string, storedKey: string): Promise<FastToken | undefined>;
  /** §3.4: a token was used. A 'new' one becomes 'current' and the 'current' before it 'retired'. */
  used(host: string, username: string, agent: string, storedKey: string): Promise<void>;
  /** §3.5 invalidate: the token can no longer log in (it is kept as 'retired'). */
  retire(host: string, username: string, storedKey: string): Promise<void>;
  /** Every token of the account: its password changed. (Deleting the account deletes them too.) */
  revoke(host: string, username: string): Promise<void>;
  /** Forgets tokens expired at `now`; returns how many. */
  expire(now: number): Promise<number>;
}
