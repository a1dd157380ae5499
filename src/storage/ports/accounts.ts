/**
 * The accounts port: users and their SCRAM credentials, and the log of
 * account changes that live sessions follow. Types only; backends implement
 * it (storage/memory, storage/sqlite). All methods are async so a networked
 * backend fits the same shape.
 */
// The one place storage names SASL code (the credentials a backend stores).
import type { ScramCredentials } from '../../sasl/scram.js';

/** Both SCRAM variants are stored so either mechanism can be offered; never a password. */
export interface StoredCredentials {
  'SCRAM-SHA-1': ScramCredentials;
  'SCRAM-SHA-256': ScramCredentials;
}

export interface UserRecord {
  host: string;
  username: string;
  credentials: StoredCredentials;
  /** Milliseconds since the epoch. */
  createdAt: number;
  /**
   * When the credentials were last set (milliseconds since the epoch): at
   * creation, then by setCredentials. A token login minted before it is
   * refused (a password change ends the token logins made before it).
   */
  credentialsChangedAt: number;
}

export interface UserKey {
  host: string;
  username: string;
}

export interface NewUser extends UserKey {
  credentials: StoredCredentials;
}

export class UserExistsError extends Error {
  constructor(readonly host: string, readonly username: string) {
    super(`user '${username}@${host}' already exists`);
    this.name = 'UserExistsError';
  }
}

export class UserNotFoundError extends Error {
  constructor(readonly host: string, readonly username: string) {
    super(`user '${username}@${host}' does not exist`);
    this.name = 'UserNotFoundError';
  }
}

/** Accounts, keyed by (host, username); the caller normalises both beforehand. */
export interface UserStore {
  get(host: string, username: string): Promise<UserRecord | undefined>;
  /** @throws UserExistsError */
  create(host: string, username: string, credentials: StoredCredentials): Promise<void>;
  /** @throws UserNotFoundError */
  setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<void>;
  /**
   * The account's data goes with it; the other accounts' rosters and PEP
   * affiliations forget it in the same transaction (ports/roster.ts, ports/pep.ts).
   * @throws UserNotFoundError
   */
  delete(host: string, username: string): Promise<void>;
  /** Sorted by host then username, in Unicode code point order. */
  list(host?: string): Promise<UserKey[]>;
  /**
   * All or nothing: one transaction. A user that already exists, or appears
   * twice in `users`, aborts the whole batch.
   * @throws UserExistsError naming the first duplicate in batch order
   */
  createMany(users: readonly NewUser[]): Promise<void>;
  /**
   * Account changes recorded after `cursor` (deletions and new credentials,
   * by any writer: the CLI, another process), oldest first, with the cursor
   * to ask from next time. Without a cursor: no changes, only the current
   * cursor (where a new watcher starts). The running server follows it to
   * end the sessions of a deleted account or a changed password.
   */
  changesSince(cursor?: number): Promise<{ cursor: number; changes: AccountChange[] }>;
}

/** A change to an account that its live sessions must answer to. */
export interface AccountChange {
  readonly host: string;
  readonly username: string;
  readonly change: 'deleted' | 'credentials';
}
