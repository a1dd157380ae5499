/**
 * The stream management state port contract: stale h records (XEP-0198
 * §5, MongooseIM's stale_h), run by sm-state.test.ts over every backend.
 */
import type { Test } from 'tap';
import { openFor, type MakeStorage } from './backends.js';

const HOUR = 3_600_000;

export function smStateContract(t: Test, makeStorage: MakeStorage): void {
  t.test('stale h: set, get, replace', async (t) => {
    const { smState } = await openFor(t, makeStorage);
    t.equal(await smState.getStaleH('never'), undefined, 'an unknown smid has none');
    await smState.setStaleH('a', 42, 1000);
    await smState.setStaleH('b', 0, 1000);
    t.equal(await smState.getStaleH('a'), 42);
    t.equal(await smState.getStaleH('b'), 0, 'h 0 is a value, not absence');
    await smState.setStaleH('a', 2 ** 32 - 1, 2000);
    t.equal(await smState.getStaleH('a'), 2 ** 32 - 1, 'a second record for an smid replaces the first; the whole 32-bit range is kept');
  });

  t.test('stale h: collect deletes what was stored at or before the cutoff, and only that', async (t) => {
    const { smState } = await openFor(t, makeStorage);
    await smState.setStaleH('old', 1, 1000);
    await smState.setStaleH('young', 2, 1000 + HOUR);
    // A geriatric period of one hour, asked a millisecond too early: nothing goes yet.
    t.equal(await smState.collectStaleH(1000 + HOUR - 1 - HOUR), 0);
    t.equal(await smState.getStaleH('old'), 1);
    t.equal(await smState.collectStaleH(1000), 1, 'exactly at the cutoff counts as old');
    t.equal(await smState.getStaleH('old'), undefined);
    t.equal(await smState.getStaleH('young'), 2, 'a younger record stays');
    t.equal(await smState.collectStaleH(1000), 0, 'nothing twice');
  });

  t.test('stale h: replacing a record moves its age', async (t) => {
    const { smState } = await openFor(t, makeStorage);
    await smState.setStaleH('s', 1, 1000);
    await smState.setStaleH('s', 5, 5000);
    t.equal(await smState.collectStaleH(4999), 0, 'the replaced record is as old as its last set');
    t.equal(await smState.getStaleH('s'), 5);
    t.equal(await smState.collectStaleH(5000), 1);
  });
}
