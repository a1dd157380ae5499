/**
 * A BOSH sid and the next rid are all it takes to act on a session (send as the user, read what it is sent):
 * XEP-0124 §19.3 calls the SID security-critical. So no log line carries it, at any level; the lines carry a
 * short non-reversible tag of it (the first hex digits of its SHA-256), the same on every line and every node,
 * so an operator still follows one session's lines.
 */
import t from 'tap';
import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { NS, x } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawBoshClient, terminalCondition } from '../helpers/bosh-client.js';

const lines: string[] = [];
const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done(); } });
const server = await withUsers(t, ['alice'], { ALLOW_INSECURE_PLAIN: 'true' }, undefined, { logger: { level: 'trace', stream: sink } });
const url = `${server.httpUrl}/http-bind`;
const tagOf = (sid: string): string => createHash('sha256').update(sid).digest('hex').slice(0, 12);

t.test('no log line carries a BOSH sid; the session lines carry its tag', async (t) => {
  const a = new RawBoshClient(url);
  t.teardown(() => a.destroy());
  await a.login('alice', 'alice-pw', 'r1');
  // A repeated rid is answered from the buffer (bosh-resent); then the client ends the session.
  const again = a.body({}, x('presence', { xmlns: NS.CLIENT }));
  await a.raw(again);
  await a.raw(again);
  await a.terminate();
  // A second session ended for a rid far outside the window (bosh session terminated, item-not-found).
  const b = new RawBoshClient(url);
  t.teardown(() => b.destroy());
  await b.create();
  const refused = await b.raw(x('body', { xmlns: NS.HTTPBIND, sid: b.sid, rid: b.rid + 100_000 }));
  t.ok(terminalCondition(refused), 'the far rid ends the session');

  const sids = [a.sid!, b.sid!];
  for (const sid of sids) {
    const leaking = lines.filter((l) => l.includes(sid));
    t.same(leaking, [], `no line carries the sid ${sid}`);
  }
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  const about = (msg: string) => parsed.filter((l) => l.event === msg || l.msg === msg);
  t.same(about('bosh-resent').map((l) => l.sidTag), [tagOf(a.sid!)], 'bosh-resent carries the tag');
  t.same(about('bosh session terminated').map((l) => l.sidTag), [tagOf(b.sid!)], 'the terminated line carries the second session\'s tag');
});
