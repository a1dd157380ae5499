import t from 'tap';
import { MAX_RID, RidWindow, UNACKED_BUFFER_FACTOR, parseRid } from '../../src/transports/bosh/rid-window.js';

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
  w.answer(102, '<body a="2"/>', 1002);
  t.equal(w.classify(100), 'gone', 'the third response pushed the first out of a buffer of 2');
  t.equal(w.cached(100), undefined);
  t.equal(w.classify(101), 'answered');
  t.equal(w.classify(102), 'answered');
  t.equal(w.classify(50), 'gone', 'a rid never seen below the window is gone too');
});

t.test('the buffer keeps `size` responses by count, not by rid: a lost response outlives a newer request (§14.3)', async (t) => {
  // hold=1, requests=2: 101 is answered when 102 arrives, and that answer is lost; the client,
  // with 101 and then 103 outstanding, repeats 101 after 102's answer reached it and 103 was sent.
  const w = new RidWindow(100, 2);
  w.answer(100, 'r100', 0);
  w.accept(101);
  w.accept(102);
  w.answer(101, 'r101', 1);
  w.answer(102, 'r102', 2);
  w.accept(103);
  t.equal(w.classify(101), 'answered', 'below next - size, still buffered: one of the last two responses');
  t.equal(w.cached(101), 'r101');
  t.equal(w.bufferedCount, 2);
});

t.test('with acknowledgements, responses are kept until acknowledged, up to UNACKED_BUFFER_FACTOR × size (§9.1, §14.3)', async (t) => {
  const w = new RidWindow(100, 2, true);
  w.answer(100, 'r100', 0);
  for (let rid = 101; rid <= 103; rid++) {
    w.accept(rid);
    w.answer(rid, `r${rid}`, rid);
  }
  // The client acknowledged only 100 (101's response was lost); it got 102 and 103.
  w.acknowledged(100);
  t.equal(w.classify(100), 'gone', 'an acknowledged response is not kept');
  t.same([101, 102, 103].map((rid) => w.cached(rid)), ['r101', 'r102', 'r103'], 'three unacknowledged responses kept, more than size');
  w.accept(104);
  w.answer(104, 'r104', 104);
  w.accept(105);
  w.answer(105, 'r105', 105);
  t.equal(w.bufferedCount, UNACKED_BUFFER_FACTOR * 2, 'a client that never acknowledges holds a bounded number');
  t.equal(w.cached(101), undefined, 'the oldest went first');
  w.acknowledged(104);
  t.same([w.cached(104), w.cached(105)], [undefined, 'r105'], 'an acknowledgement drops what it covers');
  w.acknowledged(90);
  t.equal(w.cached(105), 'r105', 'an acknowledgement never goes back');
  const noAcks = new RidWindow(1, 2);
  noAcks.answer(1, 'r1', 0);
  noAcks.acknowledged(1);
  t.equal(noAcks.cached(1), 'r1', 'without acknowledgements asked for, an ack attribute changes nothing');
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

t.test('rebuffer replaces a buffered answer (one that never went out, sent later), and buffers nothing new', async (t) => {
  const w = new RidWindow(7, 2);
  w.answer(7, '<body/>', 100);
  w.rebuffer(7, '<body><success/></body>', 250);
  t.equal(w.cached(7), '<body><success/></body>', 'the answer sent later is the one kept');
  t.equal(w.sentAt(7), 250, 'with the time it went out (§9.2 reports)');
  w.accept(8);
  w.answer(8, undefined, 300);
  w.rebuffer(8, '<body/>', 400);
  t.equal(w.classify(8), 'gone', 'an answer that was not buffered stays unbuffered');
  t.equal(w.bufferedCount, 1);
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
