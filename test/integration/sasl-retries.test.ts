/**
 * RFC 6120 §6.4.5: "The receiving entity SHOULD allow a configurable but
 * reasonable number of retries (at least 2 and no more than 5)". A retry is an
 * attempt after a failed one, so SASL_MAX_FAILURES=N (2..5) lets a client fail
 * N times and try again each time; the failure of the attempt after the last
 * retry closes the stream with policy-violation. Before, the Nth failure
 * closed it: SASL_MAX_FAILURES=2 allowed one retry, below the RFC's minimum.
 */
import t from 'tap';
import { NS } from '../../src/xml/index.js';
import { withUsers } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';
import { plain } from '../helpers/scram-client.js';

const failureCondition = (el: { getChildren(): { local: string }[] }) => el.getChildren().find((c) => c.local !== 'text')?.local;
const auth = (password: string) => `<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plain('alice', password)}</auth>`;

for (const retries of [2, 5]) {
  t.test(`SASL_MAX_FAILURES=${retries}: ${retries} retries after a failed attempt`, async (t) => {
    const server = await withUsers(t, { alice: 'alice-secret' }, { ALLOW_INSECURE_PLAIN: 'true', SASL_MAX_FAILURES: String(retries) });
    const open = async () => {
      const c = await RawWsClient.connect(server.wsUrl);
      t.teardown(() => c.close());
      await c.openStream();
      return c;
    };
    // The first attempt and `retries` retries, all failing except the last retry.
    const c = await open();
    for (let i = 0; i < retries; i++) {
      c.send(auth(`typo${i}`));
      t.equal(failureCondition(await c.next()), 'not-authorized', `failure ${i + 1}`);
    }
    c.send(auth('alice-secret'));
    t.ok((await c.next()).is('success', NS.SASL), `retry ${retries} (the last) may still log in`);

    // All of them failing: the failure after the last retry ends the stream.
    const d = await open();
    for (let i = 0; i <= retries; i++) {
      d.send(auth(`wrong${i}`));
      t.equal(failureCondition(await d.next()), 'not-authorized', `attempt ${i + 1} fails`);
    }
    t.equal(streamErrorCondition(await d.next()), 'policy-violation', 'then policy-violation');
    d.send(`<close xmlns='${NS.FRAMING}'/>`);
    await d.waitClosed();
  });
}
