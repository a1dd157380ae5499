/**
 * Divergences from XEP-0124 found by a conformance review that sent the same raw bodies to the
 * gateway and to Prosody's mod_bosh (shared/peers/prosody.sh): one test per rule, on a real port.
 */
import t, { type Test } from 'tap';
import { NS, x } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawBoshClient, payloads, replaceOverWebSocket, terminalCondition, type BoshResponse } from '../helpers/bosh-client.js';
import { eventually } from '../helpers/eventually.js';

const server = await withUsers(t, { alice: 'alice-secret' }, { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '1' });
const url = `${server.httpUrl}/http-bind`;

function client(tt: Test): RawBoshClient {
  const c = new RawBoshClient(url, { timeout: 5000 });
  tt.teardown(() => c.destroy());
  return c;
}

/**
 * §17.2: "These binding errors imply that the HTTP session is terminated". A body that does not
 * parse was answered bad-request (or policy-violation when too deep) while the session its start
 * tag names went on until its inactivity period, the client told it was over, the XMPP session
 * still bound and available. The same answer to a body that parses but breaks a binding rule
 * already ended the session ('a bad request on a live session ends it', bosh.test.ts).
 */
t.test('a body that does not parse ends the session its start tag names, with the condition it was answered (§17.2)', async (t) => {
  const cases: Array<[string, (c: RawBoshClient) => string, string]> = [
    ['not well-formed', (c) => `<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid}'><message xmlns='jabber:client'></body>`, 'bad-request'],
    ['too deep', (c) => `<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid}'>${'<a>'.repeat(200)}${'</a>'.repeat(200)}</body>`, 'policy-violation'],
  ];
  for (const [name, body, condition] of cases) {
    await t.test(name, async (t) => {
      const c = client(t);
      const resource = name.replace(/ /g, '-');
      await c.login('alice', 'alice-secret', resource);
      t.ok(server.app.sessions.get('localhost', 'alice', resource), 'the XMPP session is bound');
      const res = await c.raw(body(c));
      t.equal(res.status, 200);
      t.equal(terminalCondition(res), condition, `${condition} (${res.text.slice(0, 200)})`);
      const next = await c.send();
      t.equal(terminalCondition(next), 'item-not-found', `the session is gone: its next rid gets item-not-found (${next.text.slice(0, 200)})`);
      await eventually(() => server.app.sessions.get('localhost', 'alice', resource) === undefined, { message: 'the XMPP session to end' });
    });
  }
});

/**
 * §17.2 beside XEP-0206 §7: a body that does not parse, sent to a session whose stream the server
 * closed (its final body waiting for the client's next request), was answered bad-request and ended
 * the session, whatever its start tag said: the client never got the stream error nor what was
 * queued for it, and anyone who could name the sid could take both away. It now goes through the
 * rules a body that parses goes through (exchange.ts): of the session's sequence, it gets the final
 * body; not of it, item-not-found, and the session waits on for its client's own request.
 */
t.test('a body that does not parse, for a session whose stream the server closed, is answered as a body that parses', async (t) => {
  const malformed = (c: RawBoshClient, rid: number): string => `<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${rid}'><message xmlns='jabber:client'></body>`;
  const conflict = (t: Test, res: BoshResponse, what: string): void => {
    t.equal(terminalCondition(res), 'remote-stream-error', `${what} gets the final body (${res.text.slice(0, 300)})`);
    t.ok(payloads(res.body).at(-1)?.getChild('conflict'), 'with the stream error (XEP-0206 §7)');
  };
  /** Alice over BOSH, holding no request, her stream closed by a WebSocket login with the same resource (conflict). */
  const closedByServer = async (t: Test, resource: string): Promise<RawBoshClient> => {
    const c = client(t);
    await c.login('alice', 'alice-secret', resource);
    await replaceOverWebSocket(t, server, 'alice', 'alice-secret', resource);
    return c;
  };

  await t.test('with the next rid: the final body, and the session ends', async (t) => {
    const c = await closedByServer(t, 'closed-next');
    conflict(t, await c.raw(malformed(c, c.rid++)), 'the body that does not parse');
    const next = await c.send();
    t.equal(terminalCondition(next), 'item-not-found', `the session is gone (${next.text.slice(0, 200)})`);
  });

  await t.test('with a rid beyond the window: item-not-found, and the session waits on for its own request', async (t) => {
    const c = await closedByServer(t, 'closed-beyond');
    const res = await c.raw(malformed(c, c.rid + 1000));
    t.equal(terminalCondition(res), 'item-not-found', `not of the session's sequence (§14.2) (${res.text.slice(0, 200)})`);
    conflict(t, await c.send(), "the client's own next request");
  });

  // Well-formed, but breaking a rule of the body: judged by its start tag all the same (it ended the session with
  // bad-request before, the client losing the stream error and what was queued for it).
  await t.test('a well-formed body with an unknown type: item-not-found, and the session waits on for its own request', async (t) => {
    const c = await closedByServer(t, 'closed-bad-type');
    const res = await c.raw(`<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid}' type='bogus'/>`);
    t.equal(terminalCondition(res), 'item-not-found', `no readable type: not of the session's sequence (${res.text.slice(0, 200)})`);
    conflict(t, await c.send(), "the client's own next request");
  });

  await t.test('a well-formed body with character data and the next rid: the final body, and the session ends', async (t) => {
    const c = await closedByServer(t, 'closed-text');
    conflict(t, await c.raw(`<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid++}'>text</body>`), 'the body with character data');
    t.equal(terminalCondition(await c.send()), 'item-not-found', 'the session is gone');
  });
});

