/** In-memory FastTokenStore with the same observable behaviour as the SQLite one. */
import { compareCodePoints } from '../order.js';
import type { FastToken, FastTokenStore } from '../ports/fast-tokens.js';
import { keyOf, type Purgeable } from './key.js';

export function createMemoryFastTokenStore(): FastTokenStore & Purgeable {
  const byAccount = new Map<string, FastToken[]>();
  const list = (host: string, username: string): FastToken[] => byAccount.get(keyOf(host, username)) ?? [];
  const put = (host: string, username: string, tokens: FastToken[]): void => {
    if (tokens.length === 0) byAccount.delete(keyOf(host, username));
    else byAccount.set(keyOf(host, username), tokens);
  };
  return {
    async issue(token, maxAgents) {
      const tokens = list(token.host, token.username).filter((t) => !(t.agent === token.agent && t.slot === 'new'));
      tokens.push({ ...token, slot: 'new' });
      put(token.host, token.username, keepAgents(tokens, maxAgents, token.agent));
    },
    async find(host, username, storedKey) {
      const found = list(host, username).find((t) => t.storedKey === storedKey);
      return found && { ...found };
    },
    async used(host, username, agent, storedKey) {
      const tokens = list(host, username);
      const token = tokens.find((t) => t.storedKey === storedKey && t.agent === agent);
      if (token?.slot !== 'new') return;
      put(host, username, tokens.flatMap((t): FastToken[] => {
        if (t.agent !== agent) return [t];
        if (t === token) return [{ ...t, slot: 'current' }];
        return t.slot === 'current' ? [{ ...t, slot: 'retired' }] : t.slot === 'retired' ? [] : [t];
      }));
    },
    async retire(host, username, storedKey) {
      const tokens = list(host, username);
      const agent = tokens.find((t) => t.storedKey === storedKey)?.agent;
      if (agent === undefined) return;
      // One 'retired' slot per agent: an older retired token of the same agent makes room.
      put(host, username, tokens.flatMap((t): FastToken[] => {
        if (t.storedKey === storedKey) return [{ ...t, slot: 'retired' }];
        return t.agent === agent && t.slot === 'retired' ? [] : [t];
      }));
    },
    async revoke(host, username) {
      byAccount.delete(keyOf(host, username));
    },
    async expire(now) {
      let removed = 0;
      for (const [key, tokens] of [...byAccount]) {
        const kept = tokens.filter((t) => t.expiresAt > now);
        removed += tokens.length - kept.length;
        if (kept.length === 0) byAccount.delete(key);
        else byAccount.set(key, kept);
      }
      return removed;
    },
    purge(host, username) {
      byAccount.delete(keyOf(host, username));
    },
  };
}

/**
 * Keeps the tokens of the `maxAgents` agents whose latest expiry is the latest; on a tie, the agent
 * just issued to (`issued`) first, then by agent id in code point order (the SQL stores' ORDER BY).
 */
function keepAgents(tokens: FastToken[], maxAgents: number, issued: string): FastToken[] {
  const latest = new Map<string, number>();
  for (const t of tokens) latest.set(t.agent, Math.max(latest.get(t.agent) ?? 0, t.expiresAt));
  if (latest.size <= maxAgents) return tokens;
  const order = ([a, x]: [string, number], [b, y]: [string, number]): number =>
    y - x || Number(b === issued) - Number(a === issued) || compareCodePoints(a, b);
  const kept = new Set([...latest].sort(order).slice(0, maxAgents).map(([agent]) => agent));
  return tokens.filter((t) => kept.has(t.agent));
}
