// A small TCP proxy on 127.0.0.1 that adds a fixed delay to every chunk in
// each direction (a WAN between a browser and the gateway, on loopback), and
// counts round trips: a "client flight" is what the client sends after the
// server last spoke, so the number of flights after the WebSocket opened is
// the number of round trips the client waited for. Order is kept: every
// chunk waits the same time, and Node runs timers of equal duration in the
// order they were set.
import net from 'node:net';

/**
 * @param {{ target: { host: string, port: number }, delayMs: number }} o
 * @returns {Promise<{ port: number, connections: Array<{ flights: Array<{ at: number, bytes: number }>, serverSpoke: number }>, close(): Promise<void> }>}
 */
export async function startDelayProxy(o) {
  /** @type {Set<net.Socket>} */
  const sockets = new Set();
  const connections = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(o.target.port, o.target.host);
    const conn = { flights: [], serverSpoke: 0, lastFrom: 'server' };
    connections.push(conn);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy(); });
      s.on('error', () => { client.destroy(); upstream.destroy(); });
    }
    client.on('data', (chunk) => {
      // A new flight when the server spoke since the client's last chunk.
      if (conn.lastFrom === 'server') conn.flights.push({ at: performance.now(), bytes: 0 });
      conn.flights[conn.flights.length - 1].bytes += chunk.length;
      conn.lastFrom = 'client';
      setTimeout(() => upstream.write(chunk), o.delayMs);
    });
    upstream.on('data', (chunk) => {
      conn.serverSpoke++;
      setTimeout(() => {
        // Seen by the client only now: its next chunk starts a new flight.
        conn.lastFrom = 'server';
        client.write(chunk);
      }, o.delayMs);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {net.AddressInfo} */ (server.address());
  return {
    port: address.port,
    connections,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve(undefined));
    }),
  };
}
