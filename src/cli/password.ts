/**
 * Where a password comes from: --password, else the first line of a piped
 * stdin, else typed twice on the terminal without echo.
 */
import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';
import { assertValidPassword } from '../storage/index.js';
import { CliError } from './errors.js';
import { readFirstLine, type CliIo } from './io.js';

// Checked as soon as it is known, so a bad password is refused before the second prompt.
function valid(password: string): string {
  assertValidPassword(password);
  return password;
}

// readline echoes each keystroke to its output; giving it a sink hides them.
const sink = (): Writable => new Writable({ write: (_chunk, _encoding, done) => done() });

function ask(rl: Interface, prompt: string, out: NodeJS.WritableStream): Promise<string> {
  out.write(prompt);
  return new Promise((resolve, reject) => {
    // Ctrl-C and Ctrl-D close the interface; without this the promise would never settle.
    const onClose = (): void => reject(new CliError('password entry cancelled'));
    rl.once('close', onClose);
    rl.question('', (answer) => {
      rl.off('close', onClose);
      out.write('\n');
      resolve(answer);
    });
  });
}

/** Prompts on the terminal twice (prompts go to stderr so stdout stays clean). */
export async function promptNewPassword(io: CliIo): Promise<string> {
  const rl = createInterface({ input: io.stdin, output: sink(), terminal: true });
  rl.on('SIGINT', () => rl.close());
  try {
    const first = valid(await ask(rl, 'Password: ', io.stderr));
    const second = await ask(rl, 'Repeat password: ', io.stderr);
    if (first !== second) throw new CliError('passwords do not match');
    return first;
  } finally {
    rl.close();
  }
}

export async function obtainPassword(flag: string | undefined, io: CliIo): Promise<string> {
  if (flag !== undefined) return valid(flag);
  if (!io.stdin.isTTY) return valid(await readFirstLine(io.stdin));
  return promptNewPassword(io);
}
