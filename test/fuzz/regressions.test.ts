/**
 * The fuzz corpus kept as regression tests (issue 13 item 6): every case in
 * regressions.json is replayed on a fresh WebSocket and must end its stream
 * with the recorded condition, and the server must answer a bystander
 * afterwards. Placeholders keep the file small: NESTn and /NESTn open and
 * close n elements, HUGE is MAX_STANZA_SIZE bytes.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { withServer } from '../helpers/server.js';
import { RawWsClient, streamErrorCondition } from '../helpers/ws-client.js';

interface Case { name: string; login: boolean; frames: string[]; condition: string; found: string | null }
const corpus = JSON.parse(readFileSync(new URL('./regressions.json', import.meta.url), 'utf8')) as { cases: Case[] };
const MAX_STANZA = 16384;

const server = await withServer(t, { ALLOW_INSECURE_PLAIN: 'true', MAX_STANZA_SIZE: String(MAX_STANZA), LOGIN_FAILURES_PER_IP: '1000' });
for (let i = 0; i < 2; i++) await server.addUser(`fuzz${i}`, 'fuzz');

function expand(frame: string): string {
  return frame
    .replace(/\/NEST(\d+)/g, (_m, n: string) => '</a>'.repeat(Number(n)))
    .replace(/NEST(\d+)/g, (_m, n: string) => '<a>'.repeat(Number(n)))
    .replace('HUGE', 'A'.repeat(MAX_STANZA));
}

t.ok(corpus.cases.length > 0, 'the corpus has cases');
for (const c of corpus.cases) {
  t.test(`${c.found ? 'regression' : 'seed'}: ${c.name}`, async (t) => {
    const client = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => client.ws.terminate());
    if (c.login) await client.login('fuzz0', 'fuzz', 'replay');
    else { client.open(); await client.next(); await client.next(); }
    for (const frame of c.frames) client.send(expand(frame));
    const error = await client.until((el) => streamErrorCondition(el) !== undefined);
    t.equal(streamErrorCondition(error), c.condition, c.found ?? 'the stream error this input gets');

    const bystander = await RawWsClient.connect(server.wsUrl);
    t.teardown(() => bystander.ws.terminate());
    const jid = await bystander.login('fuzz1', 'fuzz', 'bystander');
    bystander.send(`<iq xmlns='jabber:client' type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const pong = await bystander.until((el) => el.local === 'iq' && el.attr('id') === 'p');
    t.equal(pong.attr('type'), 'result', `the server still answers ${jid}`);
  });
}
