import t from 'tap';
import { hostname } from 'node:os';
import { AdminError, lineSplitter, parseRequest } from '../../src/admin/protocol.js';
import { adminSocketPath } from '../../src/admin/index.js';

t.test('lines are put together across chunks and split within one', async (t) => {
  const lines: string[] = [];
  const split = lineSplitter(16, (l) => lines.push(l), () => t.fail('no overflow'));
  split(Buffer.from('{"op":'));
  split(Buffer.from('"stats"}\n{"a"'));
  split(Buffer.from(':1}\n\n'));
  t.same(lines, ['{"op":"stats"}', '{"a":1}', '']);
});

t.test('a multi-byte character cut between chunks stays whole', async (t) => {
  const lines: string[] = [];
  const split = lineSplitter(64, (l) => lines.push(l), () => t.fail('no overflow'));
  const bytes = Buffer.from('é\n');
  split(bytes.subarray(0, 1));
  split(bytes.subarray(1));
  t.same(lines, ['é']);
});

t.test('an unfinished line over the bound overflows once and nothing more is passed on', async (t) => {
  const lines: string[] = [];
  let overflows = 0;
  const split = lineSplitter(8, (l) => lines.push(l), () => overflows++);
  split(Buffer.from('ok\n12345'));
  split(Buffer.from('6789'));
  split(Buffer.from('\nlater\n'));
  t.same(lines, ['ok']);
  t.equal(overflows, 1);
});

t.test('requests are validated: op, JID, RFC 6120 condition, strings', async (t) => {
  t.same(parseRequest('{"op":"sessions.kick","jid":"a@b","condition":"conflict"}'), { op: 'sessions.kick', jid: 'a@b', condition: 'conflict' });
  const refused = (line: string, text: RegExp): void => {
    try {
      parseRequest(line);
      t.fail(`${line} is refused`);
    } catch (err) {
      t.ok(err instanceof AdminError && err.condition === 'bad-request', line);
      t.match((err as Error).message, text);
    }
  };
  refused('nope', /not JSON/);
  refused('[1]', /JSON object/);
  refused('{"op":"reboot"}', /unknown op/);
  refused('{"op":"sessions.kick","jid":"a@b","condition":"toString"}', /stream error condition/);
  refused('{"op":"announce","host":"h","body":""}', /'body'/);
  refused('{"op":"announce","host":"h","body":"x","subject":3}', /'subject'/);
});

t.test('the socket path: in DATA_DIR, off, and one per node in a cluster (nodes may share DATA_DIR)', async (t) => {
  const base = { dataDir: '/srv/xmpp', adminSocket: 'admin.sock', cluster: 'none', nodeId: '' } as const;
  t.equal(adminSocketPath(base), '/srv/xmpp/admin.sock');
  t.equal(adminSocketPath({ ...base, adminSocket: '/run/x/admin.sock' }), '/run/x/admin.sock');
  t.equal(adminSocketPath({ ...base, adminSocket: 'off' }), undefined);
  t.equal(adminSocketPath({ ...base, cluster: 'redis', nodeId: 'web-1-w2' }), '/srv/xmpp/admin.sock-web-1-w2');
  t.equal(adminSocketPath({ ...base, cluster: 'redis' }), `/srv/xmpp/admin.sock-${hostname()}`);
});
