// A bare WebSocket echo server (the `ws` package, no compression, the
// 'xmpp' subprotocol accepted): every text frame goes back unchanged. It is
// the transport ceiling of this machine for the bench's message sizes.
// Usage: node bench/echo-server.mjs PORT   (listens on 127.0.0.1 only)
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2] ?? 0);
const wss = new WebSocketServer({
  host: '127.0.0.1', port, perMessageDeflate: false, skipUTF8Validation: true,
  handleProtocols: (protocols) => (protocols.has('xmpp') ? 'xmpp' : false),
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
wss.on('listening', () => process.stdout.write(`listening ${/** @type {import('node:net').AddressInfo} */ (wss.address()).port}\n`));
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
});
