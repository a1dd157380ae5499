/**
 * Inputs for the fuzz test (issue 13 item 6): a corpus of frames and BOSH
 * bodies written from the RFC 6120/6121/7395 and XEP-0124/0198/0206
 * examples, well-formed but hostile stanzas, and syntactic mutations of them.
 * fast-check draws the plan from a seed, so every run can be replayed with
 * FUZZ_SEED.
 */
import fc from 'fast-check';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const HTTPBIND = 'http://jabber.org/protocol/httpbind';

/** First-level elements: real client traffic (RFC examples) and hostile but well-formed stanzas. */
export const WS_CORPUS: readonly string[] = [
  `<open xmlns='${FRAMING}' to='localhost' version='1.0'/>`,
  `<open xmlns='${FRAMING}' to='evil.example' version='1.0'/>`,
  `<open xmlns='${FRAMING}' version='2.0'/>`,
  `<close xmlns='${FRAMING}'/>`,
  `<auth xmlns='${SASL}' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>`,
  `<auth xmlns='${SASL}' mechanism='SCRAM-SHA-1'>biwsbj1qdWxpZXQscj1vTXNUQUF3QUFBQU1BQUFBTlAwVEFBQUFBQUJQVTBBQQ==</auth>`,
  `<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>!!!not-base64!!!</auth>`,
  `<auth xmlns='${SASL}' mechanism='X-UNKNOWN'/>`,
  `<response xmlns='${SASL}'>Yz1iaXdzLHI9b01zVEFBd0FBQUFNQUFBQU5QMFRBQUFBQUFCUFUwQUEscD1XdXNzbw==</response>`,
  `<abort xmlns='${SASL}'/>`,
  `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
  `<iq xmlns='jabber:client' type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>`,
  `<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`,
  `<iq xmlns='jabber:client' type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='nurse@localhost' name='N'><group>G</group></item></query></iq>`,
  `<iq xmlns='jabber:client' type='bogus' id='x'><query xmlns='jabber:iq:roster'/></iq>`,
  `<iq xmlns='jabber:client' type='get' id='x'/>`,
  `<iq xmlns='jabber:client' type='result' id='never-asked'/>`,
  `<iq xmlns='jabber:client' type='get' id='u'><unknown xmlns='urn:example:nope'/></iq>`,
  `<iq xmlns='jabber:client' type='get' to='localhost' id='d'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
  `<iq xmlns='jabber:client' type='get' id='v'><vCard xmlns='vcard-temp'/></iq>`,
  `<iq xmlns='jabber:client' type='set' id='bl'><block xmlns='urn:xmpp:blocking'><item jid='@@@'/></block></iq>`,
  `<message xmlns='jabber:client' to='fuzz1@localhost' type='chat' id='m'><body>hi</body></message>`,
  `<message xmlns='jabber:client' to='nobody@localhost'><body>offline?</body></message>`,
  `<message xmlns='jabber:client' to='a@b@c' from='admin@localhost/forged'><body>x</body></message>`,
  `<message xmlns='jabber:client' to='${'x'.repeat(1100)}@localhost'><body>long local</body></message>`,
  `<message xmlns='jabber:client' to='localhost' type='headline'><body>to the server</body></message>`,
  `<message xmlns='jabber:client' to='fuzz0@localhost/none' type='error'><error type='cancel'/></message>`,
  `<presence xmlns='jabber:client'/>`,
  `<presence xmlns='jabber:client' type='subscribe' to='fuzz2@localhost'/>`,
  `<presence xmlns='jabber:client' type='probe' to='fuzz3@localhost' from='fuzz3@localhost'/>`,
  `<presence xmlns='jabber:client' type='invalid-type'/>`,
  `<unknown xmlns='urn:example:nope'/>`,
  `<enable xmlns='urn:xmpp:sm:3' resume='true'/>`,
  `<resume xmlns='urn:xmpp:sm:3' previd='AAAAAAAAAAAAAAAAAAAAAAAA' h='0'/>`,
  `<resume xmlns='urn:xmpp:sm:3' previd='' h='-1'/>`,
  `<resume xmlns='urn:xmpp:sm:3' previd='{SMID}' h='{H}'/>`,
  `<a xmlns='urn:xmpp:sm:3' h='4294967295'/>`,
  `<a xmlns='urn:xmpp:sm:3' h='x'/>`,
  `<r xmlns='urn:xmpp:sm:3'/>`,
  `<active xmlns='urn:xmpp:csi:0'/>`,
  `<inactive xmlns='urn:xmpp:csi:0'/>`,
];

