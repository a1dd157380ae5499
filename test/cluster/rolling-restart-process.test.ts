/**
 * Issue 14 item 5 end to end: a rolling restart of all three real gateway
 * processes (test/helpers/cluster.ts) behind Debian's nginx in round-robin
 * (the README's WebSocket block), under continuous traffic between 20
 * pairs of @xmpp/client users with XEP-0198 (its own reconnect and
 * resumption). Each node in turn gets SIGTERM, exits by itself, and is
 * started again under its name; its clients are dropped, reconnect through
 * nginx to another node and resume there. Every message sent is counted by
 * its id: each must arrive once, none lost, none twice, and every client
 * must have resumed rather than logged in afresh.
 *
 * Twice: with the legacy login (SASL, resource binding, <resume/> on the
 * stream after it) and with SASL2 (the default, which xmpp.js 0.14 takes
 * when offered: Bind2 and the <resume/> inline in <authenticate/>,
 * XEP-0388/0386/0198 §6). Under Bind2 the resource is the client's tag and
 * a derived part (`r.<hash>`), so each client writes to its partner's bound
 * JID: to `…/r` its messages would go by the bare-JID rules (RFC 6121
 * §8.5.3.2.1) to offline storage, these clients sending no presence.
 *
 * What did not arrive live is looked for in offline storage and among the
 * errors the senders got back; what is in none of them is lost, and each
 * such message is explained (roll-trace.ts: when it was sent, between which
 * nodes, the server's log lines naming it; ROLL_TRACE=1 adds the debug
 * lines and keeps the nodes' logs).
 */
import t from 'tap';
import type { Test } from 'tap';
import { eventually, sleep } from '../helpers/eventually.js';
import { fileBacking } from '../helpers/cluster.js';
import { assertNoneLost, rollEachNode, startRollCluster, stopAtTeardown, talkInPairs } from '../helpers/roll-run.js';
import { xmppjsPeer, type XmppjsPeer } from '../helpers/roll-peers.js';

const PAIRS = 20;
// One Redis and one PostgreSQL for the file: each roll's cluster takes a database of its own in each.
const backing = fileBacking(t);

for (const [login, env] of [['SASL, bind, <resume/>', {}], ['SASL2, Bind2, inline <resume/>', { SASL2_ENABLED: 'true' }]] as const) {
  t.test(`a rolling restart of three nodes under traffic between 20 pairs (${login}): every message once, every client resumed`, (t) => roll(t, env));
}

async function roll(t: Test, env: Record<string, string>): Promise<void> {
  const setup = await startRollCluster(t, env, backing());
  const { cluster, trace } = setup;
  const service = `${setup.httpUrl.replace(/^http/, 'ws')}/xmpp-websocket`;

  const peers: XmppjsPeer[] = [];
  stopAtTeardown(t, peers);
  for (let i = 0; i < PAIRS; i++) {
    await cluster.addUser(`a${i}`, `a${i}-pw`);
    await cluster.addUser(`b${i}`, `b${i}-pw`);
    peers.push(xmppjsPeer(service, `a${i}`), xmppjsPeer(service, `b${i}`));
  }
  await Promise.all(peers.map((p) => p.xmpp.start()));
  await eventually(() => peers.every((p) => p.xmpp.streamManagement.enabled), { message: 'XEP-0198 enabled for every client' });

  let running = true;
  const traffic = talkInPairs(peers, () => running, trace);
  await sleep(1500);
  await rollEachNode(t, setup);
  await eventually(() => peers.every((p) => p.isOnline()), {
    timeout: 15_000, message: () => `every client back online: ${peers.filter((p) => !p.isOnline()).map((p) => `${p.name} ${p.xmpp.status}`).join(', ')}`,
  });
  await sleep(1000);
  running = false;
  await traffic;
  await assertNoneLost(t, peers, trace, PAIRS * 2 * 10, cluster.databaseUrl);
}
