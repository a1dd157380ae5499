/**
 * Node configuration of PEP nodes (XEP-0060 §16.4.4 pubsub#node_config) and
 * publish-options (XEP-0060 §7.1.5): reading the data forms (XEP-0004)
 * clients send, checking preconditions, and the form a client is shown.
 */
import { NS, x, type XmlElement } from '../../../xml/index.js';
import { StanzaErrorException } from '../../errors.js';
import type { PepAccessModel, PepNodeConfig } from '../../../storage/ports/pep.js';
import { PubsubError } from './errors.js';

export const PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
export const NODE_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';

const ACCESS_MODELS: readonly PepAccessModel[] = ['presence', 'open', 'whitelist', 'roster'];

/** XEP-0163 §4.2: presence access by default; one item (the current state) as Prosody and ejabberd keep. */
export const DEFAULT_CONFIG: PepNodeConfig = { accessModel: 'presence', persistItems: true, maxItems: 1, rosterGroupsAllowed: [] };

/** The fields of a submitted form, by var; FORM_TYPE checked against `formType`. */
function fieldsOf(form: XmlElement, formType: string): Map<string, string[]> {
  if (!form.is('x', NS.DATA_FORMS) || form.attr('type') !== 'submit') throw new StanzaErrorException('bad-request', 'expected a submitted data form');
  const fields = new Map<string, string[]>();
  for (const f of form.getChildren('field')) {
    const name = f.attr('var');
    if (name === undefined) throw new StanzaErrorException('bad-request', 'a field without var');
    fields.set(name, f.getChildren('value').map((v) => v.text()));
  }
  // XEP-0004 §3.4 / XEP-0068: the FORM_TYPE names what the form is.
  if (fields.get('FORM_TYPE')?.[0] !== formType) throw new StanzaErrorException('bad-request', `FORM_TYPE must be ${formType}`);
  return fields;
}

/**
 * The error for a value a form cannot have. A node configuration (XEP-0060 §8.1.3 create and
 * configure, §8.2.5.2 configure) that "cannot be processed" is not-acceptable; publish-options
 * (§7.1.5, which names no error for it) get bad-request with invalid-options.
 */
type Invalid = (text: string) => StanzaErrorException;
const invalidFor = (formType: string): Invalid => formType === NODE_CONFIG
  ? (text) => new StanzaErrorException('not-acceptable', text)
  : (text) => new PubsubError('bad-request', 'invalid-options', undefined, text);

/** XEP-0004 §3.3 booleans. */
function parseBool(value: string | undefined, name: string, invalid: Invalid): boolean {
  if (value === '1' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  throw invalid(`${name} must be a boolean`);
}

/** pubsub#max_items: a positive integer or 'max' (XEP-0060 §7.1.5), at most `limit`. */
function parseMaxItems(value: string | undefined, limit: number, invalid: Invalid): number {
  if (value === 'max') return limit;
  const n = value !== undefined && /^[0-9]{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1)) throw invalid("pubsub#max_items must be a positive integer or 'max'");
  // XEP-0060 §8.2.5.3: a value the service cannot accept.
  if (n > limit) throw new StanzaErrorException('not-acceptable', `pubsub#max_items may be at most ${limit}`);
  return n;
}

function parseAccessModel(value: string | undefined, formType: string): PepAccessModel {
  if (ACCESS_MODELS.includes(value as PepAccessModel)) return value as PepAccessModel;
  // XEP-0060 §8.1.2: "If service does not support the specified access model, it MUST return a
  // <not-acceptable/> error, specifying a pubsub-specific error condition of <unsupported-access-model/>."
  if (formType === NODE_CONFIG) throw new PubsubError('not-acceptable', 'unsupported-access-model', undefined, `unsupported pubsub#access_model: ${value ?? ''}`);
  // XEP-0060 §4.5: authorize is a model this service lacks; anything else is no model at all.
  if (value === 'authorize') throw new PubsubError('feature-not-implemented', 'unsupported', 'access-authorize');
  throw new PubsubError('bad-request', 'invalid-options', undefined, 'unknown pubsub#access_model');
}

