/**
 * Issue 14 item 5 with BOSH clients: the rolling restart of
 * rolling-restart-process.test.ts (three real gateway processes behind
 * nginx in round-robin, each SIGTERMed and restarted in turn under
 * continuous traffic, every message counted by id: see its header for what
 * "lost" means and ROLL_TRACE=1), here with StanzaJS over BOSH.
 *
 * A leaving node answers its held BOSH requests empty and forgets the sid
 * (src/roll.ts); the client's next request, wherever nginx sends it, gets
 * <body type='terminate' condition='item-not-found'/> (XEP-0124 §17.2), and
 * the session hibernates. StanzaJS resumes by itself: it ends the
 * transport, keeps its unacked stanzas (XEP-0198 §4), opens a new BOSH
 * session, authenticates and sends <resume/> (§5), then resends what the
 * server's h says it did not get. So the test drives nothing by hand,
 * but works around two bugs of StanzaJS 12's BOSH transport (roll-peers.ts
 * patchBosh: a write queued as its sid ends never completes, which stalled
 * its reconnect for good in 2 of 3 runs; a late request failure on an ended
 * transport is an unhandled 'error') and asks wait=10 so that its request
 * timeouts do not keep the test process alive after the cluster stopped.
 * And one of its XEP-0198 code (roll-peers.ts keepResentTracked,
 * test/unit/stanza-sm-resend.test.ts): what it resends on <resumed h/> is
 * no longer unacknowledged for it, so a second interruption before the
 * server acknowledges those stanzas loses them, and the ack that counts
 * them takes later stanzas off its queue instead. On a loaded machine a
 * client dropped by a leaving node, resumed on a node that stopped two
 * seconds later, lost 57 messages so (listed as LOST with no server line;
 * all sent by the four clients resumed on that node, which handled 1 to 3
 * stanzas of each before it stopped).
 *
 * "0 delivered twice" failed once in a full CI run on a loaded 2-core
 * machine (load ~20; a1-48 read twice by b1), and it passed 7 of 7 alone.
 * With the trace that explains a duplicate (roll-run.ts: each copy's BOSH
 * sid, rid and attempt, its XEP-0203 delay, the nodes' sm-resent,
 * bosh-resent, handed-over and offline lines), two CPU-bound loops beside
 * it reproduced one in 1 run of 6: a restarted node's lease renewals
 * stalled past cluster.ts's 1.5 s lease, the others declared it dead, it
 * stopped (cluster-lease-lost) and ended its sessions for good; what they
 * had not acknowledged went to offline storage, including two messages its
 * client had read (the last one written just before the end), which came again at
 * the client's fresh login. That is XEP-0198 at a session's end (the server
 * cannot know what was read and not acknowledged), not a fault of the
 * roll: the roll now runs on a 5 s lease (roll-run.ts ROLL_NODE_TTL_MS) and
 * a lease lost is its own failure, named first. Neither StanzaJS's h nor a
 * repeated BOSH rid (XEP-0124 §14.3) nor the resumption's resend was
 * involved. The CI failure had one duplicate and (as reported) nothing
 * else, which fits a second cause, a server bug shown deterministically
 * in sm-takeover-h.test.ts, now fixed: a resumption on another node
 * while the old owner still handled the client's last stanza (a slow route
 * under load) answered an h that did not count it, so StanzaJS sent it
 * again and the old owner's copy arrived too (now the claimer waits for the
 * old owner's final h). Were it to come back, the trace would show both
 * copies live, without a delay, and "a1 sent it again" (message:retry).
 *
 * The mix: 3 pairs BOSH↔BOSH (StanzaJS both ends) and 3 BOSH↔WebSocket
 * (StanzaJS and @xmpp/client), so the BOSH sessions' forwarding between
 * nodes (every request lands on the next node) and both transports'
 * resumption are rolled together.
 */
import t from 'tap';
import { eventually, sleep } from '../helpers/eventually.js';
import { assertNoneLost, rollEachNode, startRollCluster, stopAtTeardown, talkInPairs, type RollPeer } from '../helpers/roll-run.js';
import { stanzaPeer, xmppjsPeer } from '../helpers/roll-peers.js';

const BOSH_PAIRS = 3;
const MIXED_PAIRS = 3;

t.test(`a rolling restart of three nodes under traffic between ${BOSH_PAIRS} BOSH↔BOSH and ${MIXED_PAIRS} BOSH↔WebSocket pairs: every message once, every client resumed`, async (t) => {
  const setup = await startRollCluster(t, {});
  const { cluster, trace, httpUrl } = setup;
  const bosh = `${httpUrl}/http-bind`;
  const ws = `${httpUrl.replace(/^http/, 'ws')}/xmpp-websocket`;

  const peers: RollPeer[] = [];
  stopAtTeardown(t, peers);
  const starts: Array<Promise<void>> = [];
  for (let i = 0; i < BOSH_PAIRS + MIXED_PAIRS; i++) {
    await cluster.addUser(`a${i}`, `a${i}-pw`);
    await cluster.addUser(`b${i}`, `b${i}-pw`);
    const a = stanzaPeer(bosh, `a${i}`);
    starts.push(a.start());
    if (i < BOSH_PAIRS) {
      const b = stanzaPeer(bosh, `b${i}`);
      starts.push(b.start());
      peers.push(a, b);
    } else {
      const b = xmppjsPeer(ws, `b${i}`);
      starts.push(b.xmpp.start().then(() => eventually(() => b.xmpp.streamManagement.enabled, { message: `XEP-0198 enabled for ${b.name}` })).then(() => undefined));
      peers.push(a, b);
    }
  }
  await Promise.all(starts);

  let running = true;
  const traffic = talkInPairs(peers, () => running, trace);
  await sleep(1500);
  await rollEachNode(t, setup);
  await eventually(() => peers.every((p) => p.isOnline()), {
    timeout: 15_000, message: () => `every client back online: ${peers.filter((p) => !p.isOnline()).map((p) => p.name).join(', ')}`,
  });
  await sleep(1000);
  running = false;
  await traffic;
  await assertNoneLost(t, peers, trace, peers.length * 10, cluster.databaseUrl);
});
