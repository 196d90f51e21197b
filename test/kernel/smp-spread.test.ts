// Smp.spreadOut: a worker CPU's thread that keeps starting its rounds on
// the host CPU of a lower-numbered worker CPU's thread moves off it
// (kernel/smp.ts). Each worker thread has its own Smp on the shared words
// (Smp.attach), as in the simulator; the host's placement is a mock here
// (the addon's own: test/hardware/native-placement.test.ts; in a real cell:
// test/workloads/spread.test.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { STACKED_ROUNDS, Smp, W_HOST } from '../../kernel/smp.js';

/** A worker thread's Smp whose host CPU the test sets; moveOff answers `landed` and counts its calls. */
function thread(boot: Smp, landed = 1): { smp: Smp; at: (cpu: number) => void; moveOffs: () => number } {
  const smp = Smp.attach(boot.descriptor());
  let here = 0;
  let calls = 0;
  smp.placement = {
    cpu: () => here,
    moveOff: () => {
      calls++;
      return landed;
    },
  };
  return { smp, at: (cpu) => (here = cpu), moveOffs: () => calls };
}

const host = (s: Smp, cpu: number): number => Atomics.load(s.words, s.w(cpu, W_HOST));

describe('Smp.spreadOut: worker threads stacked on one host CPU', () => {
  it('HOST starts at -1 for every CPU; a round start notes the host CPU it runs on', () => {
    const boot = Smp.create(3, 2, false);
    assert.deepEqual([0, 1, 2].map((c) => host(boot, c)), [-1, -1, -1]);
    const a = thread(boot);
    a.at(1);
    assert.equal(a.smp.spreadOut(1, false), false);
    assert.deepEqual([0, 1, 2].map((c) => host(boot, c)), [-1, 1, -1]);
  });

  it(`the higher-numbered of two worker CPUs on one host CPU moves at its ${STACKED_ROUNDS}th quiet round start in a row, and starts counting again`, () => {
    const boot = Smp.create(3, 2, false);
    const a = thread(boot), b = thread(boot);
    a.at(0);
    b.at(0);
    assert.equal(a.smp.spreadOut(1, true), false);
    for (let i = 1; i < STACKED_ROUNDS; i++) assert.equal(b.smp.spreadOut(2, true), false, `round ${i}`);
    assert.equal(b.moveOffs(), 0);
    assert.equal(b.smp.spreadOut(2, true), true);
    assert.deepEqual([b.moveOffs(), b.smp.moves], [1, 1]);
    for (let i = 1; i < STACKED_ROUNDS; i++) assert.equal(b.smp.spreadOut(2, true), false, `again, round ${i}`);
    assert.equal(b.smp.spreadOut(2, true), true);
    assert.deepEqual([b.moveOffs(), b.smp.moves], [2, 2]);
    // the lower-numbered one never moves, however long they share
    for (let i = 0; i < 3 * STACKED_ROUNDS; i++) assert.equal(a.smp.spreadOut(1, true), false);
    assert.equal(a.moveOffs(), 0);
  });

  it('a round that trapped, or one on another host CPU, starts the count again', () => {
    const boot = Smp.create(3, 2, false);
    const a = thread(boot), b = thread(boot);
    a.at(1);
    a.smp.spreadOut(1, true);
    b.at(1);
    for (let i = 1; i < STACKED_ROUNDS; i++) b.smp.spreadOut(2, true);
    assert.equal(b.smp.spreadOut(2, false), false, 'the last round trapped');
    assert.equal(host(boot, 2), 1, 'noted all the same');
    for (let i = 1; i < STACKED_ROUNDS; i++) assert.equal(b.smp.spreadOut(2, true), false);
    b.at(0);
    assert.equal(b.smp.spreadOut(2, true), false, 'apart');
    b.at(1);
    for (let i = 1; i < STACKED_ROUNDS; i++) assert.equal(b.smp.spreadOut(2, true), false);
    assert.equal(b.moveOffs(), 0);
    assert.equal(b.smp.spreadOut(2, true), true);
  });

  it('no move where the worker CPUs outnumber the host CPUs, where the host does not say, or without a placement; a refused move is not counted', () => {
    const crowded = Smp.create(4, 2, false); // 3 worker CPUs on 2 host CPUs: some must share
    const c1 = thread(crowded), c3 = thread(crowded);
    c1.at(0);
    c1.smp.spreadOut(1, true);
    c3.at(0);
    for (let i = 0; i < 2 * STACKED_ROUNDS; i++) assert.equal(c3.smp.spreadOut(3, true), false);
    assert.equal(c3.moveOffs(), 0);
    // 2 worker CPUs on 2 host CPUs, the third worker CPU's (none) aside: it is the lower ones that count
    const fits = Smp.create(3, 2, false);
    const f1 = thread(fits), f2 = thread(fits);
    f1.at(-1);
    f1.smp.spreadOut(1, true);
    f2.at(-1);
    for (let i = 0; i < 2 * STACKED_ROUNDS; i++) assert.equal(f2.smp.spreadOut(2, true), false, 'sched_getcpu said nothing');
    assert.equal(f2.moveOffs(), 0);
    const none = Smp.attach(fits.descriptor());
    none.placement = null;
    assert.equal(none.spreadOut(2, true), false);
    assert.equal(host(fits, 2), -1, 'nothing noted');
    const refused = thread(fits, -1);
    f1.at(0);
    f1.smp.spreadOut(1, true);
    refused.at(0);
    for (let i = 1; i < STACKED_ROUNDS; i++) refused.smp.spreadOut(2, true);
    assert.equal(refused.smp.spreadOut(2, true), false, 'moveOff could not move it');
    assert.deepEqual([refused.moveOffs(), refused.smp.moves], [1, 0]);
    // host CPU 0 is a CPU like any other to land on
    const toZero = thread(fits, 0);
    f1.at(1);
    f1.smp.spreadOut(1, true);
    toZero.at(1);
    for (let i = 1; i < STACKED_ROUNDS; i++) toZero.smp.spreadOut(2, true);
    assert.equal(toZero.smp.spreadOut(2, true), true, 'landed on host CPU 0');
    assert.equal(toZero.smp.moves, 1);
  });
});
