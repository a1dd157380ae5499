/**
 * A SASL message that is not UTF-8 violates its mechanism's syntax: PLAIN's
 * message is UTF-8 (RFC 4616 §2: UTF8SAFE), SCRAM's attribute values are
 * UTF-8 (RFC 5802 §7: value-char = UTF8-char), so the answer is RFC 6120
 * §6.5.7's malformed-request ("the data sent violates the syntax for the
 * specified SASL mechanism"), as Prosody answers, not not-authorized: it is
 * no wrong password. Before, the bytes
 * were decoded with U+FFFD in their place and checked as a password (PLAIN:
 * not-authorized), or taken into SCRAM's AuthMessage (an extension: a
 * challenge, then not-authorized) or its authzid (invalid-authzid).
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient } from '../helpers/ws-client.js';
import { authenticate, failureCondition as sasl2Condition } from '../helpers/sasl2.js';

const server = await withUsers(t, { alice: 'alice-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SASL2_ENABLED: 'true' });

const b64 = (...parts: (string | Buffer)[]): string => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p))).toString('base64');
const FF = Buffer.from([0xff]);
const failureCondition = (el: { getChildren(): { local: string }[] }) => el.getChildren().find((c) => c.local !== 'text')?.local;

async function opened(): Promise<RawWsClient> {
  const c = await RawWsClient.connect(server.wsUrl);
  t.teardown(() => c.close());
  await c.openStream();
  return c;
}

t.test('legacy SASL: bytes that are not UTF-8 are malformed-request', async (t) => {
  const cases: Array<[string, string]> = [
    ['PLAIN password', b64('\0alice\0al', FF, 'ice')],
    ['PLAIN authcid', b64('\0al', FF, 'ice\0alice-secret')],
    ['PLAIN authzid', b64('al', FF, 'ice@localhost\0alice\0alice-secret')],
  ];
  for (const [name, payload] of cases) {
    const c = await opened();
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${payload}</auth>`);
    const answer = await c.next();
    t.ok(answer.is('failure', NS.SASL), `${name}: <failure/>`);
    t.equal(failureCondition(answer), 'malformed-request', `${name}: malformed-request`);
  }
  const scram: Array<[string, string]> = [
    ['SCRAM user name', b64('n,,n=al', FF, 'ice,r=abcdefgh')],
    ['SCRAM extension', b64('n,,n=alice,r=abcdefgh,x=', FF)],
    ['SCRAM authzid', b64('n,a=al', FF, 'ice@localhost,n=alice,r=abcdefgh')],
  ];
  for (const [name, payload] of scram) {
    const c = await opened();
    c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${payload}</auth>`);
    const answer = await c.next();
    t.ok(answer.is('failure', NS.SASL), `${name}: <failure/>, no challenge`);
    t.equal(failureCondition(answer), 'malformed-request', `${name}: malformed-request`);
  }
  // The client-final message: an extension that is not UTF-8 (the nonce is right).
  const c = await opened();
  c.send(`<auth xmlns='${NS.SASL}' mechanism='SCRAM-SHA-256'>${b64('n,,n=alice,r=abcdefgh')}</auth>`);
  const challenge = await c.next();
  t.ok(challenge.is('challenge', NS.SASL), 'a challenge for a good client-first');
  const nonce = /r=([^,]+)/.exec(Buffer.from(challenge.text(), 'base64').toString('utf8'))![1]!;
  c.send(`<response xmlns='${NS.SASL}'>${b64(`c=biws,r=${nonce},x=`, FF, `,p=${Buffer.alloc(32).toString('base64')}`)}</response>`);
  t.equal(failureCondition(await c.next()), 'malformed-request', 'SCRAM client-final extension: malformed-request');
});

t.test('SASL2: bytes that are not UTF-8 are malformed-request', async (t) => {
  const c = await opened();
  c.send(authenticate({ mechanism: 'PLAIN', initial: b64('\0alice\0al', FF, 'ice') }).toString());
  const answer = await c.next();
  t.equal(sasl2Condition(answer), 'malformed-request', 'PLAIN over SASL2: malformed-request');
});
