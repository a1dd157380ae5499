/**
 * Deleting an account with the CLI (another process, the same SQLite file)
 * ends what other local accounts held with it, as Prosody (mod_presence's
 * user-deleted) and ejabberd (mod_roster's remove_user) do: as if it had
 * sent unsubscribe and unsubscribed to each contact (RFC 6121 §3.2, §3.3).
 * Before, the contacts kept subscription from/to/both with it and its
 * pending requests, so an account made again under the name received their
 * presence (a privacy leak) and they got the dead request at every login.
 */
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { openSqliteStorage, type RosterItem } from '../../src/storage/index.js';
import { withServer } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'xmpp-web-gateway.js');
const H = 'localhost';
const A = 'alice@localhost';
const dir = t.testdir();
const dataDir = join(dir, 'data');
const server = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', DATA_DIR: dataDir }, openSqliteStorage(dataDir));

/** The real CLI, as an operator runs it beside the server. */
function cli(args: string[], input = ''): Promise<number | null> {
  const env = { PATH: process.env.PATH, DATA_DIR: dataDir, XMPP_DOMAIN: 'localhost', SCRAM_ITERATIONS: '4096' };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'ignore', 'inherit'] });
  child.stdin.end(input);
  return new Promise((resolve, reject) => { child.on('error', reject); child.on('close', resolve); });
}

let ids = 0;
let bob: RawWsClient;
const root = t;
/** Logged in, roster asked for (an interested resource) and initial presence sent; resolves after a ping round trip. */
async function online(t: Test, user: string, password: string, resource: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.login(user, password, resource);
  c.send(`<iq xmlns='jabber:client' type='get' id='roster'><query xmlns='${NS.ROSTER}'/></iq>`);
  await c.until((el) => el.attr('id') === 'roster');
  c.send(`<presence xmlns='jabber:client'/>`);
  await roundTrip(c);
  return c;
}

/** Everything the server sent before this answer was handled first (the session's queue is in order). */
async function roundTrip(c: RawWsClient): Promise<void> {
  const id = `ping${++ids}`;
  c.send(`<iq xmlns='jabber:client' type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until((el) => el.attr('id') === id);
}

const rosterItems = (el: XmlElement | undefined): XmlElement[] => el?.getChild('query', NS.ROSTER)?.getChildren().filter((c) => c.local === 'item') ?? [];
const isPushFor = (el: XmlElement, jid: string): boolean =>
  el.local === 'iq' && el.attr('type') === 'set' && rosterItems(el).some((i) => i.attr('jid') === jid);
const fromAlice = (el: XmlElement): boolean => (el.attr('from') ?? '').split('/')[0] === A;

const item = (jid: string, more: Partial<RosterItem> = {}): RosterItem =>
  ({ jid, name: undefined, groups: [], subscription: 'none', ask: false, approved: false, ...more });

t.test('setup: alice is subscribed both ways with bob, asked carol, is pre-approved by erin, and dave gets her presence', async (t) => {
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin']) t.equal(await cli(['user', 'add', `${u}@localhost`], `${u}-pw\n`), 0);
  const r = server.storage.rosters;
  await r.putItem(H, 'alice', item('bob@localhost', { subscription: 'both' }), 100);
  await r.putItem(H, 'alice', item('carol@localhost', { ask: true }), 101);
  await r.putItem(H, 'alice', item('dave@localhost', { subscription: 'to' }), 102);
  await r.putItem(H, 'bob', item(A, { name: 'Alice', groups: ['Friends'], subscription: 'both' }), 200);
  await r.putPending(H, 'carol', { jid: A, stanza: `<presence xmlns='jabber:client' type='subscribe' from='${A}' to='carol@localhost'/>` });
  await r.putItem(H, 'dave', item(A, { subscription: 'from' }), 300);
  await r.putItem(H, 'erin', item(A, { approved: true }), 400);
});

t.test('an account deleted with the CLI: its contacts drop to none, online ones by roster push, and see it go unavailable', async (t) => {
  const alice = await online(t, 'alice', 'alice-pw', 'laptop');
  // Bob stays online into the next test: his roster in memory must follow too.
  bob = await online(root, 'bob', 'bob-pw', 'desk');
  await eventually(() => bob.frames.find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop` && el.attr('type') === undefined),
    { message: "alice's presence at bob" });

  t.equal(await cli(['user', 'delete', A]), 0);
  const error = await alice.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(error), 'not-authorized', "alice's session ends");

  const push = await eventually(() => bob.frames.find((el) => isPushFor(el, A)), { message: 'a roster push for alice at bob' });
  const pushed = rosterItems(push)[0]!;
  t.equal(pushed.attr('subscription'), 'none', 'RFC 6121 §3.2/§3.3: subscription none');
  t.equal(pushed.attr('ask'), undefined);
  t.equal(pushed.attr('name'), 'Alice', 'the item stays, with its name');
  t.match(push.getChild('query', NS.ROSTER)?.attr('ver'), /^\d+$/, 'XEP-0237: a new version');
  bob.send(`<iq xmlns='jabber:client' type='result' id='${push.attr('id')!}'/>`);
  await eventually(() => bob.frames.find((el) => el.local === 'presence' && el.attr('from') === `${A}/laptop` && el.attr('type') === 'unavailable'),
    { message: "alice's unavailable presence at bob" });

  // What nobody online held is corrected in the store.
  const dave = await server.storage.rosters.load(H, 'dave');
  t.same(dave.items, [item(A)], "dave (offline) has alice with subscription none");
  t.same((await server.storage.rosters.load(H, 'carol')).pending, [], "alice's request to carol is withdrawn");
  t.same((await server.storage.rosters.load(H, 'erin')).items, [item(A)], "erin's pre-approval of alice is gone");
});

