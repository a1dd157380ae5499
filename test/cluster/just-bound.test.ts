/**
 * A full JID bound on another node a moment ago: its client has its bind
 * result, the directory change has not reached this node yet. Within one
 * process a stanza sent to that JID after the bind result reaches it; on a
 * node whose mirror lags, it took the rules of a resource that is not there
 * (RFC 6121 §8.5.3.2.1: the bare JID's), and the new resource never got it.
 * The lag is made to last here: node 2's directory writes publish on a
 * channel nobody reads, so node 1 knows of its binds only from Redis.
 */
import t from 'tap';
import { addUsers, clusterBackends, startGateway, type Gateway } from '../helpers/gateways.js';
import { availableWs, loggedInWs } from '../helpers/ws-client.js';

const backends = clusterBackends(t);

/** Node `g`'s directory writes from now on change Redis and tell no node (their publish goes to a channel nobody reads). */
function muteDirectory(g: Gateway): void {
  const redis = g.cluster.node.redis;
  const channel = `${g.cluster.node.prefix}dir`;
  const evalScript = redis.eval.bind(redis);
  (redis as unknown as { eval: unknown }).eval = (script: string, opts?: { keys?: string[]; arguments?: string[] }) => evalScript(script, opts === undefined ? opts : {
    ...opts, arguments: opts.arguments?.map((a) => (a === channel ? `${channel}-muted` : a)),
  });
}

t.test('a message from node 1 to a full JID bound on node 2 whose change node 1 has not had reaches that resource', async (t) => {
  const opts = await backends.options({ ALLOW_INSECURE_PLAIN: 'true' });
  const n1 = await startGateway(t, 'n1', opts);
  const n2 = await startGateway(t, 'n2', opts);
  await addUsers(n1, ['alice', 'bob']);
  // alice has another resource, available, which the rules of a resource that is not there would pick.
  const other = await availableWs(t, n1.server.wsUrl, 'alice', 'desk');
  const bob = await loggedInWs(t, n1.server.wsUrl, 'bob', 'b1');
  muteDirectory(n2);
  const phone = await loggedInWs(t, n2.server.wsUrl, 'alice', 'phone');
  t.equal(n1.server.app.sessions.get('localhost', 'alice', 'phone'), undefined, 'node 1 has not been told of alice/phone');
  bob.send("<message xmlns='jabber:client' to='alice@localhost/phone' type='chat' id='m1'><body>to the new resource</body></message>");
  const got = await phone.until((el) => el.local === 'message', 3000).catch(() => undefined);
  t.equal(got?.attr('id'), 'm1', 'alice/phone gets the message sent to it');
  t.notOk(other.frames.some((el) => el.local === 'message' && el.attr('id') === 'm1'), 'not alice/desk, as for a resource that is not there');
});
