/**
 * An unknown user must look like a wrong password — "the same fake salts".
 * A real account answers the same salt for every spelling that names it
 * (Alice, ALICE and alice are one localpart, RFC 7622 §3.3 case mapping),
 * so an unknown one must too; otherwise comparing two spellings tells which accounts exist.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';

const server = await withUsers(t, ['alice']);

async function saltOf(user: string): Promise<string> {
  const c = await RawWsClient.connect(server.wsUrl);
  try {
    c.open();
    await c.next();
    await c.next();
    const first = Buffer.from(`n,,n=${user},r=abcdefghijklmnop`).toString('base64');
    c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${first}</auth>`);
    const ch = await c.next();
    if (!ch.is('challenge', NS.SASL)) throw new Error(ch.toString());
    const s = Buffer.from(ch.text(), 'base64').toString('utf8');
    return /,s=([^,]+),/.exec(s)![1]!;
  } finally {
    c.close();
  }
}

t.test('two spellings of an existing account get the same salt (sanity)', async (t) => {
  t.equal(await saltOf('Alice'), await saltOf('alice'));
});

t.test('two spellings of a missing account get the same fake salt too', async (t) => {
  t.equal(await saltOf('Mallory'), await saltOf('mallory'), 'else "Mallory" vs "mallory" reveals that mallory does not exist');
});