/** The stanzas of the corpus: errors in them are stanza errors, so the stream usually goes on. */
export const WS_STANZAS: readonly string[] = WS_CORPUS.filter((f) => /^<(iq|message|presence|r|active|inactive) /.test(f));

/** BOSH bodies (XEP-0124 §7, XEP-0206 §3, §15 keys); SID is replaced by a live or guessed sid. */
export const BOSH_CORPUS: readonly string[] = [
  `<body xmlns='${HTTPBIND}' xmlns:xmpp='urn:xmpp:xbosh' rid='RID' to='localhost' wait='1' hold='1' ver='1.11' xmpp:version='1.0'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' to='localhost' wait='1' hold='1' ver='1.11' newkey='0123456789abcdef'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID' key='deadbeef'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID' type='terminate'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID' pause='9999'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID' xmpp:restart='true' xmlns:xmpp='urn:xmpp:xbosh'/>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID'><auth xmlns='${SASL}' mechanism='PLAIN'>AAAA</auth></body>`,
  `<body xmlns='${HTTPBIND}' rid='RID' sid='SID'><message xmlns='jabber:client' to='fuzz0@localhost'><body>b</body></message></body>`,
  `<body xmlns='${HTTPBIND}' rid='-1' sid='SID' ack='99999999'/>`,
  `<body xmlns='urn:example:wrong' rid='RID'/>`,
];

const INSERTS = ['<', '&', ']]>', '\0', '\uFFFE', '<!DOCTYPE a [<!ENTITY b "c">]>', '<?xml version="1.0"?>', '<!--', '&#0;', '&#xD800;', '&b;', "'", '"', '>', 'xmlns:a=""', '\u{1F600}'];
const MUTATIONS = ['flip', 'truncate', 'insert', 'insert', 'nest', 'attrs', 'huge', 'utf8', 'binary', 'empty'] as const;
export type Op = 'none' | typeof MUTATIONS[number];
/**
 * Three in four inputs are well-formed (hostile) stanzas, one a syntactic
 * mutation: most mutations end the stream, and a fuzzer that only reconnects
 * never reaches the logged-in code.
 */
const OP: fc.Arbitrary<Op> = fc.oneof({ arbitrary: fc.constant('none' as const), weight: 3 }, { arbitrary: fc.constantFrom(...MUTATIONS), weight: 1 });

/** One step of the plan: which base input, which mutation, where. */
export interface Step { readonly base: number; readonly op: Op; readonly pos: number; readonly n: number; readonly insert: string }

const STEP = fc.record({
  base: fc.nat(1_000_000),
  op: OP,
  pos: fc.nat(1_000_000),
  n: fc.integer({ min: 1, max: 400 }),
  insert: fc.constantFrom(...INSERTS),
});

/** Batch `index` of the plan for `seed`: the same seed always gives the same steps. */
export function planBatch(seed: number, index: number, size: number): Step[] {
  return fc.sample(STEP, { seed: (seed + index * 7919) | 0, numRuns: size });
}

/**
 * The bytes of one step: the base input with its mutation. `huge` is above
 * the fuzz server's MAX_STANZA_SIZE (oversized frame or attribute).
 */
export function mutate(base: string, step: Step, maxStanza: number): { data: Buffer | string; binary: boolean } {
  const at = base.length === 0 ? 0 : step.pos % base.length;
  switch (step.op) {
    case 'none': return { data: base, binary: false };
    case 'empty': return { data: '', binary: false };
    case 'truncate': return { data: base.slice(0, at), binary: false };
    case 'insert': return { data: base.slice(0, at) + step.insert + base.slice(at), binary: false };
    case 'nest': return { data: `${'<a>'.repeat(step.n)}${base}${'</a>'.repeat(step.n)}`, binary: false };
    case 'attrs': return { data: base.replace(/^<(\w+)/, (m) => `${m}${Array.from({ length: step.n }, (_, i) => ` a${i}='${i}'`).join('')}`), binary: false };
    case 'huge': return { data: base.replace(/^<(\w+)/, (m) => `${m} big='${'A'.repeat(maxStanza + step.n)}'`), binary: false };
    case 'flip': {
      const buf = Buffer.from(base);
      if (buf.length > 0) buf[step.pos % buf.length]! ^= 1 << (step.n % 8);
      return { data: buf, binary: false };
    }
    case 'utf8': {
      const buf = Buffer.from(base);
      return { data: Buffer.concat([buf.subarray(0, at), Buffer.from([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80]), buf.subarray(at)]), binary: false };
    }
    case 'binary': return { data: Buffer.from(base), binary: true };
  }
}
