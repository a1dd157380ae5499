import type { Pipeline } from './pipeline.js';
import type { CoreEvents } from './events.js';
import type { SessionManager } from './session-manager.js';
import type { Router } from './router.js';
import type { ComponentRegistry, DiscoRegistry, IqRegistry, NonzaRegistry } from './registry.js';
import type { Log } from './log.js';
import type { CoreMetrics } from './metrics-port.js';
import type { Session } from './session.js';
import type { XmlElement } from '../xml/index.js';
import type { WorkQueues } from './queues.js';
import type { Lifecycle } from './lifecycle.js';

export type { Lifecycle } from './lifecycle.js';

/**
 * What a feature module is given in register(ctx): the registries it hooks
 * into and the core services it may use, Prosody's module API in small.
 * Each feature also receives its own slice of the configuration as a
 * second argument, and the stores and services it uses (its ports) as the
 * last one, named in its register signature; no feature sees every store,
 * and nothing here is global.
 */
export interface ModuleContext {
  /** The phased event pipelines (pipeline.ts); priorities come from priorities.ts. */
  readonly hooks: Pipeline<CoreEvents>;
  readonly sessions: SessionManager;
  readonly router: Router;
  readonly iq: IqRegistry;
  readonly nonzas: NonzaRegistry;
  readonly disco: DiscoRegistry;
  /** Local components (a subdomain or a JID served by a module, such as group chat). */
  readonly components: ComponentRegistry;
  readonly hosts: ReadonlySet<string>;
  readonly log: Log;
  readonly metrics: CoreMetrics;
  /** One work queue per session and one per account, used by every feature (queues.ts). */
  readonly queues: WorkQueues;
  /** Hibernation and resumption, done by the core (lifecycle.ts). */
  readonly lifecycle: Lifecycle;
  /**
   * Runs async work for a session outside its stanza pipeline: a
   * StanzaErrorException answers `stanza` with that error, a
   * StreamErrorException closes the stream, anything else is logged and
   * counted and ends only this session.
   */
  guard(session: Session, stanza: XmlElement | undefined, work: () => Promise<void>): void;
}
