/**
 * The pure parts of offline messages and carbons: which messages are stored
 * offline (XEP-0160 §3), and which are
 * carbon-copied (XEP-0280 §6.1).
 */
import t from 'tap';
import { storable } from '../../src/xmpp/features/offline/index.js';
import { eligible } from '../../src/xmpp/features/carbons.js';
import { NS, parseXml } from '../../src/xml/index.js';

const msg = (xml: string) => parseXml(xml, undefined, NS.CLIENT);

t.test('storable: chat and normal are stored; chat states alone, <no-store/>, headline, groupchat and error are not', async (t) => {
  const cases: Array<[string, boolean]> = [
    [`<message type='chat'><body>x</body></message>`, true],
    [`<message><body>x</body></message>`, true],
    [`<message type='normal'><subject>s</subject></message>`, true],
    [`<message type='chat'><body>x</body><active xmlns='${NS.CHATSTATES}'/></message>`, true],
    [`<message type='chat'><composing xmlns='${NS.CHATSTATES}'/></message>`, false],
    [`<message type='chat'><paused xmlns='${NS.CHATSTATES}'/><thread>t</thread></message>`, false],
    [`<message type='chat'><body>x</body><no-store xmlns='${NS.HINTS}'/></message>`, false],
    [`<message type='headline'><body>x</body></message>`, false],
    [`<message type='groupchat'><body>x</body></message>`, false],
    [`<message type='error'><body>x</body></message>`, false],
  ];
  for (const [xml, want] of cases) t.equal(storable(msg(xml)), want, xml);
});

t.test('eligible for carbons: XEP-0280 §6.1 without error copies', async (t) => {
  const cases: Array<[string, boolean]> = [
    [`<message type='chat'><body>x</body></message>`, true],
    [`<message type='chat'><composing xmlns='${NS.CHATSTATES}'/></message>`, true],
    [`<message><body>x</body></message>`, true],
    [`<message><subject>only</subject></message>`, false],
    [`<message><received xmlns='${NS.RECEIPTS}' id='1'/></message>`, true],
    [`<message><displayed xmlns='${NS.CHAT_MARKERS}' id='1'/></message>`, true],
    [`<message><x xmlns='${NS.X_CONFERENCE}' jid='room@muc.example'/></message>`, true],
    [`<message><x xmlns='${NS.MUC_USER}'><invite from='a@example'/></x></message>`, true],
    [`<message type='chat'><body>x</body><private xmlns='${NS.CARBONS}'/><no-copy xmlns='${NS.HINTS}'/></message>`, false],
    [`<message type='chat'><body>x</body><no-copy xmlns='${NS.HINTS}'/></message>`, false],
    [`<message type='chat'><received xmlns='${NS.CARBONS}'/></message>`, false],
    [`<message type='groupchat'><body>x</body></message>`, false],
    [`<message type='headline'><body>x</body></message>`, false],
    [`<message type='error'><body>x</body></message>`, false],
  ];
  for (const [xml, want] of cases) t.equal(eligible(msg(xml)), want, xml);
});
