import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { SPIN_CAP_MS, Spinner } from '../../kernel/backoff.js';
import { Smp } from '../../kernel/smp.js';

describe('spinning before a futex sleep', () => {
  it('where the simulated CPUs fit the host: spins until the time cap, and a new wait spins again', () => {
    let now = 100;
    mock.method(performance, 'now', () => now);
    try {
      const sp = new Spinner(true, 5);
      sp.start();
      // the clock is read every 128 polls: up to then the spin goes on whatever the time
      now = 200;
      for (let i = 1; i < 128; i++) assert.equal(sp.spin(), true, `poll ${i}`);
      now = 104.9; // at the 128th poll, 4.9 ms after the start: still under the cap
      assert.equal(sp.spin(), true);
      for (let i = 129; i < 256; i++) assert.equal(sp.spin(), true, `poll ${i}`);
      now = 105; // at the 256th, 5 ms: the cap
      assert.equal(sp.spin(), false);
      assert.equal(sp.spin(), false, 'still over the cap');
      sp.start();
      assert.equal(sp.spin(), true, 'a new wait spins again');
    } finally {
      mock.restoreAll();
    }
  });

  it('where they do not fit: an adaptive budget, doubled after a caught wait or a near miss, halved after a long sleep', () => {
    // the sleeps' lengths come from a clock the test sets: no real timing
    let now = 0;
    mock.method(performance, 'now', () => now);
    try {
      const words = new Int32Array(new SharedArrayBuffer(8));
      const sp = new Spinner(false);
      const polls = () => {
        sp.start();
        let n = 0;
        while (sp.spin()) n++;
        return n;
      };
      const sleepFor = (ms: number) => {
        const t = now;
        mock.method(Atomics, 'wait', () => {
          now = t + ms;
          return 'timed-out';
        });
        sp.sleep(words, 0, 0, 1);
        mock.restoreAll();
        mock.method(performance, 'now', () => now);
      };
      assert.equal(polls(), 499, 'the first budget: 500 polls, the last of which gives up');
      // that wait ended without sleeping: the spin caught it
      assert.equal(polls(), 999);
      sleepFor(0.05); // a near miss: woken within NEAR_MS
      assert.equal(polls(), 1999);
      sleepFor(0.05);
      sp.start();
      assert.equal(sp.budget, 4000, 'never above 4000');
      sleepFor(3); // a long sleep: the other side was not running
      sp.start();
      assert.equal(sp.budget, 2000);
      for (let i = 0; i < 20; i++) {
        sleepFor(0.5);
        sp.start();
      }
      assert.equal(sp.budget, 8, 'never below 8');
    } finally {
      mock.restoreAll();
    }
  });

  it('where they do not fit and the wait asks for it: polls with sched_yield up to the cap, then gives up; the budget still adapts', () => {
    let now = 0;
    mock.method(performance, 'now', () => now);
    try {
      let yields = 0;
      let step = 0.125;
      const sp = new Spinner(false, 2, () => {
        yields++;
        now += step;
      });
      sp.start(true);
      let n = 0;
      while (sp.spin()) n++;
      assert.deepEqual([n, yields], [15, 16], 'the clock read every 16 yields: 16 x 0.125 ms is the 2 ms cap');
      assert.equal(sp.spin(), false);
      assert.equal(yields, 16, 'over the cap: no more yields');
      step = 0.0625; // 1 ms per look at the clock
      sp.start(true);
      n = 0;
      while (sp.spin()) n++;
      assert.deepEqual([n, yields], [31, 48], 'a new wait yields again, timed from its own start: the cap at the second look');
      sp.start(false);
      n = 0;
      while (sp.spin()) n++;
      assert.equal(n, 1999, 'not asked: the budget, doubled twice by the two waits that did not sleep');
      assert.equal(yields, 48);
    } finally {
      mock.restoreAll();
    }
  });

  it('a wait that asks for yielding polls spins on the budget without a yield to call, and to the cap without yields where the threads fit', () => {
    let now = 0;
    mock.method(performance, 'now', () => now);
    try {
      const none = new Spinner(false, 2, null);
      none.start(true);
      let n = 0;
      while (none.spin()) n++;
      assert.equal(n, 499, 'the first budget');
      let yields = 0;
      const fit = new Spinner(true, 2, () => yields++);
      fit.start(true);
      for (let i = 1; i < 128; i++) assert.equal(fit.spin(), true);
      now = 2;
      assert.equal(fit.spin(), false, 'the cap, read at the 128th poll');
      assert.equal(yields, 0);
    } finally {
      mock.restoreAll();
    }
  });

  it('Smp picks the regime from its CPUs (the kernel thread and the workers) and the host CPUs', () => {
    const three = Smp.create(3, 2).spinner();
    three.start();
    assert.equal(three.budget, 500);
    let n = 0;
    while (three.spin()) n++;
    assert.equal(n, 499, '3 threads on 2 host CPUs: the adaptive budget');
    const two = Smp.create(2, 2).spinner();
    two.start();
    // (the clock is first read at the 128th poll: up to there the spin goes on whatever the time)
    for (let i = 0; i < 127; i++) assert.equal(two.spin(), true, '2 threads on 2 host CPUs: spins until the cap');
    assert.equal(Smp.create(3, 2).hostCpus, 2);
    assert.equal(Smp.create(3).hostCpus, 3, 'one per simulated CPU by default');
    assert.throws(() => Smp.create(2, 0), /hostCpus: expected >= 1, got 0/);
    assert.throws(() => Smp.create(2, 1.5), /hostCpus: expected >= 1, got 1.5/);
    assert.ok(SPIN_CAP_MS >= 1, 'longer than a round of the default workloads');
  });
});
