/** Help texts. Defaults are taken from the configuration schema so they cannot drift. */
import { SCHEMA } from '../config/index.js';

export const PROGRAM = 'xmpp-web-gateway';

export const MAIN_USAGE = `Usage: ${PROGRAM} [COMMAND]

Commands:
  serve               Start the server (the default when no command is given)
  user add JID        Create an account
  user passwd JID     Change an account's password
  user delete JID     Delete an account
  user list [HOST]    List accounts
  user import         Create accounts from 'JID PASSWORD' lines on stdin
  sessions list       List this node's sessions (over the admin socket)
  sessions kick JID   End a JID's sessions with a stream error
  stats               Sessions, uptime, messages in/out, storage
  announce HOST MSG   Send a headline to every online resource on HOST
  backup DIR          Copy the SQLite database into DIR (online if running)
  restore DIR         Put a backup in place (the server must be stopped)
  help, --help        Show this help

Run '${PROGRAM} user --help' for the account commands, '${PROGRAM} sessions --help' for the admin ones.`;

export const USER_USAGE = `Usage: ${PROGRAM} user COMMAND [ARGS]

  add JID [--password P]      Create the account JID (a bare user@host)
  passwd JID [--password P]   Set a new password for JID
  delete JID                  Delete the account JID
  list [HOST]                 Print accounts, one JID per line, sorted
  import                      Read 'JID PASSWORD' lines from stdin and create all
                              of them in one transaction, or none on any error.
                              The password is the rest of the line after the
                              first whitespace; blank lines and # comments are
                              ignored.

The password comes from --password, else from the first line of stdin when it
is not a terminal, else from a prompt (asked twice, not echoed). Prefer stdin
or the prompt: --password is visible to other local users in the process list.

Environment (a ./.env file is read too; the real environment wins):
  ${SCHEMA.storage.env.padEnd(17)} ${SCHEMA.storage.values.join(' or ')} (default ${SCHEMA.storage.default})
  ${SCHEMA.dataDir.env.padEnd(17)} Directory of the SQLite database (default ${SCHEMA.dataDir.default})
  ${SCHEMA.databaseUrl.env.padEnd(17)} postgres://user:password@host:port/database (STORAGE=postgres)
  ${SCHEMA.domains.env.padEnd(17)} Comma-separated hosts served (default ${SCHEMA.domains.default.join(',')})
  ${SCHEMA.scramIterations.env.padEnd(17)} PBKDF2 iterations of new credentials (default ${SCHEMA.scramIterations.default})`;


export const ADMIN_USAGE = `Usage: ${PROGRAM} COMMAND [ARGS]   (talks to the running server over its admin socket)

  sessions list [--json]          JID (or (unbound)), transport, IP, state, age, unacked SM queue
  sessions kick JID [--condition C]
                                  End the sessions of JID (a bare JID: all its resources) with the
                                  RFC 6120 stream error C (default policy-violation); not resumable
  stats [--json]                  Sessions by transport and state, uptime, messages in/out, storage
  announce HOST [--subject S] [MESSAGE]
                                  A headline from HOST to every online resource on it (XEP-0133
                                  style); the message is read from stdin when not given
  backup DIR                      Write DIR/gateway.sqlite (0600, never overwritten): by the running
                                  server (SQLite backup API), or from the file when it is stopped
  restore DIR                     Check DIR/gateway.sqlite (integrity, schema version) and put it in
                                  place, keeping the current file as gateway.sqlite.before-restore-<time>;
                                  refused while the server runs

The socket is ${SCHEMA.adminSocket.env} (default ${SCHEMA.adminSocket.default}, relative to ${SCHEMA.dataDir.env}), mode 0600: only the
server's Unix user may use it. With CLUSTER=redis it is <path>-<NODE_ID> and each node answers for itself only.
Exit codes: 0 ok, 1 usage, 2 server not running (socket absent), 3 refused.`;
