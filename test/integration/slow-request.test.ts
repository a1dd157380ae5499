/**
 * HTTP_REQUEST_TIMEOUT: a request must arrive whole in time. A hostile
 * review found a POST to /http-bind sending one byte every 5 s still open
 * after 330 s (Fastify's requestTimeout is 0 by default): each such socket
 * is held for free. Long-polls are not cut: holding a BOSH request open is
 * the server's answer, not the client's request.
 */
import t from 'tap';
import { connect } from 'node:net';
import { withServer } from '../helpers/server.js';
import { RawBoshClient } from '../helpers/bosh-client.js';

const server = await withServer(t, { HTTP_REQUEST_TIMEOUT: '2', BOSH_MAX_WAIT: '5' });

t.test('a BOSH POST whose body trickles in is cut with 408 and its socket closed', async (t) => {
  const socket = connect(server.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => { answer += d; });
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
  const body = "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='5' hold='1' ver='1.6'/>";
  socket.write(`POST /http-bind HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: ${body.length}\r\n\r\n`);
  const started = Date.now();
  let sent = 0;
  const trickle = setInterval(() => { if (sent < body.length && !socket.destroyed) socket.write(body[sent++]!); }, 500);
  t.teardown(() => clearInterval(trickle));
  const at = await closed;
  t.ok(at - started < 6000, `closed after ${at - started} ms, not after the whole body (${body.length * 500} ms)`);
  t.match(answer, /^HTTP\/1\.1 408/, 'Request Timeout');
});

t.test('a held BOSH long-poll outlives the request timeout', async (t) => {
  const c = new RawBoshClient(`${server.httpUrl}/http-bind`);
  t.teardown(() => c.destroy());
  await c.create({ wait: 5 });
  const started = Date.now();
  const res = await c.send();
  t.equal(res.status, 200);
  t.ok(Date.now() - started >= 4000, 'held for its wait, past the 2 s request timeout');
});

t.test('HTTP_REQUEST_TIMEOUT above Node\'s default requestTimeout (300 s) starts, and is the request timeout', async (t) => {
  // 301..3600 are valid values, and made the start throw ERR_OUT_OF_RANGE (headersTimeout > requestTimeout) with a stack.
  const long = await withServer(t, { HTTP_REQUEST_TIMEOUT: '3600' });
  t.equal(long.app.http.server.requestTimeout, 3_600_000);
  t.equal(long.app.http.server.headersTimeout, 3_600_000);
});
