/** Turning a JID argument into the (host, username) key the UserStore uses. */
import { JidError, normalizeLocal, parseJid } from '../jid/jid.js';
import { CliError } from './errors.js';

export interface Account {
  host: string;
  username: string;
}

export const accountJid = (a: Account): string => `${a.username}@${a.host}`;

/** Runs a JID operation, rewording a JidError into a CliError that quotes the input. */
function explainJidErrors<T>(text: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof JidError) throw new CliError(`invalid JID '${text}': ${err.message}`);
    throw err;
  }
}

/**
 * Accepts only a bare `user@host` whose host this gateway serves; the local
 * part is normalised so `Alice@host` and `alice@host` are one account.
 * @throws CliError with an operator-facing message
 */
export function parseAccount(text: string, hosts: readonly string[]): Account {
  const jid = explainJidErrors(text, () => parseJid(text));
  if (!jid.local) throw new CliError(`invalid JID '${text}': expected user@host`);
  if (jid.resource) throw new CliError(`invalid JID '${text}': expected a bare JID user@host, without a /resource`);
  if (!hosts.includes(jid.domain)) {
    throw new CliError(`unknown host '${jid.domain}'; configured hosts: ${hosts.join(', ')}`);
  }
  const local = jid.local;
  return { host: jid.domain, username: explainJidErrors(text, () => normalizeLocal(local)) };
}
