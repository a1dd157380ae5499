/**
 * XEP-0156 discovery: host-meta names the WebSocket and BOSH endpoints. A
 * hostile review found it echoed any Host header, uncached-by-nobody, so a
 * shared cache could be poisoned with a foreign WebSocket URL.
 */
import t from 'tap';
import { request } from 'node:http';
import { startServer, type TestServer, withServer } from '../helpers/server.js';

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

function get(server: TestServer, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const hrefs = (a: Answer): string[] => (JSON.parse(a.body) as { links: Array<{ href: string }> }).links.map((l) => l.href);

t.test('without PUBLIC_URL', async (t) => {
  const server = await withServer(t);

  t.test('a foreign Host gets no links, in either format', async (t) => {
    for (const path of ['/.well-known/host-meta', '/.well-known/host-meta.json']) {
      const a = await get(server, path, { host: 'evil.example' });
      t.equal(a.status, 404, path);
      t.notMatch(a.body, /evil/, `${path} does not echo the Host`);
      t.equal(a.headers['cache-control'], 'no-store');
    }
  });

  t.test('the 404 carries the same CORS header as the 200, so a cross-origin page sees the 404 (XEP-0156 §3)', async (t) => {
    const origin = 'https://app.example';
    for (const path of ['/.well-known/host-meta', '/.well-known/host-meta.json']) {
      const ok = await get(server, path, { host: `localhost:${server.port}`, origin });
      t.equal(ok.status, 200, `${path} for a served domain`);
      t.equal(ok.headers['access-control-allow-origin'], '*', `${path}: the 200 allows any origin`);
      for (const host of ['other.example', 'evil.example:443']) {
        const a = await get(server, path, { host, origin });
        t.equal(a.status, 404, `${path} for ${host}`);
        t.equal(a.headers['access-control-allow-origin'], ok.headers['access-control-allow-origin'], `${path} for ${host}: the same Access-Control-Allow-Origin`);
      }
    }
  });

  t.test('a served domain gets its endpoints, not to be cached by shared caches', async (t) => {
    const a = await get(server, '/.well-known/host-meta.json', { host: `localhost:${server.port}` });
    t.equal(a.status, 200);
    t.same(hrefs(a), [`ws://localhost:${server.port}/xmpp-websocket`, `http://localhost:${server.port}/http-bind`]);
    t.equal(a.headers['cache-control'], 'private, no-store');
    const xml = await get(server, '/.well-known/host-meta', { host: `localhost:${server.port}` });
    t.match(xml.body, new RegExp(`href="ws://localhost:${server.port}/xmpp-websocket"`));
  });

  t.test('the address the request came in on is answered too (local use)', async (t) => {
    const a = await get(server, '/.well-known/host-meta.json', { host: `127.0.0.1:${server.port}` });
    t.same(hrefs(a), [`ws://127.0.0.1:${server.port}/xmpp-websocket`, `http://127.0.0.1:${server.port}/http-bind`]);
  });

  t.test('a trusted proxy reporting https makes the links secure', async (t) => {
    const a = await get(server, '/.well-known/host-meta.json', { host: 'localhost', 'x-forwarded-proto': 'https' });
    t.same(hrefs(a), ['wss://localhost/xmpp-websocket', 'https://localhost/http-bind']);
  });
});

t.test('with PUBLIC_URL the links come from it, whatever the Host, and may be cached', async (t) => {
  const server = await withServer(t, { PUBLIC_URL: 'https://chat.example.com/xmpp/' });
  for (const host of ['evil.example', `localhost:${server.port}`]) {
    const a = await get(server, '/.well-known/host-meta.json', { host });
    t.equal(a.status, 200, host);
    t.same(hrefs(a), ['wss://chat.example.com/xmpp/xmpp-websocket', 'https://chat.example.com/xmpp/http-bind'], host);
    t.equal(a.headers['cache-control'], 'public, max-age=3600');
  }
});

t.test('a PUBLIC_URL that is not an http(s) URL stops the start naming the variable', async (t) => {
  await t.rejects(startServer({ PUBLIC_URL: 'chat.example.com' }), /PUBLIC_URL="chat.example.com" is invalid/);
});
