/**
 * The session directory of the cluster: which node holds each bound
 * resource, with what the other nodes need to route and broadcast to it.
 * In Redis, the hash `{prefix}dir:{bare}` maps resource → entry (JSON);
 * every change is published on `{prefix}dir`. Each node mirrors the whole
 * directory in memory (subscribe first, load with SCAN, then apply what
 * arrived meanwhile), so lookups never wait on Redis.
 *
 * Each write is one Lua script: the hash, a cluster-wide sequence number
 * and the publish change together, so every node sees the changes in the
 * order Redis applied them (the sequence orders a load against what was
 * published during it). A bind overwrites whatever held the resource (last
 * bind wins, RFC 6120 §7.7.2.2 across nodes); an update or a removal only
 * touches the entry if it is still the writer's own session (its sid).
 * `{prefix}dir-node:{node}` lists each node's full JIDs for the survivor
 * that cleans up after a dead node.
 */
import type { ClusterNode } from './node.js';
import { connectionOf, RECOVERY_BATCH, type Redis } from './redis.js';
import { inBatches } from '../util/batches.js';

/** What a node publishes about one of its bound sessions. */
export interface DirFields {
  readonly node: string;
  /** Unique per session object (node and logId): tells a new session on the same resource from the old one. */
  readonly sid: string;
  readonly priority: number;
  /** The last broadcast available presence, serialized; null when unavailable. */
  readonly presence: string | null;
  readonly interested: boolean;
  readonly carbons: boolean;
  readonly anonymous: boolean;
  /** XEP-0191 §3.3: the session requested the blocklist (gets its pushes). Absent in entries written before it existed. */
  readonly blocklist?: boolean;
  /**
   * RFC 6121 §4.6.3: the full JIDs the session sent directed available presence to (Session.directed,
   * at most DIRECTED_MAX), so the survivor that ends a dead node's session sends them unavailable.
   * Absent when none (and in entries written before it existed).
   */
  readonly directed?: readonly string[];
  /**
   * RFC 6121 §4.5.2: the unavailable presence the client sent, serialized, while `presence` is null after
   * it, for the nodes of its recipients (remote-presence.ts). Absent otherwise.
   */
  readonly unavailable?: string;
}

export interface DirEntry extends DirFields {
  /** The cluster-wide sequence number of the write that made this entry. */
  readonly seq: number;
}

/** One change seen in the mirror: `entry` null when the resource went away. */
export type DirChange = (bare: string, resource: string, entry: DirEntry | null, previous: DirEntry | undefined) => void;

/** Told after the mirror was loaded again (the subscriber reconnected: what was published meanwhile is lost). */
export type DirResynced = () => void;
/** What a previous run of this node left in the directory (its sessions are gone), before it is removed at start. */
export type DirLeftBehind = (left: { readonly bare: string; readonly resource: string; readonly entry: DirEntry }) => Promise<void>;

export interface DirLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

// KEYS: dir hash, node set, seq; ARGV: bare, resource, fields JSON, channel, sid ('' = bind: overwrite), prefix, node.
// A bind over another node's entry takes it out of that node's set too: the session it replaced (resumed here,
// or in conflict) then ends there with no write of its own (directory-module.ts unbind).
const WRITE = `
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if ARGV[5] ~= '' and (not cur or cjson.decode(cur).sid ~= ARGV[5]) then return 0 end
if ARGV[5] == '' and cur then
  local was = cjson.decode(cur).node
  if was ~= ARGV[7] then redis.call('SREM', ARGV[6] .. 'dir-node:' .. was, ARGV[1] .. '/' .. ARGV[2]) end
end
local seq = redis.call('INCR', KEYS[3])
local value = '{"seq":' .. seq .. ',' .. string.sub(ARGV[3], 2)
redis.call('HSET', KEYS[1], ARGV[2], value)
redis.call('SADD', KEYS[2], ARGV[1] .. '/' .. ARGV[2])
redis.call('PUBLISH', ARGV[4], cjson.encode({b = ARGV[1], r = ARGV[2], e = value, n = seq}))
return seq`;

