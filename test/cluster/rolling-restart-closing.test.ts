/**
 * A rolling restart (App.leave in a cluster) closes the sessions that
 * cannot hibernate with system-shutdown. Such a WebSocket stream still
 * processes what its client sends until the client's <close/> (RFC 6120
 * §4.4, RFC 7395 §3.6; websocket.ts onClosingFrame), and its end hands its
 * unacknowledged stanzas over (XEP-0198 §5 without resumption: offline
 * storage). The roll left without waiting for those streams: it went on to
 * leave the cluster, drain and close the store while the client was still
 * sending, so what it sent then was routed into a closed cluster and store,
 * or never read (the listener's close cut the stream). It now waits for them
 * as the single-process shutdown does (websocket.ended(), bounded the same
 * way). In-process gateways on one Redis and one PostgreSQL, raw clients.
 */
import t from 'tap';
import WebSocket from 'ws';
import { NS, type XmlElement } from '../../src/xml/index.js';
import { addUsers, clusterBackends, startGateway } from '../helpers/gateways.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { SmPeer, chat } from '../helpers/sm-peer.js';
import { eventually, sleep } from '../helpers/eventually.js';

const backends = clusterBackends(t);

t.test('a stream closed by the roll is read until its <close/>: every message it sent reaches its recipient once, its queue is stored, the node leaves after', async (t) => {
  const opts = await backends.options({
    ALLOW_INSECURE_PLAIN: 'true', CLUSTER_DRAIN_TIMEOUT: '1', WS_CLOSE_TIMEOUT: '10', SHUTDOWN_TIMEOUT: '20',
  });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['dave', 'bob']);
  const bob = await RawWsClient.connect(n2.server.wsUrl);
  t.teardown(() => bob.close());
  await bob.login('bob', 'bob-pw', 'desk');
  // Dave on the leaving node with stream management he cannot resume: the roll closes his session.
  const dave = await SmPeer.login(n1.server.wsUrl, 'dave', 'dave-pw', 'laptop', { autoAck: false, resume: false });
  t.teardown(() => dave.c.close());
  await eventually(() => n2.server.app.sessions.get('localhost', 'dave', 'laptop'), { message: 'n2 sees dave' });
  // One message queued to him, not acknowledged when the roll begins.
  bob.send(chat(dave.jid, 'q1'));
  await eventually(() => dave.h === 1, { message: 'dave got q1' });

  let left = false;
  const leaving = n1.server.app.leave().then(() => { left = true; });
  t.equal(streamErrorCondition(await dave.c.until((el) => el.is('error', NS.STREAM))), 'system-shutdown', 'dave: system-shutdown');
  await dave.c.until((el) => el.is('close', NS.FRAMING));
  const sent: string[] = [];
  // Spaced out over longer than the drain: the roll's own steps (leave, drain, close) run meanwhile.
  for (let i = 0; i < 12 && dave.c.ws.readyState === WebSocket.OPEN; i++) {
    const id = `d${i}`;
    dave.c.send(chat('bob@localhost/desk', id));
    sent.push(id);
    await sleep(150);
  }
  t.equal(sent.length, 12, "dave's stream stays open until his <close/>");
  t.notOk(left, 'the node has not left before his <close/>');
  if (dave.c.ws.readyState === WebSocket.OPEN) dave.c.send(`<close xmlns='${NS.FRAMING}'/>`);
  await leaving;

  const fromDave = (el: XmlElement): boolean => el.local === 'message' && el.attr('from')?.startsWith('dave@localhost') === true;
  const stored = async (user: string): Promise<number> => n2.server.storage.offline.count('localhost', user);
  await eventually(async () => bob.frames.filter(fromDave).length + (await stored('bob')) >= sent.length, { message: "every message of dave's delivered or stored" });
  await sleep(500);
  const got = bob.frames.filter(fromDave).map((m) => m.attr('id'));
  t.same([...got].sort(), [...sent].sort(), 'bob got each of them once, none lost, none twice');
  t.equal(await stored('bob'), 0, 'and none went offline (bob was online)');
  t.equal(await stored('dave'), 1, 'q1, queued to dave and never acknowledged, is stored offline for him once');
});
