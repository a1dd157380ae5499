// Which tab a stored session belongs to. A browser's "Duplicate tab" copies
// sessionStorage, so a duplicate finds the original tab's smid, h, BOSH sid
// and credentials there and would resume that session, which moves it away
// from the original tab's stream (XEP-0198 §5), or poll its BOSH session.
//
// Each page holds a Web Lock named after its session's id for as long as it
// lives; a lock is not in sessionStorage, so duplication cannot copy it. The
// browser releases a page's locks when the page goes away, so a reload gets
// the lock at once (within milliseconds), while a duplicate waits WAIT_MS in
// vain: the original tab still holds it. Chosen over asking the other tabs
// on a BroadcastChannel ("who holds smid X?"), which would make every
// reload wait for an answer that never comes, and which needs the other tab
// awake to answer (a background tab may be frozen); a lock is kept by the
// browser. Web Locks need a secure context, as WebCrypto (scram.js) does.
const PREFIX = 'xmpp-lite.session:';
/** How long a page waits for a lock the page before its reload may not have given up yet. */
const WAIT_MS = 1000;

/**
 * Holds the lock for the session `id` until the returned release() is
 * called or the page goes away; resolves null when another live tab holds
 * it. Without Web Locks every page may resume its stored session, as
 * before.
 */
export function claimSession(id) {
  if (!navigator.locks) return Promise.resolve(() => undefined);
  return new Promise((resolve) => {
    let release;
    const held = new Promise((done) => { release = done; });
    const signal = AbortSignal.timeout(WAIT_MS);
    navigator.locks.request(PREFIX + id, { signal }, () => {
      resolve(release);
      return held;
    }).catch(() => resolve(signal.aborted ? null : () => undefined));
  });
}
