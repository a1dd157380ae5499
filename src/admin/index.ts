/** The admin socket, wired from the app's parts (app.ts calls startAdmin; the CLI uses client.ts). */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import type { Config } from '../config/index.js';
import type { Storage } from '../storage/index.js';
import { DATABASE_FILE } from '../storage/sqlite/index.js';
import type { XmppServer } from '../server.js';
import type { Log } from '../xmpp/log.js';
import { createAdminPort } from './port.js';
import { MAX_PATH_BYTES, startAdminSocket, type AdminSocket } from './server.js';
import { SCHEMA } from '../config/index.js';

export type { AdminSocket } from './server.js';
export { AdminSocketError } from './server.js';

export interface AdminParts {
  readonly xmpp: Pick<XmppServer, 'sessions' | 'registry' | 'unacked'>;
  readonly config: Pick<Config, 'domains' | 'storage'>;
  readonly storage: Pick<Storage, 'backup'>;
  /** The cluster node's id; null outside a cluster. */
  readonly node: string | null;
}

export type AdminSocketSettings = Pick<Config, 'adminSocket' | 'dataDir' | 'cluster' | 'nodeId'>;

/**
 * Where the admin socket is: ADMIN_SOCKET resolved against DATA_DIR, or
 * undefined when 'off'. In a cluster each node has its own,
 * `<path>-<node id>` (NODE_ID, else the host name, as src/cluster names the
 * node; a WORKERS process's NODE_ID ends in -w<i>): nodes may share a
 * DATA_DIR, and each socket speaks for its own node only.
 */
export function adminSocketPath(config: AdminSocketSettings): string | undefined {
  if (config.adminSocket === 'off') return undefined;
  const path = resolve(config.dataDir, config.adminSocket);
  if (config.cluster !== 'redis') return path;
  return `${path}-${config.nodeId === '' ? hostname() : config.nodeId}`;
}

/**
 * adminSocketPath for the server. The default (admin.sock in DATA_DIR) under
 * a DATA_DIR too deep for a socket address turns the socket off with a
 * warning, so an upgrade never stops a working start; a path set explicitly
 * is checked by startAdminSocket, which stops the start naming it.
 */
export function serverAdminSocketPath(config: AdminSocketSettings, warn: (line: string) => void): string | undefined {
  const path = adminSocketPath(config);
  if (path === undefined || config.adminSocket !== SCHEMA.adminSocket.default || Buffer.byteLength(path) <= MAX_PATH_BYTES) return path;
  warn(`ADMIN_SOCKET: ${path} is longer than the ${MAX_PATH_BYTES} bytes a Unix socket address holds; the admin socket is off (set ADMIN_SOCKET to a shorter absolute path)`);
  return undefined;
}

export function startAdmin(path: string, parts: AdminParts, log: Log): Promise<AdminSocket> {
  const { xmpp, config, storage } = parts;
  const port = createAdminPort({
    sessions: xmpp.sessions, unacked: (s) => xmpp.unacked(s), hosts: config.domains, registry: xmpp.registry,
    storage: { backend: config.storage, backup: storage.backup?.bind(storage) }, backupFile: DATABASE_FILE,
    node: parts.node, now: Date.now,
  });
  return startAdminSocket(path, port, log);
}
