import type { PushResult, SmJournal } from '../../src/xmpp/features/stream-management/registry.js';
import type { Undelivered } from '../../src/xmpp/undelivered.js';

/** A push to the SM journal whose answer (its PushWaiter's) is a promise, for tests that drive the journal directly. */
export function pushed(journal: SmJournal, smid: string, item: Undelivered): Promise<PushResult> {
  return new Promise((resolve) => journal.push(smid, item, { pushed: (result) => resolve(result) }));
}
