/**
 * Code point order, the order SQLite's default BINARY collation gives UTF-8
 * text. JavaScript's `<` compares UTF-16 code units, which disagrees for
 * characters above U+FFFF, so backends that sort in JS use this to match.
 */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function compareUserKeys(a: { host: string; username: string }, b: { host: string; username: string }): number {
  return compareCodePoints(a.host, b.host) || compareCodePoints(a.username, b.username);
}
