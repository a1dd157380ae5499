/** Exit codes of the CLI (the admin commands use all four; `user` only 0 and 1). */
export const EXIT = { ok: 0, usage: 1, notRunning: 2, refused: 3 } as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * An error whose message is meant for the operator as-is: runCli prints it
 * on stderr without a stack and exits with `exitCode` (1 unless said). Anything else is a bug and is
 * printed with its stack.
 */
export class CliError extends Error {
  constructor(message: string, readonly exitCode: ExitCode = EXIT.usage) {
    super(message);
    this.name = 'CliError';
  }
}
