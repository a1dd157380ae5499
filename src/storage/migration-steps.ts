/** What the SQL backends' numbered migrations share: the numbering rule and the result of a run. */

export interface MigrationResult {
  from: number;
  to: number;
}

/** Versions are 1, 2, 3… in order: a step's version is its place, so "applied up to N" is one number. */
export function assertNumbered(migrations: readonly { version: number; name: string }[]): void {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration '${m.name}' has version ${m.version}, expected ${i + 1}`);
  });
}

/** A database written by a newer gateway: running old code on it could corrupt it. */
export function assertNotNewer(from: number, to: number): void {
  if (from > to) throw new Error(`database schema version ${from} is newer than this gateway supports (${to}); upgrade xmpp-web-gateway`);
}
