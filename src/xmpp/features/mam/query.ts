import { x, type XmlElement } from '../../../xml/index.js';
import { tryParseJid } from '../../../jid/index.js';
import { StanzaErrorException } from '../../errors.js';
import type { ArchiveQuery } from '../../../storage/ports/archive.js';
import { NS_DATA, NS_MAM, NS_RSM } from './ns.js';

/** A query as the client asked for it: what to read, and how to send it back. */
export interface ParsedQuery {
  readonly query: ArchiveQuery;
  readonly queryid: string | undefined;
  /** XEP-0313 §4.3.4: send the page newest first. */
  readonly flip: boolean;
}

export interface QueryLimits {
  /** The most results one query returns (MAM_MAX_PAGE_SIZE). */
  readonly maxPage: number;
}

/** XEP-0313 §4.1.1: the fields a server MUST support, and include-groupchat (no groupchat is archived, so nothing to include). */
const FIELDS = new Set(['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids', 'include-groupchat']);
/** The largest xs:int (XML Schema), the type of XEP-0059's <max/>. */
const XS_INT_MAX = 2147483647;
/** A query without RSM <max/> gets this many (Prosody's default is 20, ejabberd's 50). */
const DEFAULT_PAGE = 50;
// XEP-0082 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD.
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/;

/** Parses <query xmlns='urn:xmpp:mam:2'/>: its data form (XEP-0004), RSM set (XEP-0059) and <flip-page/>. */
export function parseQuery(el: XmlElement, limits: QueryLimits): ParsedQuery {
  const form = parseForm(el.getChild('x', NS_DATA));
  const rsm = parseRsm(el.getChild('set', NS_RSM), limits);
  if (form.ids && form.ids.length > limits.maxPage) throw new StanzaErrorException('policy-violation', `at most ${limits.maxPage} ids per query`);
  return { query: { ...form, ...rsm }, queryid: el.attr('queryid'), flip: el.getChild('flip-page', NS_MAM) !== undefined };
}

type FormFilters = Omit<ArchiveQuery, 'limit' | 'direction' | 'page'>;

function parseForm(form: XmlElement | undefined): FormFilters {
  if (!form) return {};
  const type = form.attr('type');
  if (type !== undefined && type !== 'submit') throw new StanzaErrorException('bad-request', "the form's type must be 'submit'");
  const out: { -readonly [K in keyof FormFilters]: FormFilters[K] } = {};
  // XEP-0313 §4.1.1: "The hidden FORM_TYPE field MUST be set to this protocol's namespace": a form
  // without it (or with it empty) is not a MAM query form.
  const formType = form.getChildren('field', NS_DATA).find((f) => f.attr('var') === 'FORM_TYPE');
  if (formType?.getChildText('value', NS_DATA)?.trim() !== NS_MAM) throw new StanzaErrorException('bad-request', `FORM_TYPE must be ${NS_MAM}`);
  for (const field of form.getChildren('field', NS_DATA)) {
    const name = field.attr('var') ?? '';
    // XEP-0313 §4.1.1: "If a client includes a form field that the server does not recognise, the server MUST respond with a 'feature-not-implemented' error."
    if (!FIELDS.has(name)) throw new StanzaErrorException('feature-not-implemented', `unsupported field: ${name}`);
    const values = field.getChildren('value', NS_DATA).map((v) => v.text().trim());
    if (values.length === 0 || (values.length === 1 && values[0] === '')) continue;
    if (name === 'FORM_TYPE') {
      if (values.length !== 1) throw new StanzaErrorException('bad-request', 'FORM_TYPE takes one value');
    } else if (name === 'ids') {
      out.ids = values;
    } else if (values.length !== 1) {
      throw new StanzaErrorException('bad-request', `${name} takes one value`);
    } else setField(out, name, values[0]!);
  }
  return out;
}

function setField(out: { -readonly [K in keyof FormFilters]: FormFilters[K] }, name: string, value: string): void {
  switch (name) {
    case 'with': {
      const jid = tryParseJid(value);
      if (!jid) throw new StanzaErrorException('jid-malformed', `with: not a JID: ${value}`);
      // Archives are kept by bare JID: a full JID matches its account's messages.
      out.with = jid.bare;
      return;
    }
    case 'start': out.start = parseTime(name, value, 'up'); return;
    case 'end': out.end = parseTime(name, value, 'down'); return;
    case 'after-id': out.afterId = value; return;
    case 'before-id': out.beforeId = value; return;
    default: // include-groupchat: nothing groupchat is in a user's archive here.
  }
}

