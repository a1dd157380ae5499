/**
 * App.shutdown() stops accepting before it closes the sessions, and SIGTERM
 * loses nothing (main.ts exits as soon as shutdown() resolves): while the
 * drain still writes offline messages, a client that reconnects (as clients
 * do after system-shutdown) gets no new session (before, it got one, logged
 * in, and a message it sent was acknowledged and never stored: found in review).
 */
import t from 'tap';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { createMemoryStorage } from '../../src/storage/index.js';

const SM = 'urn:xmpp:sm:3';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a session opened during the shutdown drain', async (t) => {
  const storage = createMemoryStorage();
  // A store that takes its time (a busy disk): the drain lasts ~600 ms.
  const push = storage.offline.push.bind(storage.offline);
  storage.offline.push = async (...args: Parameters<typeof push>) => { await sleep(600); return push(...args); };
  const server = await withUsers(t, ['alice', 'bob', 'carol'], { ALLOW_INSECURE_PLAIN: 'true' }, storage);

  const alice = await RawWsClient.connect(server.wsUrl);
  await alice.login('alice', 'alice-pw', 'a');
  alice.send("<message xmlns='jabber:client' to='carol@localhost' type='chat' id='m1'><body>before</body></message>");
  await sleep(50);

  let done = false;
  const ending = server.app.shutdown().then(() => { done = true; });
  await sleep(50);
  t.equal(done, false, 'the drain is still running');

  let accepted = false;
  let carolAcked = false;
  try {
    const bob = await RawWsClient.connect(server.wsUrl);
    await bob.login('bob', 'bob-pw', 'b');
    accepted = true;
    bob.send(`<enable xmlns='${SM}' resume='true'/>`);
    await bob.until((el) => el.local === 'enabled');
    bob.send("<presence xmlns='jabber:client'/>");
    const carol = await RawWsClient.connect(server.wsUrl);
    await carol.login('carol', 'carol-pw', 'c');
    carol.send(`<enable xmlns='${SM}'/>`);
    await carol.until((el) => el.local === 'enabled');
    carol.send("<message xmlns='jabber:client' to='bob@localhost/b' type='chat' id='m2'><body>during</body></message>");
    carol.send(`<r xmlns='${SM}'/>`);
    const a = await carol.until((el) => el.local === 'a');
    carolAcked = a.attrs.h === '1';
    // bob gets it and never acknowledges it (a reload, a flaky network).
    await bob.until((el) => el.local === 'message');
    t.comment(`carol's message acknowledged to her (h=${a.attrs.h}) and sent to bob, unacked`);
  } catch (err) {
    t.comment(`new session refused: ${String(err)}`);
  }
  t.equal(accepted, false, 'no new session is accepted (and logged in) once shutdown has begun');

  await ending;
  const stored = (await storage.offline.list('localhost', 'bob')).map((m) => m.stanza);
  t.comment(`stored for bob when shutdown() resolved: ${stored.length}; sessions left: ${server.app.sessions.size}`);
  if (carolAcked) t.ok(stored.some((s) => s.includes('during')), "carol's acknowledged message, unacked by bob, is stored offline before shutdown() resolves");
});
