/**
 * The authorization identity is a JID (RFC 6120 §6.3.8; XEP-0388 §7.1 "the identifier is
 * normalized by treating it as a JID, and performing normalization as described in RFC 7622").
 * 'Alice@LOCALHOST' is the bare JID alice@localhost, so a client naming itself that way must be
 * let in. And XEP-0388 §2.3/§7.1: "Any non-empty authorization string MUST be considered an error
 * if the stream's from attribute (if present) does not match."
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { plain, scramFirst } from '../helpers/scram-client.js';
import { authenticate } from '../helpers/sasl2.js';

const server = await withUsers(t, ['alice', 'bob'], { ALLOW_INSECURE_PLAIN: 'true', SASL2_ENABLED: 'true' });

async function opened(from?: string): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  c.send(`<open xmlns='${NS.FRAMING}' to='localhost' version='1.0'${from ? ` from='${from}'` : ''}/>`);
  await c.next();
  await c.next();
  return c;
}

t.test('PLAIN: authzid Alice@LOCALHOST is alice@localhost (RFC 7622 normalisation)', async (t) => {
  const c = await opened();
  t.teardown(() => c.close());
  c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', 'alice-pw', 'Alice@LOCALHOST')}</auth>`);
  const answer = await c.next();
  t.ok(answer.is('success', NS.SASL), `success, got ${answer.toString()}`);
});

t.test('SCRAM: a=alice@LOCALHOST is alice@localhost', async (t) => {
  const c = await opened();
  t.teardown(() => c.close());
  const first = scramFirst('alice');
  const withAuthz = Buffer.from(`n,a=alice@LOCALHOST,${first.bare}`).toString('base64');
  c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${withAuthz}</auth>`);
  const ch = await c.next();
  t.ok(ch.is('challenge', NS.SASL), `a challenge, got ${ch.toString()}`);
});

t.test('SASL2: an authzid that differs from the stream from is an error', async (t) => {
  const c = await opened('bob@localhost');
  t.teardown(() => c.close());
  c.send(authenticate({ mechanism: 'PLAIN', initial: Buffer.from(`alice@localhost\0alice\0alice-pw`).toString('base64') }).toString());
  const answer = await c.next();
  t.ok(answer.is('failure', NS.SASL2), `failure, got ${answer.toString()}`);
});
