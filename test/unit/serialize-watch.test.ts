/**
 * serializeOut() and the one watched element (xml/serialize.ts): the message archive takes the text
 * a transport writes for the message it archived last (features/mam/index.ts).
 */
import t from 'tap';
import { parseXml, serialize, serializeOut, unwatchSerialization, watchSerialization } from '../../src/xml/index.js';

t.test('the watcher gets the text of the watched element, once; other elements pass', async (t) => {
  const a = parseXml("<message xmlns='jabber:client' id='a'><body>é &amp; 🎉</body></message>");
  const b = parseXml("<message xmlns='jabber:client' id='b'><body>b</body></message>");
  const got: string[] = [];
  watchSerialization(a, (text) => got.push(text));
  t.equal(serializeOut(b), serialize(b), 'another element: its text');
  t.same(got, [], 'and no call');
  t.equal(serializeOut(a), serialize(a), 'the watched one: its text');
  t.same(got, [serialize(a)], 'handed to the watcher');
  serializeOut(a);
  t.same(got, [serialize(a)], 'once only');
});

t.test('a new watch replaces the last; unwatching another element leaves it', async (t) => {
  const a = parseXml('<a/>');
  const b = parseXml('<b/>');
  const got: string[] = [];
  watchSerialization(a, (text) => got.push(`a:${text}`));
  watchSerialization(b, (text) => got.push(`b:${text}`));
  serializeOut(a);
  t.same(got, [], 'the first watch is gone');
  unwatchSerialization(a);
  serializeOut(b);
  t.same(got, ['b:<b/>'], 'the second is still there after unwatching the first');
  watchSerialization(a, (text) => got.push(`a:${text}`));
  unwatchSerialization(a);
  serializeOut(a);
  t.same(got, ['b:<b/>'], 'unwatched');
});
