/**
 * An announcement (admin socket, `announce`) goes into a headline to every
 * online resource. Its text comes from the operator (a terminal paste, a
 * file) and may hold characters XML 1.0 §2.2 does not allow (an ESC of a
 * colour code, a form feed, NUL): written as they are, each client's stream
 * would carry a document that is not well-formed. Such a request is refused,
 * and nothing reaches the clients.
 */
import t from 'tap';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { withUsers } from '../helpers/server.js';
import { RawBoshClient, payloads } from '../helpers/bosh-client.js';
import { x } from '../../src/xml/index.js';
import { privateDir } from '../helpers/admin-cli.js';

const dataDir = privateDir(t);
const socket = join(dataDir, 'admin.sock');
const server = await withUsers(t, ['carol'], { ALLOW_INSECURE_PLAIN: 'true', BOSH_MAX_WAIT: '1' }, undefined, { adminSocket: socket });

/** One request line on the admin socket, its answer parsed. */
function request(line: string): Promise<{ ok: boolean; result?: unknown; error?: { condition: string } }> {
  return new Promise((resolve, reject) => {
    const conn = createConnection(socket);
    const chunks: Buffer[] = [];
    conn.on('data', (b: Buffer) => {
      chunks.push(b);
      if (b.includes(0x0a)) { conn.end(); resolve(JSON.parse(Buffer.concat(chunks).toString())); }
    });
    conn.once('error', reject);
    conn.write(`${line}\n`);
  });
}

t.test('an announcement with characters outside XML is refused, and every client stream stays well-formed', async (t) => {
  const carol = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => carol.destroy());
  await carol.login('carol', 'carol-pw', 'bosh');
  await carol.send({}, x('presence', { xmlns: 'jabber:client' }));
  for (const bad of ['\u001b[1mBack\u001b[0m soon', 'page\fbreak', 'nul\u0000', 'ok', '\uFFFE']) {
    for (const field of bad === 'ok' ? ['body'] : ['body', 'subject']) {
      const req = field === 'body' ? { op: 'announce', host: 'localhost', body: bad } : { op: 'announce', host: 'localhost', body: 'b', subject: bad };
      const answer = await request(JSON.stringify(req));
      if (bad === 'ok') {
        t.match(answer, { ok: true, result: { sent: 1 } }, 'a plain text is announced');
        continue;
      }
      t.match(answer, { ok: false, error: { condition: 'bad-request' } }, `${JSON.stringify(bad)} in the ${field} is refused`);
    }
  }
  // What carol gets is well-formed XML: the one plain announcement.
  const texts: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await carol.send();
    t.ok(res.body, `a response carol can parse: ${JSON.stringify(res.text.slice(0, 200))}`);
    texts.push(...payloads(res.body).filter((p) => p.local === 'message').map((m) => m.getChildText('body') ?? ''));
  }
  t.same(texts, ['ok'], 'only the plain announcement reached her');
});
