/**
 * An account deleted and created again under its name is someone else
 * (migration 12): a login to the new account in the moments before the
 * server read the deletion from the change log stays (account-changes.ts),
 * while the old account's sessions end. But the accounts in memory are
 * shared by every session of a name (accounts.ts): the new login was bound
 * to the deleted account's roster, which its old sessions held, and kept it
 * for as long as it lived, its presence going to the old account's contacts.
 */
import t from 'tap';
import { join } from 'node:path';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { openSqliteStorage, type RosterItem } from '../../src/storage/index.js';
import { deriveStoredCredentials } from '../../src/storage/credentials.js';
import { withServer } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { eventually } from '../helpers/eventually.js';
import { holdChangeLog } from '../helpers/change-log.js';

const H = 'localhost';
const E = 'erin@localhost';
const dir = t.testdir();
const dataDir = join(dir, 'data');
const storage = openSqliteStorage(dataDir);
const server = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', DATA_DIR: dataDir }, storage);

let ids = 0;
/** Everything the server sent before this answer was handled first (the session's queue is in order). */
async function roundTrip(c: RawWsClient): Promise<void> {
  const id = `ping${++ids}`;
  c.send(`<iq xmlns='jabber:client' type='get' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until((el) => el.attr('id') === id);
}

/** Logged in, its roster asked for (an interested resource) and initial presence sent. */
async function online(user: string, password: string, resource: string): Promise<{ c: RawWsClient; roster: XmlElement }> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.ws.terminate());
  await c.login(user, password, resource);
  c.send(`<iq xmlns='jabber:client' type='get' id='roster'><query xmlns='${NS.ROSTER}'/></iq>`);
  const roster = await c.until((el) => el.attr('id') === 'roster');
  c.send(`<presence xmlns='jabber:client'/>`);
  await roundTrip(c);
  return { c, roster };
}

const rosterJids = (el: XmlElement): string[] =>
  el.getChild('query', NS.ROSTER)?.getChildren().filter((c) => c.local === 'item').map((i) => i.attr('jid')!) ?? [];
const item = (jid: string, more: Partial<RosterItem> = {}): RosterItem =>
  ({ jid, name: undefined, groups: [], subscription: 'none', ask: false, approved: false, ...more });
const streamError = (c: RawWsClient): XmlElement | undefined => c.frames.find((el) => el.local === 'error' && el.ns === NS.STREAM);

t.test('a login to the account created again keeps none of the deleted account\'s roster, and its presence leaves the old contacts', async (t) => {
  for (const [u, pw] of [['erin', 'erin-old'], ['bob', 'bob-pw']]) {
    await storage.users.create(H, u!, await deriveStoredCredentials(pw!, 4096));
  }
  await storage.rosters.putItem(H, 'erin', item('bob@localhost', { subscription: 'both' }), 1);
  await storage.rosters.putItem(H, 'bob', item(E, { subscription: 'both' }), 1);
  const bob = await online('bob', 'bob-pw', 'desk');
  const old = await online('erin', 'erin-old', 'old');
  t.same(rosterJids(old.roster), ['bob@localhost']);

  // The server reads the change log only once the new login is online, as when a script's delete, add and
  // the new owner's login come between two of its readings (every 500 ms).
  const hold = holdChangeLog(storage.users);
  await storage.users.delete(H, 'erin');
  await storage.users.create(H, 'erin', await deriveStoredCredentials('erin-new', 4096));
  t.same((await storage.rosters.load(H, 'erin')).items, [], 'the new account has an empty roster in the store');
  const fresh = await online('erin', 'erin-new', 'new');
  t.notOk(streamError(old.c), 'the new login was bound while the deleted account\'s session was still served (the case under test)');
  await hold.release();

  const ended = await old.c.until((el) => el.local === 'error' && el.ns === NS.STREAM, 5000);
  t.equal(streamErrorCondition(ended), 'not-authorized', 'the deleted account\'s session ends');
  await roundTrip(fresh.c);
  t.notOk(streamError(fresh.c), 'the login to the account created again stays');

  // Its client learns that bob is not on its roster (it was served the old one), and the server's copy agrees.
  t.same(rosterJids(fresh.roster), ['bob@localhost'], 'bound to the copy in memory, the new login was served the old roster');
  const push = await eventually(() => fresh.c.frames.find((el) => el.local === 'iq' && el.attr('type') === 'set' && rosterJids(el).includes('bob@localhost')),
    { message: 'a roster push for bob' });
  t.equal(push.getChild('query', NS.ROSTER)?.getChild('item')?.attr('subscription'), 'remove', 'a roster push removes bob');
  fresh.c.send(`<iq xmlns='jabber:client' type='get' id='roster2'><query xmlns='${NS.ROSTER}'/></iq>`);
  t.same(rosterJids(await fresh.c.until((el) => el.attr('id') === 'roster2')), [], 'the roster in memory is the new account\'s: empty');
  // Bob saw the new login's presence (the old roster had him as a subscriber): he is told it went.
  t.ok(bob.c.frames.some((el) => el.local === 'presence' && el.attr('from') === `${E}/new` && el.attr('type') === undefined), 'bob got its presence');
  await eventually(() => bob.c.frames.find((el) => el.local === 'presence' && el.attr('from') === `${E}/new` && el.attr('type') === 'unavailable'),
    { message: 'unavailable from the new login at bob' });
  // Its next presence goes to nobody of the old account's.
  fresh.c.send(`<presence xmlns='jabber:client'><status>later</status></presence>`);
  await roundTrip(fresh.c);
  await roundTrip(bob.c);
  t.notOk(bob.c.frames.find((el) => el.local === 'presence' && el.getChildText('status') === 'later'), 'bob gets no presence of the new erin');
});
