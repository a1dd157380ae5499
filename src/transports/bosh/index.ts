export { registerBosh } from './route.js';
export { BoshTransport, type BoshOptions, type BoshStats } from './transport.js';
export type { TerminalCondition } from './body.js';
