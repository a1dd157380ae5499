/**
 * The arithmetic of offline quotas, shared by every OfflineStore backend so
 * they agree on what a message weighs and when an account is full.
 */
import type { OfflineQuota, OfflineUsage } from './ports/offline.js';

/** What a stored stanza weighs: its UTF-8 bytes, as SQLite's length(CAST(stanza AS BLOB)) counts them. */
export function stanzaBytes(stanza: string): number {
  return Buffer.byteLength(stanza, 'utf8');
}

/** A bare number is the older count-only limit. */
export function toQuota(quota: OfflineQuota | number): OfflineQuota {
  return typeof quota === 'number' ? { maxMessages: quota, maxBytes: Number.POSITIVE_INFINITY } : quota;
}

/** Whether one more message of `bytes` fits next to `used`. */
export function fits(used: OfflineUsage, bytes: number, quota: OfflineQuota): boolean {
  return used.messages < quota.maxMessages && used.bytes + bytes <= quota.maxBytes;
}

export const NO_USAGE: OfflineUsage = Object.freeze({ messages: 0, bytes: 0 });
