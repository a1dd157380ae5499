import type { SmStateStore } from '../../../storage/ports/sm-state.js';
import type { Session } from '../../session.js';

/**
 * Where resumable sessions are found by smid (MongooseIM's sm_session table)
 * and where the last h of sessions that timed out is kept for
 * `stale_h.geriatric` seconds (its stream_mgmt_stale_h table, XEP-0198 v1.6
 * §5). One interface, so the Redis backend of the scale-out work can take
 * the place of `memory` without the feature changing.
 */
export interface SmRegistry {
  register(smid: string, session: Session): void;
  get(smid: string): Session | undefined;
  remove(smid: string): void;
  /** Records the h of a session that can no longer be resumed. */
  setStaleH(smid: string, h: number, now: number): Promise<void>;
  getStaleH(smid: string): Promise<number | undefined>;
  /** Drops stale h records older than `geriatric` seconds; returns how many. */
  collectStaleH(now: number, geriatricSeconds: number): Promise<number>;
  readonly size: number;
}

/**
 * Live sessions by smid in this process's memory (a Session cannot leave
 * it); stale h records in `stale` (storage.smState), so they outlive a
 * restart and a client that comes back after one still learns its h.
 */
export function createMemorySmRegistry(stale: SmStateStore): SmRegistry {
  const sessions = new Map<string, Session>();
  return {
    register: (smid, session) => { sessions.set(smid, session); },
    get: (smid) => sessions.get(smid),
    remove: (smid) => { sessions.delete(smid); },
    setStaleH: (smid, h, now) => stale.setStaleH(smid, h, now),
    getStaleH: (smid) => stale.getStaleH(smid),
    collectStaleH: (now, geriatricSeconds) => stale.collectStaleH(now - geriatricSeconds * 1000),
    get size() { return sessions.size; },
  };
}
