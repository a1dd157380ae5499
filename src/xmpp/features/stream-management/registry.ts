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
  setStaleH(smid: string, h: number, now: number): void;
  getStaleH(smid: string): number | undefined;
  /** Drops stale h records older than `geriatric` seconds; returns how many. */
  collectStaleH(now: number, geriatricSeconds: number): number;
  readonly size: number;
  readonly staleSize: number;
}

export function createMemorySmRegistry(): SmRegistry {
  const sessions = new Map<string, Session>();
  const stale = new Map<string, { h: number; at: number }>();
  return {
    register: (smid, session) => { sessions.set(smid, session); },
    get: (smid) => sessions.get(smid),
    remove: (smid) => { sessions.delete(smid); },
    setStaleH: (smid, h, now) => { stale.set(smid, { h, at: now }); },
    getStaleH: (smid) => stale.get(smid)?.h,
    collectStaleH(now, geriatricSeconds) {
      let n = 0;
      for (const [smid, rec] of stale) {
        if (now - rec.at >= geriatricSeconds * 1000) { stale.delete(smid); n++; }
      }
      return n;
    },
    get size() { return sessions.size; },
    get staleSize() { return stale.size; },
  };
}
