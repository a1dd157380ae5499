export { registerBosh } from './route.js';
export { BoshTransport, type BoshOptions, type BoshStats } from './transport.js';
export type { TerminalCondition } from './body.js';
export { CLOSE_CONNECTION_TYPE, HOP_HEADER, type BoshForwarder, type ClientInfo, type HttpReply } from './types.js';
