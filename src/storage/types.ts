/**
 * Domain-shaped storage contracts: one port per feature in ports/ (types
 * only), re-exported here with `Storage`, the aggregate a backend opens.
 * Every backend (memory for tests, SQLite embedded, PostgreSQL later)
 * implements every port; callers never see SQL. All methods are async so a
 * networked backend fits the same shape.
 */
import type { UserStore } from './ports/accounts.js';
import type { BlocklistStore } from './ports/blocklist.js';
import type { OfflineStore } from './ports/offline.js';
import type { RosterStore } from './ports/roster.js';
import type { SmStateStore } from './ports/sm-state.js';
import type { VcardStore } from './ports/vcard.js';
import type { PepStore } from './ports/pep.js';
import type { FastTokenStore } from './ports/fast-tokens.js';
import type { ArchiveStore } from './ports/archive.js';

export * from './ports/accounts.js';
export * from './ports/blocklist.js';
export * from './ports/offline.js';
export * from './ports/roster.js';
export * from './ports/sm-state.js';
export * from './ports/vcard.js';
export * from './ports/pep.js';
export * from './ports/fast-tokens.js';
export * from './ports/archive.js';

export interface Storage {
  users: UserStore;
  offline: OfflineStore;
  vcards: VcardStore;
  rosters: RosterStore;
  blocklists: BlocklistStore;
  smState: SmStateStore;
  pep: PepStore;
  /** XEP-0484 FAST tokens (SASL2). */
  fastTokens: FastTokenStore;
  /** XEP-0313 message archives. */
  archive: ArchiveStore;
  /** Idempotent. */
  close(): Promise<void>;
  /** A trivial query, for /readyz: rejects when the store cannot answer. */
  ping(): Promise<void>;
  /**
   * SQLite only: an online, consistent copy of the database into `file` (the
   * SQLite backup API), which must exist, empty, so its mode is the caller's.
   * Absent where the backend has its own tools (PostgreSQL: pg_dump).
   */
  backup?(file: string): Promise<void>;
}

/** Injected so tests can pin creation times. */
export type Clock = () => number;
