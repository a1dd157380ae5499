/**
 * The Redis layout of XEP-0198 state in a cluster (SM_BACKEND=redis) and
 * the Lua scripts that change it. Every write is fenced: it runs only if
 * the record's epoch is still the writer's, so a node that lost a session
 * to a takeover (a resumption elsewhere) cannot change it any more. A
 * script runs atomically, so a claim sees every write before it and none
 * after.
 *
 * - `{prefix}sm:{smid}` hash: owner, epoch, host, username, resource,
 *   anonymous, counter_in, counter_out, max, the snapshot (presence,
 *   priority, interested, carbons, blocklist, directed) and hibernated_at (ms, 0 when connected);
 *   after a claim also `orphan` (1 while a node holds it with no session:
 *   a dead owner's survivor, a claimer whose resumption failed) and `dsid`
 *   (the directory sid of the owner's entry of its resource then: the
 *   session's own entry, which outlives its move until the claimer binds,
 *   directory-module.ts); `handing` (1 once TAKE_ORPHAN ended it: its
 *   queue is being handed over, and it is never resumed any more);
 *   `unbound` (1 from a TAKEOVER until the claimer has bound the session:
 *   its directory entry written, sm-registry.ts bound());
 * - `{prefix}smq:{smid}` list: the unacknowledged, then the not yet sent,
 *   stanzas, oldest first, each `<queued at ms> <xml>` (the time is the
 *   XEP-0203 stamp of a hand-over);
 * - `{prefix}sm-node:{id}` set: the smids a node owns (a survivor takes
 *   over a dead node's);
 * - channel `{prefix}sm-fenced`: `{smid, epoch, from}` after each claim (`from`: the owner before it, when a
 *   takeover names it), `{smid, epoch, draining: 1}` from that owner when that input is still running as it hears
 *   of the claim (the claimer waits longer), and `{smid, epoch, released: 1, h}` from it once the session's input before the
 *   claim has been handled (its final h: sm-registry.ts, XEP-0198 §5 across nodes).
 */
import { logTag } from '../util/log-tag.js';
import { WRITTEN_LIMITS, NS, parseXml } from '../xml/index.js';
import type { Undelivered } from '../xmpp/undelivered.js';

export interface SmKeys {
  record(smid: string): string;
  queue(smid: string): string;
  node(id: string): string;
  readonly channel: string;
}

/**
 * What a log line names an smid by: the first 12 hex digits of its SHA-256. The smid itself is
 * never logged: a guest's (SASL ANONYMOUS) session is resumed by any anonymous login that
 * presents it, so it is that session's only secret (resume.ts sameAccount).
 */
export function smidRef(smid: string): string {
  return logTag(smid);
}

export function smKeys(prefix: string): SmKeys {
  return {
    record: (smid) => `${prefix}sm:${smid}`,
    queue: (smid) => `${prefix}smq:${smid}`,
    node: (id) => `${prefix}sm-node:${id}`,
    channel: `${prefix}sm-fenced`,
  };
}

/** TAKEOVER's answer when a newer session holds the resource and the claimed one ended instead. */
export const REPLACED = -3;

const FENCE = "local e = redis.call('HGET', KEYS[1], 'epoch') if e ~= ARGV[1] then return e and 0 or -1 end ";

// The fenced writes of a live session (push, ack, set fields) are one batched script: sm-batch.ts.

/**
 * RFC 6120 §7.7.2.2 in Lua, for a session no live process holds. `entry`:
 * the directory's entry of a full JID (directory.ts: the hash
 * `{prefix}dir:{bare}`, resource → JSON), or nil. `newer`: whether it is
 * another session than the one whose own entry had sid `sid`, on a live
 * node (its lease `{prefix}node:{id}`): a newer session bound the resource,
 * so that one keeps it and the older one ends. An entry of a dead node is
 * no session. `available`: whether it broadcast available presence.
 */
const NEWER = `local function entry(prefix, host, username, resource)
  local cur = redis.call('HGET', prefix .. 'dir:' .. username .. '@' .. host, resource)
  return cur and cjson.decode(cur)
end
local function newer(prefix, e, sid)
  return e ~= nil and e ~= false and e.sid ~= sid and type(e.node) == 'string' and redis.call('EXISTS', prefix .. 'node:' .. e.node) == 1
end
local function available(e) return e.presence ~= nil and e.presence ~= cjson.null end
`;