// KEYS: dir hash, node set, seq; ARGV: bare, resource, channel, field to match ('sid' or 'node'), its value.
// The node's set loses the resource only with the entry (or when there is none): a refused removal (another
// session of the same node bound the resource since) leaves it listed, for the survivor of that node's death.
const REMOVE = `
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if not cur then
  redis.call('SREM', KEYS[2], ARGV[1] .. '/' .. ARGV[2])
  return 0
end
local e = cjson.decode(cur)
if e[ARGV[4]] ~= ARGV[5] then return 0 end
redis.call('SREM', KEYS[2], ARGV[1] .. '/' .. ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[2])
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], cjson.encode({b = ARGV[1], r = ARGV[2], e = false, s = e.sid, n = seq}))
return seq`;

interface Published { b: string; r: string; e: string | false; s?: string; n: number }

export interface Directory {
  /** The resources of `bare` in the mirror (this node's own included). */
  entries(bare: string): ReadonlyMap<string, DirEntry> | undefined;
  /**
   * Reads `bare`/`resource` from Redis into the mirror, if its write is one whose change the mirror has
   * not had yet (a resource bound elsewhere a moment ago); resolves with the mirror's entry then.
   */
  catchUp(bare: string, resource: string): Promise<DirEntry | undefined>;
  /** Subscribes, loads the directory into the mirror and removes what a previous run of this node left. */
  start(): Promise<void>;
  /** Records a newly bound session (overwriting another holder); resolves with the write's sequence number. */
  bind(bare: string, resource: string, fields: DirFields): Promise<number>;
  /** Rewrites a session's entry if it is still its own; 0 when another session holds the resource now. */
  update(bare: string, resource: string, fields: DirFields): Promise<number>;
  /** Removes a session's entry if it is still its own. */
  remove(bare: string, resource: string, sid: string): Promise<boolean>;
  /** Removes every entry a (dead) node holds; resolves with how many. */
  removeNode(node: string): Promise<number>;
  stop(): Promise<void>;
}

