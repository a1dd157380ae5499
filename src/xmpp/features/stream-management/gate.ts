import type { XmlElement } from '../../../xml/index.js';
import type { PushResult, PushWaiter } from './registry.js';
import type { Undelivered } from '../../undelivered.js';

/** What the gate writes to: a session (its transport at the time of a write, and whether it ended). */
export interface GateTarget {
  readonly conn: unknown;
  readonly destroyed: boolean;
  write(el: XmlElement, sent?: () => void): void;
}

/**
 * Issue 14 item 3 (SM_BACKEND=redis): a stanza counts as sent only once the
 * journal has stored it, so whatever is written to the client after a push
 * (that stanza, later ones, an <r/>) waits for that push's answer. The
 * journal answers a session's pushes in push order (sm-batch.ts), so a
 * write is due once the answers counted reach the pushes counted before it:
 * one gate per session, no promise per stanza, and the answers of one
 * batch release the session's writes together. A write waits for nothing
 * when every push has been answered.
 *
 * Nothing is written once a push was refused (another node owns the
 * session: it ends here), nor to a transport other than the one a write was
 * meant for (a resumption resends the queue itself).
 */
export class WriteGate implements PushWaiter {
  #pushed = 0;
  #answered = 0;
  #refused = false;
  // Writes waiting, oldest first from #head: the element, the pushes it waits for, its transport, its `sent`.
  #els: XmlElement[] = [];
  #after: number[] = [];
  #conns: unknown[] = [];
  #sent: ((() => void) | undefined)[] = [];
  #head = 0;

  constructor(
    private readonly target: GateTarget,
    /** A push the journal did not store as asked (fenced, or kept in memory only). */
    private readonly answered: (result: PushResult, item: Undelivered) => void,
  ) {}

  /** Writes waiting for the journal. */
  get waiting(): number { return this.#els.length - this.#head; }

  /** Called before each push: the writes from now on wait for its answer. */
  expect(): void { this.#pushed++; }

  /** `sent` as for Conn.send. */
  write(el: XmlElement, sent?: () => void): void {
    if (this.#refused) return;
    if (this.#answered === this.#pushed && this.waiting === 0) return this.target.write(el, sent);
    this.#els.push(el);
    this.#after.push(this.#pushed);
    this.#conns.push(this.target.conn);
    this.#sent.push(sent);
  }

  pushed(result: PushResult, item: Undelivered): void {
    this.#answered++;
    if (result === 'fenced') this.#refused = true;
    if (result !== 'stored') this.answered(result, item);
    this.#release();
  }

  #release(): void {
    const target = this.target;
    while (this.#head < this.#els.length && this.#after[this.#head]! <= this.#answered) {
      const el = this.#els[this.#head]!;
      const conn = this.#conns[this.#head];
      const sent = this.#sent[this.#head];
      this.#head++;
      if (!this.#refused && !target.destroyed && target.conn === conn) target.write(el, sent);
    }
    if (this.#head === this.#els.length) {
      this.#els.length = 0;
      this.#after.length = 0;
      this.#conns.length = 0;
      this.#sent.length = 0;
      this.#head = 0;
    }
  }
}
