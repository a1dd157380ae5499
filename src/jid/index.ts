export {
  Jid,
  JidError,
  makeJid,
  normalizeDomain,
  normalizeLocal,
  normalizeResource,
  parseJid,
  tryNormalizeDomain,
  tryParseJid,
} from './jid.js';