export function createDirectory(node: ClusterNode, onChange: DirChange, log: DirLog, onResync: DirResynced = () => undefined, leftBehind?: DirLeftBehind): Directory {
  const { prefix, redis } = node;
  const channel = `${prefix}dir`;
  const seqKey = `${prefix}dirseq`;
  const hashKey = (bare: string): string => `${prefix}dir:${bare}`;
  const nodeKey = (id: string): string => `${prefix}dir-node:${id}`;
  const mirror = new Map<string, Map<string, DirEntry>>();
  /** Messages that arrive while the mirror loads, applied after it. */
  let buffered: Published[] | undefined;
  /** The sequence number of the last change applied: the mirror holds every write up to it (they come in Redis order). */
  let applied = 0;
  let subscriber: Redis | undefined;

  function apply(msg: Published): void {
    applied = Math.max(applied, msg.n);
    if (msg.e === false) {
      const current = mirror.get(msg.b)?.get(msg.r);
      if (current !== undefined && current.sid === msg.s && current.seq < msg.n) set(msg.b, msg.r, null, current);
      return;
    }
    const entry = JSON.parse(msg.e) as DirEntry;
    const current = mirror.get(msg.b)?.get(msg.r);
    if (current === undefined || current.seq < entry.seq) set(msg.b, msg.r, entry, current);
  }

  function set(bare: string, resource: string, entry: DirEntry | null, previous: DirEntry | undefined): void {
    let resources = mirror.get(bare);
    if (entry) {
      if (!resources) mirror.set(bare, (resources = new Map()));
      resources.set(resource, entry);
    } else if (resources) {
      resources.delete(resource);
      if (resources.size === 0) mirror.delete(bare);
    }
    onChange(bare, resource, entry, previous);
  }

  function received(raw: string): void {
    let msg: Published;
    try {
      msg = JSON.parse(raw) as Published;
    } catch (err) {
      log.warn({ err }, 'unreadable directory message');
      return;
    }
    if (buffered) buffered.push(msg); else apply(msg);
  }

  /** Loads the whole directory; what the mirror holds and Redis no longer has is removed (a resync). */
  async function load(): Promise<void> {
    buffered = [];
    const seen = new Set<string>();
    for await (const keys of redis.scanIterator({ MATCH: `${prefix}dir:*`, COUNT: 200 })) {
      for (const key of keys) {
        const bare = key.slice(prefix.length + 4);
        const fields = await redis.hGetAll(key) as Record<string, string>;
        for (const [resource, value] of Object.entries(fields)) {
          seen.add(`${bare}/${resource}`);
          const entry = JSON.parse(value) as DirEntry;
          const current = mirror.get(bare)?.get(resource);
          if (current === undefined || current.seq < entry.seq) set(bare, resource, entry, current);
        }
      }
    }
    for (const [bare, resources] of [...mirror]) {
      for (const [resource, entry] of [...resources]) if (!seen.has(`${bare}/${resource}`)) set(bare, resource, null, entry);
    }
    const pending = buffered;
    buffered = undefined;
    for (const msg of pending) apply(msg);
  }

  async function removeWhere(bare: string, resource: string, field: 'sid' | 'node', value: string, owner: string): Promise<number> {
    const keys = [hashKey(bare), nodeKey(owner), seqKey];
    return Number(await redis.eval(REMOVE, { keys, arguments: [bare, resource, channel, field, value] }));
  }

  async function write(bare: string, resource: string, fields: DirFields, sid: string): Promise<number> {
    const keys = [hashKey(bare), nodeKey(fields.node), seqKey];
    return Number(await redis.eval(WRITE, { keys, arguments: [bare, resource, JSON.stringify(fields), channel, sid, prefix, fields.node] }));
  }

  const directory: Directory = {
    entries: (bare) => mirror.get(bare),
    async catchUp(bare, resource) {
      const value = await redis.hGet(hashKey(bare), resource);
      // A write the mirror has had (or a later one, a removal among them) is the mirror's to tell; while it
      // loads, the load is.
      if (value != null && !buffered) {
        const entry = JSON.parse(value) as DirEntry;
        const current = mirror.get(bare)?.get(resource);
        if (entry.seq > applied && (current === undefined || current.seq < entry.seq)) set(bare, resource, entry, current);
      }
      return mirror.get(bare)?.get(resource);
    },
    async start() {
      subscriber = connectionOf(redis);
      subscriber.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'directory subscriber error'));
      // Messages published while the subscriber was disconnected are lost: load again when it is back.
      let connected = false;
      subscriber.on('ready', () => {
        if (connected) load().then(onResync, (err: unknown) => log.warn({ err }, 'reloading the directory failed'));
        connected = true;
      });
      await subscriber.connect();
      await subscriber.subscribe(channel, received);
      await load();
      // Entries of a previous run of this node (a crash, a restart with the same NODE_ID): its sessions are gone.
      // Each is removed once ended, so a start cut short (its startup probe) does not begin again from the first.
      let stale = 0;
      if (leftBehind) {
        const own: Array<{ bare: string; resource: string; entry: DirEntry }> = [];
        for (const [bare, resources] of mirror) for (const [resource, entry] of resources) if (entry.node === node.id) own.push({ bare, resource, entry });
        await inBatches(own, RECOVERY_BATCH, async (left) => {
          await leftBehind(left);
          if ((await removeWhere(left.bare, left.resource, 'node', node.id, node.id)) > 0) stale++;
        });
      }
      stale += await directory.removeNode(node.id);
      if (stale > 0) log.info({ event: 'cluster-directory-stale', entries: stale }, 'removed directory entries of a previous run');
    },
    bind: (bare, resource, fields) => write(bare, resource, fields, ''),
    update: (bare, resource, fields) => write(bare, resource, fields, fields.sid),
    async remove(bare, resource, sid) {
      return (await removeWhere(bare, resource, 'sid', sid, node.id)) > 0;
    },
    async removeNode(id) {
      let removed = 0;
      await inBatches(await redis.sMembers(nodeKey(id)), RECOVERY_BATCH, async (full) => {
        const at = full.indexOf('/');
        if ((await removeWhere(full.slice(0, at), full.slice(at + 1), 'node', id, id)) > 0) removed++;
      });
      await redis.del(nodeKey(id));
      return removed;
    },
    async stop() {
      const sub = subscriber;
      subscriber = undefined;
      if (sub) await sub.quit().catch(() => sub.destroy());
    },
  };
  return directory;
}
