export {
  Jid,
  JidError,
  makeJid,
  normalizeDomain,
  normalizeLocal,
  normalizeResource,
  parseJid,
  tryParseJid,
} from './jid.js';
