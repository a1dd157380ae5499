/**
 * The XEP-0115 §5.1 verification string of a disco#info result, and the
 * §5.4 checks that make a result unfit to be cached. Pure.
 */
import { createHash } from 'node:crypto';
import { NS, type XmlElement } from '../../../xml/index.js';

/** XEP-0115 §5.1 names hash functions by the IANA registry; Node's crypto knows these. */
const HASHES: ReadonlyMap<string, string> = new Map([
  ['sha-1', 'sha1'], ['sha-224', 'sha224'], ['sha-256', 'sha256'], ['sha-384', 'sha384'], ['sha-512', 'sha512'],
]);

export function supportedHash(name: string | undefined): boolean {
  return name !== undefined && HASHES.has(name);
}

/** §5.1 sorts "using 'i;octet' collation": UTF-8 bytes, not UTF-16 code units. */
function octetCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const sorted = (values: string[]): string[] => values.sort(octetCompare);

function formType(form: XmlElement): string | undefined {
  const field = form.getChildren('field').find((f) => f.attr('var') === 'FORM_TYPE');
  return field?.getChildren('value').map((v) => v.text())[0];
}

/** §5.1 step 6–7: each extended form's FORM_TYPE, then its other fields by var, each with its values sorted. */
function formString(form: XmlElement): string {
  let s = `${formType(form)}<`;
  const fields = form.getChildren('field').filter((f) => f.attr('var') !== 'FORM_TYPE');
  fields.sort((a, b) => octetCompare(a.attr('var') ?? '', b.attr('var') ?? ''));
  for (const f of fields) {
    s += `${f.attr('var') ?? ''}<`;
    for (const v of sorted(f.getChildren('value').map((e) => e.text()))) s += `${v}<`;
  }
  return s;
}

/**
 * §5.4 step 3: a result with two identities of the same category, type,
 * lang and name, a repeated feature, two forms of one FORM_TYPE, or a
 * FORM_TYPE with differing values is not to be trusted; undefined for
 * those. A form without a FORM_TYPE is ignored, and the rest goes on
 * ("ignore the form but continue processing"). A FORM_TYPE whose type is
 * not 'hidden' still counts: the hashing clients and servers compute
 * (Prosody's among them) read the value whatever the type, and a ver that
 * left the form out would never match theirs.
 */
export function verificationString(query: XmlElement): string | undefined {
  const identities = query.getChildren('identity').map((i) =>
    `${i.attr('category') ?? ''}/${i.attr('type') ?? ''}/${i.attr('xml:lang') ?? ''}/${i.attr('name') ?? ''}`);
  const features = query.getChildren('feature').map((f) => f.attr('var') ?? '');
  const forms = query.getChildren('x', NS.DATA_FORMS).filter((form) => form.getChildren('field').some((f) => f.attr('var') === 'FORM_TYPE'));
  if (forms.some((form) => new Set(form.getChildren('field').find((f) => f.attr('var') === 'FORM_TYPE')!.getChildren('value').map((v) => v.text())).size > 1)) return undefined;
  const types = forms.map(formType);
  if (new Set(identities).size !== identities.length || new Set(features).size !== features.length) return undefined;
  if (types.some((t) => t === undefined) || new Set(types).size !== types.length) return undefined;
  let s = '';
  for (const i of sorted(identities)) s += `${i}<`;
  for (const f of sorted(features)) s += `${f}<`;
  for (const form of [...forms].sort((a, b) => octetCompare(formType(a)!, formType(b)!))) s += formString(form);
  return s;
}

/** §5.1 step 8–9: the ver of `query` under `hash`, base64; undefined when unknown or untrustworthy. */
export function capsVer(query: XmlElement, hash: string): string | undefined {
  const algorithm = HASHES.get(hash);
  const s = verificationString(query);
  if (algorithm === undefined || s === undefined) return undefined;
  return createHash(algorithm).update(s, 'utf8').digest('base64');
}
