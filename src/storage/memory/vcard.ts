/** In-memory VcardStore with the same observable behaviour as the SQLite one. */
import type { VcardStore } from '../ports/vcard.js';
import { keyOf, type Purgeable } from './key.js';

export function createMemoryVcardStore(): VcardStore & Purgeable {
  const vcards = new Map<string, string>();
  return {
    async get(host, username) {
      return vcards.get(keyOf(host, username));
    },
    async set(host, username, vcard) {
      vcards.set(keyOf(host, username), vcard);
    },
    async delete(host, username) {
      vcards.delete(keyOf(host, username));
    },
    purge(host, username) {
      vcards.delete(keyOf(host, username));
    },
  };
}