/**
 * The end of a session this node holds (sm-registry.ts close): deletes the
 * record and queue in one script. An answer lost on the way loses no
 * stanza: the queue is the session's, in that process, routed there unless
 * TAKE answered 0 (another node's claim has the session and its queue).
 * One that failed (it may not have run) is sent again until answered, so
 * that the record does not outlive the queue routed from memory.
 * KEYS record, queue, owner's set; ARGV epoch, smid: deletes the record;
 * returns [counter_in, host, username, items, resource, presence, directed,
 * ended] or 0 / -1.
 */
export const TAKE = `${FENCE}
local f = redis.call('HMGET', KEYS[1], 'counter_in', 'host', 'username', 'resource', 'presence', 'directed', 'ended')
local items = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return {f[1], f[2], f[3], items, f[4], f[5], f[6], f[7]}`;

/**
 * The first half of the end of a session no live process holds, by the
 * node that holds it, at its timeout (sm-orphans.ts): its record and queue
 * read and the record marked `handing` (TAKEOVER answers as if it were gone:
 * the session ended), both kept, in the node's set, until the node has
 * handed the queue over and deletes them (HANDED_OVER). Not deleted here:
 * an answer lost with its connection, or the node dying before it routed
 * the queue, would take the queue with it. Run again at the same epoch (its
 * answer was lost) it answers the same: the node that never heard it hands
 * the queue over then; a survivor of that node adopts the record (CLAIM,
 * epoch + 1) and hands it over in turn. A local session's end keeps TAKE:
 * its queue is in that process, and it is routed there whatever TAKE's
 * answer (sm-registry.ts). KEYS as TAKE's; ARGV epoch, smid, prefix.
 * Returns TAKE's reply, `covered` (the last five for the unavailable
 * presence such a session is owed, which `covered` 1 withholds: a newer
 * session holds its full JID, available, and its presence stands for that
 * JID now) and `anonymous` (whose stale h it is), or 0 / -1.
 */
export const TAKE_ORPHAN = `${FENCE}${NEWER}
local f = redis.call('HMGET', KEYS[1], 'counter_in', 'host', 'username', 'resource', 'presence', 'directed', 'ended', 'dsid', 'anonymous')
local items = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('HSET', KEYS[1], 'handing', 1)
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
local covered = 0
if f[2] and f[3] and f[4] then
  local e = entry(ARGV[3], f[2], f[3], f[4])
  if newer(ARGV[3], e, f[8]) and available(e) then covered = 1 end
end
return {f[1] or false, f[2] or false, f[3] or false, items, f[4] or false, f[5] or false, f[6] or false, f[7] or false, covered, f[9] or false}`;

/**
 * The second half: record and queue deleted once the node handed the
 * queue over (routed it, and what went to offline storage stored), fenced
 * like every write. A stanza is handed over twice only if the node that
 * routed it never gets this through (it dies first, or stays cut off from
 * Redis until a survivor adopts its sessions): the survivor's hand-over
 * repeats its own. Offline storage keeps every copy it is given (it has no
 * key by stanza), so that is one more copy of each, per such failure, and
 * never none: the price of a hand-over that a lost answer cannot lose.
 * KEYS as TAKE's; ARGV epoch, smid. Returns 1, or 0 (a survivor's claim
 * took it: it hands it over too) / -1 (gone: an earlier run whose answer
 * was lost deleted it).
 */
export const HANDED_OVER = `${FENCE}
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[2])
return 1`;

