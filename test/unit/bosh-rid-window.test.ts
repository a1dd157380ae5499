import t from 'tap';
import { MAX_RID, RidWindow, parseRid } from '../../src/transports/bosh/rid-window.js';

t.test('the creation rid is open and the next rid is expected', async (t) => {
  const w = new RidWindow(100, 2);
  t.equal(w.next, 101);
  t.equal(w.ack, 100);
  t.equal(w.classify(100), 'open');
  t.equal(w.classify(101), 'next');
  t.equal(w.openCount, 1);
});

t.test('rids inside the window but past a gap are future; beyond it outside (XEP-0124 §14.2)', async (t) => {
  const w = new RidWindow(100, 2);
  t.equal(w.classify(102), 'future', 'next + 1 is inside a window of 2');
  t.equal(w.classify(103), 'outside');
  const wide = new RidWindow(100, 3);
  t.equal(wide.classify(103), 'future');
  t.equal(wide.classify(104), 'outside');
});

t.test('an answered rid is buffered and can be resent; older ones are gone (§14.3)', async (t) => {
  const w = new RidWindow(100, 2);
  w.answer(100, '<body/>', 1000);
  t.equal(w.classify(100), 'answered');
  t.equal(w.cached(100), '<body/>');
  t.equal(w.sentAt(100), 1000);
  t.equal(w.highestAnswered, 100);
  w.accept(101);
  w.answer(101, '<body a="1"/>', 1001);
  w.accept(102);
  t.equal(w.classify(100), 'gone', 'below next - size nothing can be repeated');
  t.equal(w.cached(100), undefined);
  t.equal(w.classify(101), 'answered');
  t.equal(w.classify(102), 'open');
  t.equal(w.classify(50), 'gone', 'a rid never seen below the window is gone too');
});

t.test('at most `size` responses are buffered', async (t) => {
  const w = new RidWindow(1, 2);
  w.answer(1, 'a', 0);
  for (let rid = 2; rid <= 50; rid++) {
    w.accept(rid);
    w.answer(rid, `r${rid}`, rid);
    t.ok(w.bufferedCount <= 2, `after rid ${rid}`);
  }
  t.equal(w.cached(50), 'r50');
  t.equal(w.cached(49), 'r49');
  t.equal(w.cached(48), undefined);
});

t.test('answers without a body (pauses, errors) are not buffered', async (t) => {
  const w = new RidWindow(7, 2);
  w.answer(7, undefined, 0);
  t.equal(w.classify(7), 'gone');
  t.equal(w.highestAnswered, 7);
});

t.test('misuse throws', async (t) => {
  const w = new RidWindow(10, 2);
  t.throws(() => w.accept(12), RangeError, 'only the next rid can be accepted');
  t.throws(() => w.answer(11, 'x', 0), RangeError, 'only open rids can be answered');
  t.throws(() => new RidWindow(0, 2), RangeError);
  t.throws(() => new RidWindow(5, 0), RangeError);
});

t.test('ack is the highest rid with every lower one received (§9.1)', async (t) => {
  const w = new RidWindow(10, 3);
  w.accept(11);
  t.equal(w.ack, 11);
  t.equal(w.classify(13), 'future', 'a future rid does not move ack');
  t.equal(w.ack, 11);
});

t.test('parseRid accepts positive integers up to 2^53 - 1 only (§14.1)', async (t) => {
  t.equal(parseRid('1'), 1);
  t.equal(parseRid('9007199254740991'), MAX_RID);
  for (const bad of [undefined, '', '0', '-1', '1.5', '1e3', ' 1', '0x10', '9007199254740992', '12345678901234567', 'abc']) {
    t.equal(parseRid(bad), undefined, JSON.stringify(bad));
  }
});
