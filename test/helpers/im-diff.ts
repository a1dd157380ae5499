/**
 * Differential IM runs: one script of client actions played against one
 * gateway (no cluster) and against several cluster gateways with the
 * clients spread over them, recording what every client receives, so that
 * the two records can be compared (issue 14: presence, roster pushes,
 * carbons, conflict "across nodes exactly as within one").
 *
 * A script is a list of steps. After each step the run waits until things
 * have settled: in the reference run until no client has received anything
 * for QUIET_MS; in a cluster run until each client has at least what it got
 * in that step of the reference run, then QUIET_MS more for anything extra,
 * and (before the next step) until every node sees every session as its
 * owner holds it. That last wait is the documented lag of the directory
 * (docs/SCALING.md): what another node learns of a session comes a moment
 * later, an allowed difference this runner waits out rather than reports.
 *
 * What a client receives in one step is compared as a multiset: RFC 6120
 * §10.1 orders only the stanzas of one sender to one recipient, and a step
 * of this runner (one action's consequences) has few of those.
 *
 * IM_DIFF_DUMP=<file> appends every run's record there, step by step (JSON),
 * to read a difference whole; IM_DIFF_NO_SETTLE=1 leaves out the wait for
 * the directory between steps, to look for what its lag changes.
 */
import { appendFileSync } from 'node:fs';
import { eventually } from './eventually.js';
import { RawWsClient } from './ws-client.js';
import type { TestServer } from './server.js';
import { NS, type XmlElement } from '../../src/xml/index.js';
import type { Session } from '../../src/xmpp/session.js';

/** How long nothing arriving means a step is done. */
const QUIET_MS = 150;
/** Client-chosen stanza ids start with this; any other id is the server's and is not compared. */
export const OWN_ID = 'c-';

export interface DiffContext {
  /** Logs `key` in as `user`/`resource` (password `<user>-pw`) on node `node` of a cluster run (node 0 of the reference). */
  login(key: string, user: string, resource: string, node: number): Promise<void>;
  /** Sends raw XML from `key` (stanzas in jabber:client). */
  send(key: string, xml: string): void;
  /** Ends `key`'s stream with <close/> and waits for the server to close it. */
  logout(key: string): Promise<void>;
}

export interface DiffStep {
  readonly name: string;
  run(c: DiffContext): Promise<void> | void;
}

/** Per step, per client key, the canonical form of each stanza received (sorted). */
export type DiffRecord = Array<{ step: string; got: Record<string, string[]> }>;

interface Live { key: string; client: RawWsClient; user: string; resource: string; node: number; seen: number; gone: boolean }

/**
 * Plays `steps` on `servers` (one: the reference; several: a cluster run,
 * node i of the script on servers[i % n]); `reference`, for a cluster run,
 * is the reference run's record, whose counts it waits for.
 */
export async function playScript(t: { teardown(fn: () => unknown): void }, servers: readonly TestServer[], steps: readonly DiffStep[], reference?: DiffRecord): Promise<DiffRecord> {
  const clients = new Map<string, Live>();
  const at = (node: number): TestServer => servers[node % servers.length]!;
  const ctx: DiffContext = {
    async login(key, user, resource, node) {
      const client = await RawWsClient.connect(at(node).wsUrl);
      t.teardown(() => client.close());
      await client.login(user, `${user}-pw`, resource);
      clients.set(key, { key, client, user, resource, node, seen: client.frames.length, gone: false });
    },
    send(key, xml) { clients.get(key)!.client.send(xml); },
    async logout(key) {
      const live = clients.get(key)!;
      live.client.send(`<close xmlns='${NS.FRAMING}'/>`);
      await live.client.waitClosed();
      live.gone = true;
      const s = servers[live.node % servers.length]!;
      await eventually(() => local(s, live.user, live.resource) === undefined, { message: `${key} gone from its node` });
    },
  };
  const record: DiffRecord = [];
  for (const [i, step] of steps.entries()) {
    await step.run(ctx);
    const want = reference?.[i]?.got;
    if (want) {
      await eventually(() => [...clients.values()].every((c) => c.client.frames.length - c.seen >= (want[c.key]?.length ?? 0)), {
        timeout: 5000, message: `step "${step.name}": each client to get what it got in the reference run`,
      }).catch(() => undefined);
    }
    await quiet(clients);
    const got: Record<string, string[]> = {};
    for (const c of clients.values()) {
      const fresh = c.client.frames.slice(c.seen);
      // Ended by the server (a stream error, conflict): what it wrote says so.
      if (fresh.some((el) => el.is('close', NS.FRAMING) || el.is('error', NS.STREAM))) c.gone = true;
      const frames = fresh.map(canonical);
      c.seen = c.client.frames.length;
      if (frames.length > 0) got[c.key] = frames.sort();
    }
    record.push({ step: step.name, got });
    if (process.env.IM_DIFF_DUMP) appendFileSync(process.env.IM_DIFF_DUMP, `${JSON.stringify({ servers: servers.length, step: step.name, got }, null, 1)}\n`);
    if (servers.length > 1 && !process.env.IM_DIFF_NO_SETTLE) await converged(servers, clients);
  }
  return record;
}

