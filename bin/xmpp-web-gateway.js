#!/usr/bin/env node
// Thin launcher: the CLI is TypeScript compiled to dist/ by `npm run build`.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('xmpp-web-gateway: dist/cli/main.js is missing; run `npm run build` first\n');
  process.exit(1);
}
const { main } = await import(entry.href);
await main();
