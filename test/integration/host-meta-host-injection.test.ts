/**
 * host-meta without PUBLIC_URL must answer only for a Host naming a served
 * domain (routes.ts publicBase; README "host-meta answers only a Host header
 * that names a served domain"). Fastify's req.hostname is everything before
 * the first ':', so `Host: localhost:@evil.example` passes the check and the
 * whole Host is echoed: ws://localhost:@evil.example/... is a URL whose host
 * is evil.example (userinfo "localhost:").
 */
import t from 'tap';
import { request } from 'node:http';
import { withServer, type TestServer } from '../helpers/server.js';

function get(server: TestServer, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, headers: { host }, agent: false }, (res) => {
      let body = ''; res.setEncoding('utf8'); res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject); req.end();
  });
}

t.test('a Host that only starts with a served domain advertises no foreign URL', async (t) => {
  const server = await withServer(t);
  for (const host of ['localhost:@evil.example', 'localhost:80@evil.example']) {
    for (const path of ['/.well-known/host-meta.json', '/.well-known/host-meta']) {
      const a = await get(server, path, host);
      const hrefs = [...a.body.matchAll(/"?href"?\s*[:=]\s*"([^"]+)"/g)].map((m) => m[1]!);
      for (const href of hrefs) t.not(new URL(href).hostname, 'evil.example', `${path} with Host ${host}: ${href}`);
      t.equal(a.status, 404, `${path} with Host ${host} is refused`);
    }
  }
});

t.test('a served domain with a port is still answered, with that authority', async (t) => {
  const server = await withServer(t);
  const a = await get(server, '/.well-known/host-meta.json', `localhost:${server.port}`);
  t.equal(a.status, 200);
  t.same((JSON.parse(a.body) as { links: Array<{ href: string }> }).links.map((l) => l.href),
    [`ws://localhost:${server.port}/xmpp-websocket`, `http://localhost:${server.port}/http-bind`]);
});