/** The fields XEP-0060 §16.4.4 registers for pubsub#node_config: what a publish-option may name (§7.1.5). */
const NODE_CONFIG_FIELDS = new Set([
  'access_model', 'body_xslt', 'contact', 'dataform_xslt', 'deliver_notifications', 'deliver_payloads', 'description',
  'item_expire', 'itemreply', 'language', 'max_items', 'max_payload_size', 'node_type', 'notification_type', 'notify_config',
  'notify_delete', 'notify_retract', 'notify_sub', 'persist_items', 'presence_based_delivery', 'publish_model',
  'publish_node_full', 'purge_offline', 'roster_groups_allowed', 'send_last_published_item', 'tempsub', 'subscribe', 'title', 'type',
].map((f) => `pubsub#${f}`));

/**
 * The configuration fields a form sets. Registered fields this service
 * does not implement (send_last_published_item, notify_retract, title…)
 * are accepted and ignored: Converse and Conversations send them with
 * every bookmark. A publish-option that is no registered field is refused.
 */
export function parseConfigForm(form: XmlElement, formType: string, maxItemsLimit: number): Partial<PepNodeConfig> {
  const fields = fieldsOf(form, formType);
  const invalid = invalidFor(formType);
  // XEP-0060 §7.1.5: a publish-option names a node configuration field, and the service "MUST reject
  // the publication upon encountering unknown fields".
  if (formType === PUBLISH_OPTIONS) {
    for (const name of fields.keys()) if (name !== 'FORM_TYPE' && !NODE_CONFIG_FIELDS.has(name)) throw invalid(`unknown publish-option: ${name}`);
  }
  const out: { -readonly [K in keyof PepNodeConfig]?: PepNodeConfig[K] } = {};
  if (fields.has('pubsub#access_model')) out.accessModel = parseAccessModel(fields.get('pubsub#access_model')![0], formType);
  if (fields.has('pubsub#persist_items')) out.persistItems = parseBool(fields.get('pubsub#persist_items')![0], 'pubsub#persist_items', invalid);
  if (fields.has('pubsub#max_items')) out.maxItems = parseMaxItems(fields.get('pubsub#max_items')![0], maxItemsLimit, invalid);
  if (fields.has('pubsub#roster_groups_allowed')) out.rosterGroupsAllowed = fields.get('pubsub#roster_groups_allowed')!;
  return out;
}

/** XEP-0060 §7.1.5: each option given must match the existing node's configuration. */
export function checkPreconditions(config: PepNodeConfig, options: Partial<PepNodeConfig>): void {
  for (const [key, value] of Object.entries(options) as [keyof PepNodeConfig, unknown][]) {
    if (JSON.stringify(config[key]) !== JSON.stringify(value)) {
      throw new PubsubError('conflict', 'precondition-not-met', undefined, `the node's ${key} differs`);
    }
  }
}

const field = (name: string, type: string, values: readonly string[], ...options: string[]): XmlElement =>
  x('field', { var: name, type }, ...values.map((v) => x('value', {}, v)), ...options.map((o) => x('option', {}, x('value', {}, o))));

/** XEP-0060 §8.2.1: the node's configuration form. */
export function configForm(config: PepNodeConfig): XmlElement {
  return x('x', { xmlns: NS.DATA_FORMS, type: 'form' },
    field('FORM_TYPE', 'hidden', [NODE_CONFIG]),
    field('pubsub#access_model', 'list-single', [config.accessModel], ...ACCESS_MODELS),
    field('pubsub#persist_items', 'boolean', [config.persistItems ? '1' : '0']),
    field('pubsub#max_items', 'text-single', [String(config.maxItems)]),
    field('pubsub#roster_groups_allowed', 'list-multi', config.rosterGroupsAllowed));
}
