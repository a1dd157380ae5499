/**
 * An error whose message is meant for the operator as-is: runCli prints it
 * on stderr without a stack and exits 1. Anything else is a bug and is
 * printed with its stack.
 */
export class CliError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CliError';
  }
}
