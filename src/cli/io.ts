/** The streams and environment a CLI run uses, injected so tests run it in-process. */
import { createInterface } from 'node:readline';

export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

/** Every line of `input` until EOF, without line terminators. */
export function readLines(input: NodeJS.ReadableStream): AsyncIterable<string> {
  return createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY, terminal: false });
}

/** The first line of `input`, or '' at EOF. Stops reading there instead of waiting for EOF. */
export function readFirstLine(input: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY, terminal: false });
    input.once('error', reject);
    // resolve before close: close() emits 'close' synchronously, which would settle with ''.
    rl.once('line', (line) => {
      resolve(line);
      rl.close();
    });
    rl.once('close', () => {
      input.off('error', reject);
      resolve('');
    });
  });
}

export function println(stream: NodeJS.WritableStream, text: string): void {
  stream.write(`${text}\n`);
}
