/** What the in-memory stores share: how an account keys its data, and how its deletion reaches them. */

// NUL cannot occur in a JID, so it cannot make two different keys collide.
export const keyOf = (host: string, username: string): string => `${host}\0${username}`;

/**
 * Forgets everything held for an account: what UserStore.delete triggers
 * (SQLite: ON DELETE CASCADE), wired by createMemoryStorage.
 */
export interface Purgeable {
  purge(host: string, username: string): void;
}

/**
 * Takes a deleted account's JID out of the other accounts' data (SQLite's and
 * PostgreSQL's trigger contacts_of_deleted_account), wired by createMemoryStorage.
 */
export interface ContactForgetting {
  forgetContact(jid: string): void;
}
