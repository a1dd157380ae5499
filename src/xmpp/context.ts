import type { Storage } from '../storage/types.js';
import type { Hooks } from './hooks.js';
import type { CoreEvents } from './events.js';
import type { SessionManager } from './session-manager.js';
import type { Router } from './router.js';
import type { DiscoRegistry, IqRegistry, NonzaRegistry } from './registry.js';
import type { Log } from './log.js';
import type { CoreMetrics } from './metrics-port.js';
import type { Session } from './session.js';
import type { XmlElement } from '../xml/index.js';

/**
 * What a feature module is given in register(ctx): the registries it hooks
 * into and the services it may use, Prosody's module API in small. Each
 * feature also receives its own slice of the configuration as a second
 * argument; nothing here is global.
 */
export interface ModuleContext {
  readonly hooks: Hooks<CoreEvents>;
  readonly sessions: SessionManager;
  readonly router: Router;
  readonly iq: IqRegistry;
  readonly nonzas: NonzaRegistry;
  readonly disco: DiscoRegistry;
  readonly hosts: ReadonlySet<string>;
  readonly storage: Storage;
  readonly log: Log;
  readonly metrics: CoreMetrics;
  /**
   * Runs async work for a session: a StanzaErrorException answers `stanza`
   * with that error, a StreamErrorException closes the stream, anything else
   * is logged and counted and ends only this session.
   */
  guard(session: Session, stanza: XmlElement | undefined, work: () => Promise<void>): void;
  /**
   * Ends a session whose transport has been handed to another session
   * (resumption): no stream error, no close framing, no presence — it was
   * never more than a carrier.
   */
  retire(session: Session, note: string): void;
}
