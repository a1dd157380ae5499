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
  help, --help        Show this help

Run '${PROGRAM} user --help' for the account commands.`;

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