/**
 * KEYS record, queue, claimer's set; ARGV epoch, claimer, smid, prefix.
 * Raises the epoch and moves the record to the claimer; returns
 * [epoch, hash as field, value…, items, previous owner] or 0 / -1.
 * The survivor of a dead owner claims with it (sm-orphans.ts): the record
 * is marked `ended` (the cluster ended its presence at the death: the
 * dead owner's directory entry of the session), so the node that resumes
 * it later, whoever holds it then, announces it again (and clears the mark
 * once the session is built there: sm-registry.ts). Not a record the dead
 * node held with no session (`orphan`: a claim of its whose resumption
 * failed, a dead node's it had adopted): no entry of the dead node stood
 * for it, so its death ended nothing, and the mark stays as it was (set if
 * an earlier death ended it). Nor one it had claimed (TAKEOVER) and not yet
 * bound (`unbound`: it died between the claim and its directory entry; the
 * old owner, told of the claim, ended the session without a word and keeps
 * its entry only for the claimer's bind to replace): RFC 6121 §4.5.2, the survivor's hand-over
 * announces it unavailable if nobody did, even if the dead node had begun
 * to hand it over (`handing`) and perhaps sent it (twice, never none).
 * It is `orphan` too: held with no session (TAKEOVER). The dead owner's
 * directory entry of the session, if still there, is recorded as its own
 * (`dsid`). A survivor removes a dead node's entries before it adopts its
 * sessions; if that failed, they stay until that node id starts again and
 * removes them, and meanwhile they look live: they are no newer session.
 * A record the dead node was handing over (`handing`) stays so: the
 * survivor hands it over at once.
 */
export const CLAIM = `${FENCE}${NEWER}
local f = redis.call('HMGET', KEYS[1], 'owner', 'host', 'username', 'resource', 'orphan', 'handing', 'unbound')
local owner = f[1]
local epoch = tonumber(ARGV[1]) + 1
local set = {'epoch', epoch, 'owner', ARGV[2], 'orphan', 1}
if f[5] ~= '1' and f[6] ~= '1' and f[7] ~= '1' then set[#set + 1] = 'ended' set[#set + 1] = 1 end
if owner and f[2] and f[3] and f[4] then
  local e = entry(ARGV[4], f[2], f[3], f[4])
  if e and e.node == owner and type(e.sid) == 'string' then set[#set + 1] = 'dsid' set[#set + 1] = e.sid end
end
redis.call('HSET', KEYS[1], unpack(set))
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
if owner then redis.call('SREM', ARGV[4] .. 'sm-node:' .. owner, ARGV[3]) end
redis.call('SADD', KEYS[3], ARGV[3])
return {epoch, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1), owner or ''}`;

/**
 * XEP-0198 §5 on a node that does not hold the session: the record read,
 * the account checked, the claim, the old owner told and its liveness
 * asked, in one script (one round trip; before, a read, the claim, a lease
 * check and a publish were four). Atomic, so no other claim can slip in
 * between the read and the claim: the epoch it raises is the one it read.
 * KEYS record, queue, claimer's set; ARGV claimer, smid, prefix, the
 * claimant's host, username and anonymous flag ('1'/'0'), fenced channel.
 * Returns [epoch, hash as field, value…, items, previous owner, previous
 * owner alive (1/0: 0 also when a survivor holds it for a dead owner, whose
 * presence was ended: CLAIM's `ended`), drain (1: that live owner held a
 * session, whose final h the claimer waits for: sm-registry.ts)], -1 (no record, or one being handed
 * over: TAKE_ORPHAN ended it), -2 (another account's: nothing written) or
 * [REPLACED, epoch] (claimed to be ended).
 *
 * Replaced: RFC 6120 §7.7.2.2, a fresh bind of the full JID ends the
 * older session; one no live process holds (its owner's lease gone, or
 * `orphan`) is not in the directory, so the bind could not end it. Looked
 * for here, where a resumption would bring it back, rather than at every
 * bind (no command on the login path): when a live node's other session
 * holds the resource (not the entry `dsid` this session had when last
 * claimed, which stays until the claimer binds), the resumption fails
 * (XEP-0198 §5: item-not-found) and the session ends as a timed-out one
 * does, by the claimant (sm-orphans.ts): the script claims it as CLAIM does
 * (epoch + 1, `orphan`, in the claimer's set; the holder told by sm-fenced:
 * its wait ends) and the claimant's TAKE_ORPHAN at that epoch hands it
 * over. Not deleted here: an answer lost with its connection would take
 * the queue with it, while a record left to the claimer is found by its
 * check of an unanswered claim (sm-registry.ts) and timed out there.
 * A live owner that holds the session ends it itself (the bind's directory
 * write ended it with conflict), so it is not looked for then: an entry
 * of the owner's own node is its session, or one it ends itself. An entry
 * of another live node is looked for whatever the owner's lease says: the
 * owner may be dead within its lease (not yet declared so, not adopted),
 * when nothing ended the session on the bind and a resumption would take
 * the resource back from the newer session (ending it with conflict);
 * alive, it ends the session with conflict anyway once it hears of the
 * bind, and the claim's sm-fenced notice ends it there first.
 *
 * The entry a claim records as the session's own (`dsid`) is the old
 * owner's (the session's, which stays until the claimer binds) or the one
 * recorded before (the session's still, when a node held it with no
 * session); an entry of another node is a newer session's: a fresh bind
 * the old owner, paused, has not yet answered with conflict, which a
 * later resumption must not take the resource back from.
 */
