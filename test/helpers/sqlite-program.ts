/**
 * What SQLite will run for a statement, read from its EXPLAIN listing: the
 * statement's own program, then each trigger and foreign-key action program
 * it can run (nested ones too), each listed from address 0. Which b-tree of
 * the schema (table or index) each step reads from its first row (`Rewind`,
 * `Last`: a scan whose length grows with the table) and which it seeks into.
 *
 * The opcodes are SQLite's internals (https://sqlite.org/opcode.html): a new
 * SQLite may name them otherwise, so callers check that what they look for
 * is found at all, not only that nothing bad is.
 */
import type Database from 'better-sqlite3';

interface Op { addr: number; opcode: string; p1: number; p2: number; p3: number; p4: unknown }

/** One statement of a program: a trigger's statements each begin with a Trace op naming it. */
export interface ProgramStep {
  /** The trigger it belongs to ('' for the statement itself and foreign-key actions). */
  readonly trigger: string;
  /** The statement's text for a trigger's step, else ''. */
  readonly statement: string;
  /** The b-trees read from their first row (or last), as `table` or `table(index columns)`. */
  readonly scans: readonly string[];
  /** The b-trees sought into by key. */
  readonly seeks: readonly string[];
}

const OPENS = new Set(['OpenRead', 'OpenWrite', 'ReopenIdx']);
const SCANS = new Set(['Rewind', 'Last']);
const SEEKS = new Set(['SeekGE', 'SeekGT', 'SeekLE', 'SeekLT', 'SeekRowid', 'NotExists', 'Found', 'NotFound', 'NoConflict', 'IdxGE', 'IdxGT', 'IdxLE', 'IdxLT']);

/** Each b-tree of the main schema by root page: `table`, or `table(col, …)` for an index. */
function btrees(db: Database.Database): Map<number, string> {
  const rows = db.prepare<[], { rootpage: number; type: string; name: string; tbl_name: string }>(
    'SELECT rootpage, type, name, tbl_name FROM sqlite_schema WHERE rootpage > 0').all();
  const names = new Map<number, string>([[1, 'sqlite_schema']]);
  for (const r of rows) {
    const columns = () => db.prepare<[string], { name: string | null }>('SELECT name FROM pragma_index_info(?) ORDER BY seqno').all(r.name).map((c) => c.name);
    names.set(r.rootpage, r.type === 'index' ? `${r.tbl_name}(${columns().join(', ')})` : r.name);
  }
  return names;
}

function listing(db: Database.Database, sql: string, params: unknown[]): Op[][] {
  const ops = db.prepare(`EXPLAIN ${sql}`).all(...params) as Op[];
  const programs: Op[][] = [];
  for (const op of ops) {
    if (op.addr === 0) programs.push([]);
    programs[programs.length - 1]!.push(op);
  }
  return programs;
}

/** The steps of `sql`'s program and of every program it can run. */
export function programSteps(db: Database.Database, sql: string, params: unknown[] = []): ProgramStep[] {
  const names = btrees(db);
  const steps: ProgramStep[] = [];
  for (const program of listing(db, sql, params)) {
    const init = String(program[0]?.p4 ?? '');
    const trigger = /^-- TRIGGER (\w+)/.exec(init)?.[1] ?? '';
    // Cursors are numbered per program; p3 0 is the main schema (1 would be temp).
    const cursors = new Map<number, string>();
    let step = { trigger, statement: '', scans: [] as string[], seeks: [] as string[] };
    steps.push(step);
    for (const op of program) {
      if (op.opcode === 'Trace' && trigger !== '') {
        step = { trigger, statement: String(op.p4).replace(/^-- /, '').replace(/\s+/g, ' '), scans: [], seeks: [] };
        steps.push(step);
      } else if (OPENS.has(op.opcode) && op.p3 === 0 && names.has(op.p2)) cursors.set(op.p1, names.get(op.p2)!);
      else if (SCANS.has(op.opcode) && cursors.has(op.p1)) step.scans.push(cursors.get(op.p1)!);
      else if (SEEKS.has(op.opcode) && cursors.has(op.p1)) step.seeks.push(cursors.get(op.p1)!);
    }
  }
  return steps.filter((s) => s.statement !== '' || s.scans.length > 0 || s.seeks.length > 0);
}