/**
 * XEP-0082 DateTime to milliseconds. Stamps are kept in milliseconds, so digits past the third
 * round towards the inside of the window (XEP-0313 §4.1.1: "equal to or later than" start, "equal
 * to or earlier than" end): a start of .0005 is past a message at .000. A date that does not exist
 * (February 30th: Date.parse would roll it into March) is refused.
 */
function parseTime(name: string, value: string, round: 'up' | 'down'): number {
  const m = DATETIME.exec(value);
  const ms = m ? Date.parse(value) : Number.NaN;
  if (!m || Number.isNaN(ms)) throw new StanzaErrorException('bad-request', `${name}: not an XEP-0082 DateTime: ${value}`);
  const [, y, mo, d, h, mi, s, fraction = ''] = m;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  if (day.getUTCMonth() !== Number(mo) - 1 || day.getUTCDate() !== Number(d) || Number(h) > 23 || Number(mi) > 59 || Number(s) > 59) {
    throw new StanzaErrorException('bad-request', `${name}: not a date and time that exists: ${value}`);
  }
  return round === 'up' && /[1-9]/.test(fraction.slice(3)) ? ms + 1 : ms;
}

type RsmPart = Pick<ArchiveQuery, 'limit' | 'direction' | 'page'>;

/** XEP-0059 §2: <max/>, then <after/> (forward) or <before/> (backward; empty: the last page). */
function parseRsm(set: XmlElement | undefined, limits: QueryLimits): RsmPart {
  const fallback = Math.min(DEFAULT_PAGE, limits.maxPage);
  if (!set) return { limit: fallback, direction: 'forward' };
  if (set.getChild('index', NS_RSM)) throw new StanzaErrorException('feature-not-implemented', 'RSM <index/> is not supported: page with <after/> and <before/>');
  const maxText = set.getChildText('max', NS_RSM);
  let limit = fallback;
  if (maxText !== undefined) {
    // XEP-0059 §8 (XML Schema): <max/> is an xs:int; a negative one names no page size.
    if (!/^\d{1,10}$/.test(maxText.trim()) || Number(maxText.trim()) > XS_INT_MAX) throw new StanzaErrorException('bad-request', 'RSM <max/> must be a non-negative integer');
    // XEP-0313 §4.3.1: the server MAY limit the page, and says so through <fin complete/>.
    limit = Math.min(Number(maxText.trim()), limits.maxPage);
  }
  const after = set.getChild('after', NS_RSM);
  const before = set.getChild('before', NS_RSM);
  // XEP-0313 §4.3.2: RSM leaves both undefined; the form's after-id and before-id give a range.
  if (after && before) throw new StanzaErrorException('bad-request', 'RSM <after/> and <before/> together: use the after-id and before-id fields');
  if (after) {
    const id = after.text().trim();
    if (id === '') throw new StanzaErrorException('bad-request', 'RSM <after/> must not be empty');
    return { limit, direction: 'forward', page: { after: id } };
  }
  if (before) {
    const id = before.text().trim();
    return { limit, direction: 'backward', page: id === '' ? undefined : { before: id } };
  }
  return { limit, direction: 'forward' };
}

/** The <fin/> of the IQ result (XEP-0313 §4.3, XEP-0059 §2): first and last of the page as sent, count when known. */
export function finElement(ids: readonly string[], complete: boolean, count: number | undefined): XmlElement {
  const set = x('set', { xmlns: NS_RSM },
    ids.length > 0 && x('first', {}, ids[0]!),
    ids.length > 0 && x('last', {}, ids[ids.length - 1]!),
    count !== undefined && x('count', {}, String(count)));
  return x('fin', { xmlns: NS_MAM, complete: complete ? 'true' : undefined }, set);
}

/** XEP-0313 §4.1.2: the form a client may fetch (type get) before querying. */
export function queryForm(): XmlElement {
  const field = (v: string, type: string) => x('field', { var: v, type });
  return x('query', { xmlns: NS_MAM }, x('x', { xmlns: NS_DATA, type: 'form' },
    x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', {}, NS_MAM)),
    field('with', 'jid-single'), field('start', 'text-single'), field('end', 'text-single'),
    field('before-id', 'text-single'), field('after-id', 'text-single'),
    // §4.1.2: ids is list-multi with an open XEP-0122 <validate/>, never the list of all ids.
    x('field', { var: 'ids', type: 'list-multi' }, x('validate', { xmlns: 'http://jabber.org/protocol/xdata-validate', datatype: 'xs:string' }, x('open', {})))));
}