t.test('an account made again under the name gets none of the old contacts\' presence, and they get no old request', async (t) => {
  t.equal(await cli(['user', 'add', A], 'new-alice-pw\n'), 0);
  const bob2 = await online(t, 'bob', 'bob-pw', 'desk2');
  const bobRoster = bob2.frames.find((el) => el.attr('id') === 'roster');
  t.equal(rosterItems(bobRoster).find((i) => i.attr('jid') === A)?.attr('subscription'), 'none', "bob's roster says none");

  const alice = await online(t, 'alice', 'new-alice-pw', 'phone');
  t.same(rosterItems(alice.frames.find((el) => el.attr('id') === 'roster')), [], 'the new alice starts with an empty roster');
  // From the session that was online through the deletion (his account never left memory).
  bob.send(`<presence xmlns='jabber:client'><status>back</status></presence>`);
  bob.send(`<message xmlns='jabber:client' to='${A}' id='m1'><body>hello</body></message>`);
  await alice.until((el) => el.local === 'message' && el.attr('id') === 'm1');
  t.notOk(alice.frames.find((el) => el.local === 'presence' && (el.attr('from') ?? '').startsWith('bob@localhost')),
    "no presence of bob reaches the new alice (before the fix: bob's broadcast still went to her)");

  const carol = await online(t, 'carol', 'carol-pw', 'tablet');
  t.notOk(carol.frames.find((el) => el.local === 'presence' && el.attr('type') === 'subscribe' && fromAlice(el)),
    "carol is not asked again by the old alice at login");

  // Erin's pre-approval was for the old alice: the new one's request waits for erin.
  alice.send(`<presence xmlns='jabber:client' type='subscribe' to='erin@localhost'/>`);
  await roundTrip(alice);
  const erin = await eventually(async () => {
    const r = await server.storage.rosters.load(H, 'erin');
    return r.pending.some((p) => p.jid === A) ? r : undefined;
  }, { message: "the new alice's request stored at erin" });
  t.equal(erin.items.find((i) => i.jid === A)?.subscription, 'none', 'not approved on her behalf');
  await roundTrip(alice);
  t.notOk(alice.frames.find((el) => el.local === 'presence' && el.attr('type') === 'subscribed'), 'alice got no subscribed');
});
