/**
 * A raw WebSocket client with XEP-0198 for flow-control tests: it counts the
 * stanzas it receives after <enabled/> (its h) and, when told to, answers
 * every <r/> at once, as a live client does; or never, as a stuck one does.
 */
import { NS, type XmlElement } from '../../src/xml/index.js';
import { RawWsClient } from './ws-client.js';

const isStanza = (el: XmlElement): boolean => el.local === 'message' || el.local === 'presence' || el.local === 'iq';

export class SmPeer {
  /** Stanzas received since <enabled/> (or <resumed/>): the client's h. */
  h = 0;
  smid: string | undefined;
  jid = '';
  #counting = false;

  constructor(readonly c: RawWsClient, autoAck: boolean) {
    // Runs after RawWsClient's own listener, so the frame is already parsed into c.frames.
    c.ws.on('message', () => {
      const el = c.frames[c.frames.length - 1]!;
      if (el.is('enabled', NS.SM)) { this.#counting = true; this.smid = el.attr('id'); }
      // XEP-0198 §5: after <resumed/> the count goes on from the h sent in <resume/>.
      else if (el.is('resumed', NS.SM)) this.#counting = true;
      else if (this.#counting && isStanza(el)) this.h++;
      else if (autoAck && el.is('r', NS.SM)) this.ack();
    });
  }

  /** Logs in with PLAIN, binds `resource` and enables SM (resumable unless told otherwise; not at all with enable: false). */
  static async login(url: string, user: string, password: string, resource: string, opts: { autoAck: boolean; resume?: boolean; enable?: boolean }): Promise<SmPeer> {
    const peer = new SmPeer(await RawWsClient.connect(url), opts.autoAck);
    peer.jid = await peer.c.login(user, password, resource);
    if (opts.enable === false) return peer;
    peer.c.send(`<enable xmlns='${NS.SM}'${opts.resume === false ? '' : " resume='true'"}/>`);
    const answer = await peer.c.until((el) => el.ns === NS.SM && el.local !== 'r');
    if (!answer.is('enabled', NS.SM)) throw new Error(`enable failed: ${answer.toString()}`);
    return peer;
  }

  /** Authenticates on a new stream and sends <resume h/> (h: 0 unless given); returns the peer and the server's answer. */
  static async resume(url: string, user: string, password: string, smid: string, opts: { autoAck: boolean; h?: number }): Promise<{ peer: SmPeer; answer: XmlElement }> {
    const peer = new SmPeer(await RawWsClient.connect(url), opts.autoAck);
    peer.h = opts.h ?? 0;
    const c = peer.c;
    c.open();
    await c.next();
    await c.next();
    c.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
    if (!(await c.next()).is('success', NS.SASL)) throw new Error('auth failed');
    c.open();
    await c.next();
    await c.next();
    c.send(`<resume xmlns='${NS.SM}' previd='${smid}' h='${peer.h}'/>`);
    return { peer, answer: await c.until((el) => el.ns === NS.SM) };
  }

  ack(h = this.h): void { this.c.send(`<a xmlns='${NS.SM}' h='${h}'/>`); }

  /** The ids of the messages received so far, in order. */
  messageIds(): string[] {
    return this.c.frames.filter((el) => el.local === 'message').map((el) => el.attr('id') ?? '(no id)');
  }
}

/** A chat message on the wire, `id` also its body. */
export function chat(to: string, id: string, body = id): string {
  return `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'><body>${body}</body></message>`;
}

/** Sends a ping to the server and waits for its answer: everything sent before it has been routed. */
export async function routed(c: RawWsClient, id: string): Promise<void> {
  c.send(`<iq xmlns='jabber:client' type='get' to='localhost' id='${id}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.until((el) => el.local === 'iq' && el.attr('id') === id);
}