export const TAKEOVER = `${NEWER}
local f = redis.call('HMGET', KEYS[1], 'epoch', 'owner', 'host', 'username', 'resource', 'anonymous', 'ended', 'orphan', 'dsid', 'handing')
if not f[1] or not f[3] or not f[4] or not f[5] or f[10] == '1' then return -1 end
if f[3] ~= ARGV[4] then return -2 end
if f[6] == '1' then
  if ARGV[6] ~= '1' then return -2 end
elseif ARGV[6] == '1' or f[4] ~= ARGV[5] then return -2 end
local epoch = tonumber(f[1]) + 1
local owner = f[2]
local ownerLive
local function ownerAlive()
  if ownerLive == nil then ownerLive = owner ~= false and redis.call('EXISTS', ARGV[3] .. 'node:' .. owner) == 1 end
  return ownerLive
end
local e = entry(ARGV[3], f[3], f[4], f[5])
if newer(ARGV[3], e, f[9]) and (f[8] == '1' or e.node ~= owner or not ownerAlive()) then
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'owner', ARGV[1], 'orphan', 1)
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
  if owner then redis.call('SREM', ARGV[3] .. 'sm-node:' .. owner, ARGV[2]) end
  redis.call('SADD', KEYS[3], ARGV[2])
  redis.call('PUBLISH', ARGV[7], cjson.encode({smid = ARGV[2], epoch = epoch}))
  return {${REPLACED}, epoch}
end
local dsid = ''
if e and type(e.sid) == 'string' and (e.node == owner or e.sid == f[9]) then dsid = e.sid end
redis.call('HSET', KEYS[1], 'epoch', epoch, 'owner', ARGV[1], 'hibernated_at', 0, 'orphan', 0, 'dsid', dsid, 'unbound', 1)
redis.call('PERSIST', KEYS[1])
redis.call('PERSIST', KEYS[2])
if owner then redis.call('SREM', ARGV[3] .. 'sm-node:' .. owner, ARGV[2]) end
redis.call('SADD', KEYS[3], ARGV[2])
local alive = 0
if owner and owner ~= ARGV[1] and f[7] ~= '1' and ownerAlive() then alive = 1 end
local drain = 0
if alive == 1 and f[8] ~= '1' then drain = 1 end
redis.call('PUBLISH', ARGV[7], cjson.encode({smid = ARGV[2], epoch = epoch, from = owner or ''}))
return {epoch, redis.call('HGETALL', KEYS[1]), redis.call('LRANGE', KEYS[2], 0, -1), owner or '', alive, drain}`;

export function encodeItem(item: Undelivered): string {
  return `${item.at} ${item.stanza.toString()}`;
}

/** A stored stanza, as this code wrote it (so read with WRITTEN_LIMITS, not a client's); undefined if it cannot be read back. */
export function decodeItem(raw: string): Undelivered | undefined {
  const space = raw.indexOf(' ');
  try {
    return { at: Number(raw.slice(0, space)), stanza: parseXml(raw.slice(space + 1), WRITTEN_LIMITS, NS.CLIENT) };
  } catch {
    return undefined;
  }
}

/** A flat HGETALL reply (Lua returns it as an array) as an object. */
export function fields(flat: readonly unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = String(flat[i + 1]);
  return out;
}
