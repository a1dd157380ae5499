import { createHash } from 'node:crypto';
import { NS, x, type XmlElement } from '../../../xml/index.js';
import { JidError, normalizeResource } from '../../../jid/index.js';
import { StanzaErrorException, StreamErrorException } from '../../errors.js';
import type { ModuleContext } from '../../context.js';
import type { Session } from '../../session.js';
import { bindResource, type BindOptions } from '../bind.js';
import { setCarbons } from '../carbons.js';
import type { Csi } from '../csi.js';
import type { StreamManagement } from '../stream-management/index.js';
import { randomId } from '../../../util/random.js';

/** Longest client tag kept in a resource (XEP-0386 §3.3: the tag is for diagnostics). */
const MAX_TAG = 32;

export interface Bind2Deps {
  readonly sm: Pick<StreamManagement, 'enable'>;
  readonly csi: Csi;
}

/** XEP-0386 §2: the <bind/> advertised in SASL2's <inline/>, with the features it can enable inline. */
export function bind2Feature(): XmlElement {
  return x('bind', { xmlns: NS.BIND2 }, x('inline', {},
    x('feature', { var: NS.CARBONS }), x('feature', { var: NS.CSI }), x('feature', { var: NS.SM })));
}

/**
 * XEP-0386 §3: binds a resource for `session` (authenticated by SASL2 a
 * moment ago) and enables the inline features; the <bound/> for <success/>.
 * The resource is the client's <tag/> and a part derived from the account
 * and the user-agent id (XEP-0388 §4), so the same client installation gets
 * the same resource every time and a new login takes the old session over
 * with conflict (bind.ts) instead of piling up another one.
 */
export async function bind2(ctx: ModuleContext, opts: BindOptions, deps: Bind2Deps, session: Session, request: XmlElement, agent: string | undefined): Promise<XmlElement> {
  const resource = deriveResource(session, request.getChildText('tag'), agent);
  try {
    await bindResource(ctx, opts, session, resource);
  } catch (err) {
    // Authenticated, but no resource may be bound: the stream ends as RFC 6120 §4.9.3.17 says.
    if (err instanceof StanzaErrorException) throw new StreamErrorException({ condition: 'resource-constraint', text: err.text ?? 'cannot bind a resource' });
    throw err;
  }
  const answers: XmlElement[] = [];
  for (const child of request.getChildren()) {
    // XEP-0386 §3: "The <bound/> response MUST contain the resulting XEP-0198 <enabled/> (or <failed/>)".
    if (child.is('enable', NS.SM)) answers.push(deps.sm.enable(session, child));
    // "If the client included a XEP-0280 <enable/> element ... Message Carbons MUST be enabled"; no answer.
    else if (child.is('enable', NS.CARBONS)) await setCarbons(ctx, session, true);
    // "If the client included a XEP-0352 <active/> or <inactive/> element, the session must begin in that state."
    else if (child.is('inactive', NS.CSI)) deps.csi.inactive(session);
  }
  return x('bound', { xmlns: NS.BIND2 }, ...answers);
}

/** `<tag>.<part>`: the part is a hash of host, account and user-agent id, or random without an id. */
function deriveResource(session: Session, tag: string | undefined, agent: string | undefined): string {
  const part = agent === undefined
    ? randomId(9)
    : createHash('sha256').update(`${session.host}\0${session.username}\0${agent}`).digest('base64url').slice(0, 12);
  const cleaned = tag?.trim().slice(0, MAX_TAG);
  if (!cleaned) return part;
  try {
    return normalizeResource(`${cleaned}.${part}`);
  } catch (err) {
    // A tag that is no valid resourcepart is left out: it is only a hint (XEP-0386 §3.3).
    if (err instanceof JidError) return part;
    throw err;
  }
}