t.test('a legacy session (no ver) gets HTTP 400 for a body that does not parse, and ends (§17.1)', async (t) => {
  const c = client(t);
  await c.create({ ver: undefined });
  const res = await c.raw(`<body xmlns='${NS.HTTPBIND}' sid='${c.sid}' rid='${c.rid}'><message></body>`);
  t.equal(res.status, 400, 'the deprecated status of bad-request');
  t.equal(terminalCondition(res), 'bad-request');
  t.equal(terminalCondition(await c.send()), 'item-not-found', 'the session is gone');
});

t.test('a body that does not parse and names no live session is still bad-request, and ends no other session', async (t) => {
  const other = client(t);
  await other.create();
  const res = await other.raw(`<body xmlns='${NS.HTTPBIND}' sid='not-${other.sid}' rid='${other.rid}'><message></body>`);
  t.equal(res.status, 200);
  t.equal(terminalCondition(res), 'bad-request');
  const next = await other.send();
  t.equal(terminalCondition(next), undefined, `the session goes on (${next.text.slice(0, 200)})`);
});

/**
 * §9.2: 'time' is the milliseconds since the response named by 'report' was sent, and the schema
 * (§22) types it xs:unsignedShort: at most 65535. A response lost more than 65.5 s before the
 * client's lagging 'ack' (a 'wait' above 65 s: BOSH_MAX_WAIT goes to 3600) got a value no schema
 * reader accepts. The clock is moved forward instead of waiting for it.
 */
t.test("a lost response's 'time' never exceeds the schema's unsignedShort, however long ago it was sent (§9.2)", async (t) => {
  const c = client(t);
  await c.create({ ack: 1 });
  const lostRid = c.rid;
  t.equal((await c.send()).body?.attr('report'), undefined, 'answered (the client will claim it never arrived)');
  const realNow = Date.now;
  t.teardown(() => { Date.now = realNow; });
  Date.now = () => realNow() + 70_000;
  const res = await c.send({ ack: lostRid - 1 });
  t.equal(res.body?.attr('report'), String(lostRid), `the lost response is reported (${res.text.slice(0, 200)})`);
  t.equal(res.body?.attr('time'), '65535', 'the time, at most 65535 ms');
});

/**
 * §8: "Upon receipt of a request, the connection manager SHOULD forward the content of the <body/>
 * element to the server". The session creation request's payloads were dropped unread: a SASL
 * <auth/> sent with it was never answered, the client waiting for ever (Prosody processes them,
 * after the stream header). They now follow the stream's opening.
 */
t.test("the session creation request's payloads are processed after the stream opens, not dropped (§8)", async (t) => {
  const c = client(t);
  const auth = x('auth', { xmlns: NS.SASL, mechanism: 'PLAIN' }, Buffer.from('\0alice\0alice-secret').toString('base64'));
  const created = await c.raw(x('body', {
    xmlns: NS.HTTPBIND, 'xmlns:xmpp': NS.XBOSH, rid: c.rid++, to: 'localhost', wait: 1, hold: 1, ver: '1.11', 'xmpp:version': '1.0',
  }, auth));
  c.sid = created.body?.attr('sid');
  t.ok(c.sid, 'a session is created');
  t.ok(created.body?.getChild('features', NS.STREAM), 'the creation response carries the stream features first');
  const seen = [...payloads(created.body)];
  for (let i = 0; i < 3 && !seen.some((el) => el.is('success', NS.SASL)); i++) seen.push(...payloads((await c.send()).body));
  t.ok(seen.some((el) => el.is('success', NS.SASL)), `the <auth/> is answered (${seen.map((el) => el.name).join(', ')})`);
});

/**
 * §13: "At any time, the client MAY gracefully terminate the session" with type='terminate'. On
 * the creation request it was ignored: the session it asked to end lived on until its inactivity
 * period. Prosody ends it at once, as any terminate; so does the gateway now.
 */
t.test("type='terminate' on the session creation request ends the session it creates (§13)", async (t) => {
  const c = client(t);
  const before = server.app.bosh.stats().sessions;
  const res = await c.create({ type: 'terminate' });
  t.equal(res.body?.attr('type'), 'terminate', `answered with a terminate body (${res.text.slice(0, 200)})`);
  t.equal(res.body?.attr('condition'), undefined, 'no error condition');
  await eventually(() => server.app.bosh.stats().sessions === before, { message: 'no session left' });
});