/** Waits until no client has received anything for QUIET_MS. */
async function quiet(clients: Map<string, Live>): Promise<void> {
  const total = (): number => [...clients.values()].reduce((n, c) => n + c.client.frames.length, 0);
  let last = total();
  let since = Date.now();
  while (Date.now() - since < QUIET_MS) {
    await new Promise((r) => setTimeout(r, 10));
    if (total() !== last) {
      last = total();
      since = Date.now();
    }
  }
}

/** The session of `server`'s own process bound to user/resource (not another node's stub). */
function local(server: TestServer, user: string, resource: string): Session | undefined {
  const s = server.app.sessions.get('localhost', user, resource);
  return s !== undefined && server.app.sessions.all.has(s) ? s : undefined;
}

/** What other nodes must know of a session: its presence, priority, roster interest, carbons and blocklist request. */
function view(s: Session | undefined): string {
  if (s === undefined) return 'none';
  return JSON.stringify([s.priority, s.presence?.toString() ?? null, s.interested === true, s.carbons, s.blocklistRequested, [...(s.directed?.keys() ?? [])].sort()]);
}

/** Waits until every node sees each live client's session as its own node holds it, and none sees a gone one. */
async function converged(servers: readonly TestServer[], clients: Map<string, Live>): Promise<void> {
  const mismatches = (): string[] => [...clients.values()].flatMap((c) => {
    // A resource taken over by a newer client (conflict) is that client's to check.
    if (c.gone && [...clients.values()].some((o) => !o.gone && o.user === c.user && o.resource === c.resource)) return [];
    const owner = local(servers[c.node % servers.length]!, c.user, c.resource);
    const want = view(owner);
    return servers.flatMap((s, i) => {
      const got = view(s.app.sessions.get('localhost', c.user, c.resource));
      return got === want ? [] : [`${c.key} on node ${i}: ${got}, its owner: ${want}`];
    });
  });
  await eventually(() => mismatches().length === 0, { timeout: 5000, message: () => `every node to see every session as its owner holds it: ${mismatches().join('; ')}` });
}

/**
 * A stanza as text with what may rightly differ between two runs taken out:
 * ids the server made, XEP-0359 stanza ids, XEP-0203 stamps, roster
 * versions, the resource an available presence is addressed to; attributes sorted, namespace declarations only where the
 * namespace changes, whitespace-only text dropped.
 */
export function canonical(el: XmlElement): string {
  return write(el, NS.CLIENT);
}

function write(el: XmlElement, parentNs: string): string {
  if (el.is('stanza-id', NS.SID)) return '';
  const attrs: string[] = [];
  if (el.ns !== parentNs) attrs.push(`xmlns='${el.ns}'`);
  for (const [k, v] of Object.entries(el.attrs).sort(([a], [b]) => a.localeCompare(b))) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) continue;
    let value = v;
    if (k === 'id' && !v.startsWith(OWN_ID)) value = '*';
    if (k === 'stamp' && el.is('delay', NS.DELAY)) value = '*';
    if (k === 'ver' && el.is('query', NS.ROSTER)) value = '*';
    // A contact's presence comes to the bare JID when broadcast, to the full JID when it answers a probe (RFC
    // 6121 §4.2.2, §4.3.2): which one depends on which of two resources became available first.
    if (k === 'to' && el.local === 'presence' && parentNs === NS.CLIENT && el.attr('type') === undefined) value = v.split('/')[0]!;
    attrs.push(`${k}='${value}'`);
  }
  const inner = el.children.map((c) => (typeof c === 'string' ? c.trim() : write(c, el.ns))).join('');
  return `<${el.local}${attrs.length > 0 ? ' ' : ''}${attrs.join(' ')}${inner === '' ? '/>' : `>${inner}</${el.local}>`}`;
}
