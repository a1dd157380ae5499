/**
 * In-memory Storage with the same observable behaviour as the SQLite one.
 * For unit tests and throwaway runs; nothing survives the process.
 */
import type { BlocklistStore, Clock, RosterStore, Storage } from '../types.js';
import { createMemoryUserStore } from './accounts.js';
import { createMemoryBlocklistStore } from './blocklist.js';
import { createMemoryOfflineStore } from './offline.js';
import { createMemoryRosterStore } from './roster.js';
import { createMemorySmStateStore } from './sm-state.js';
import { createMemoryVcardStore } from './vcard.js';
import { createMemoryPepStore } from './pep.js';
import { createMemoryFastTokenStore } from './fast-tokens.js';
import { createMemoryArchiveStore } from './archive.js';

export interface MemoryStorageOptions {
  now?: Clock;
}

export function createMemoryStorage(options: MemoryStorageOptions = {}): Storage {
  const now = options.now ?? Date.now;
  const offline = createMemoryOfflineStore(now);
  const vcards = createMemoryVcardStore();
  const rosters = createMemoryRosterStore();
  const blocklists = createMemoryBlocklistStore();
  const pep = createMemoryPepStore();
  const fastTokens = createMemoryFastTokenStore();
  // The archive needs to know the accounts (SQL: its foreign key); `users` is made below.
  const archive = createMemoryArchiveStore(async (host, username) => (await users.get(host, username)) !== undefined);
  // SQL's foreign keys refuse the data of an account that does not exist; these stores keep it (the
  // volatile stores of ANONYMOUS accounts have no account), so a new account drops what was written
  // under its name before it existed: it starts empty, as on SQLite and PostgreSQL.
  const clearOwn = (host: string, username: string): void => {
    for (const store of [offline, vcards, rosters, blocklists, pep, fastTokens, archive]) store.purge(host, username);
  };
  // SQLite's ON DELETE CASCADE: an account's data goes with the account.
  const purge = (host: string, username: string): void => {
    clearOwn(host, username);
    // SQL's trigger contacts_of_deleted_account: the other accounts' rosters and PEP affiliations forget it.
    for (const store of [rosters, pep]) store.forgetContact(`${username}@${host}`);
  };
  // SQLite's trigger: a new password ends the account's FAST tokens.
  const users = createMemoryUserStore(now, purge, (host, username) => fastTokens.purge(host, username), clearOwn);
  return {
    users,
    archive,
    offline,
    vcards,
    rosters,
    blocklists,
    smState: createMemorySmStateStore(),
    pep,
    fastTokens,
    async close() {},
    async ping() {},
  };
}

/**
 * A roster store and a blocklist store that only live in memory, with one
 * purge for both: where SASL ANONYMOUS accounts keep theirs.
 */
export function createVolatileAccountStores(): { rosters: RosterStore; blocklists: BlocklistStore; purge(host: string, username: string): void } {
  const rosters = createMemoryRosterStore();
  const blocklists = createMemoryBlocklistStore();
  return {
    rosters, blocklists,
    purge(host, username) {
      rosters.purge(host, username);
      blocklists.purge(host, username);
    },
  };
}
