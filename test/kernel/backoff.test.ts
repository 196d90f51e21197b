import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { SPIN_CAP_MS, Spinner } from '../../kernel/backoff.js';
import { Smp } from '../../kernel/smp.js';

describe('spinning before a futex sleep', () => {
  it('spins while the threads on a CPU are no more than the host CPUs, and not when they are more', () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const sp = new Spinner(words, 0, 2, true, 1e9);
    words[0] = 2;
    sp.start();
    for (let i = 0; i < 1000; i++) assert.equal(sp.spin(), true);
    words[0] = 3; // a third thread woke up: this one gives its CPU back at once
    assert.equal(sp.spin(), false);
    words[0] = 2;
    assert.equal(sp.spin(), true);
  });

  it('gives up a spin after its time cap, and a new wait spins again', () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const sp = new Spinner(words, 0, 4, true, 5);
    words[0] = 1;
    sp.start();
    const t0 = performance.now();
    let polls = 0;
    while (sp.spin()) polls++;
    const ms = performance.now() - t0;
    assert.ok(ms >= 5, `stopped after ${ms} ms`);
    assert.ok(polls > 0);
    assert.equal(sp.spin(), false, 'still over the cap');
    sp.start();
    assert.equal(sp.spin(), true);
  });

  it('a sleeping thread is off the count while it sleeps, and back on it after', async () => {
    const smp = Smp.create(2, 2);
    assert.equal(smp.onCpu, 1, 'the kernel thread, from boot');
    const w = smp.words;
    const flag = smp.doorbell; // any word to sleep on
    // the same protocol through the real class, on this thread
    const sp = smp.spinner();
    sp.enter();
    assert.equal(smp.onCpu, 2);
    assert.equal(sp.sleep(w, flag, 1, 1), 'not-equal');
    assert.equal(smp.onCpu, 2, 'back on the count after a sleep that did not happen');
    assert.equal(sp.sleep(w, flag, 0, 1), 'timed-out');
    assert.equal(smp.onCpu, 2, 'back on the count after a sleep that timed out');
    sp.leave();
    assert.equal(smp.onCpu, 1);
    // another thread, through the real class: on the count while it spins
    // and works, off it while it sleeps
    const started = smp.w(1, 15); // a spare word of cpu 1's block
    Atomics.store(w, flag, 0);
    const src = `
      const { workerData } = require('node:worker_threads');
      import(workerData.smpUrl).then(({ Smp }) => {
        const smp = Smp.attach(workerData.desc);
        const w = smp.words, flag = workerData.flag;
        const sp = smp.spinner();
        sp.enter();
        Atomics.store(w, workerData.started, 1);
        while (Atomics.load(w, workerData.started) === 1) {} // the test reads the count now
        sp.sleep(w, flag, 0, 10000);
        sp.leave();
      });
    `;
    const t = new Worker(src, { eval: true, workerData: { smpUrl: new URL('../../kernel/smp.js', import.meta.url).href, desc: smp.descriptor(), flag, started } });
    const until = async (what: () => boolean) => {
      const deadline = performance.now() + 5000;
      while (performance.now() < deadline && !what()) await new Promise((r) => setTimeout(r, 2));
    };
    await until(() => Atomics.load(w, started) === 1);
    assert.equal(smp.onCpu, 2, 'awake: on the count');
    Atomics.store(w, started, 2);
    await until(() => smp.onCpu === 1);
    assert.equal(smp.onCpu, 1, 'asleep: off the count');
    // woken through smp.wake, which puts it back on the count at once
    Atomics.store(w, flag, 1);
    smp.wake(flag);
    await new Promise((r) => t.on('exit', r));
    assert.equal(smp.onCpu, 1, 'left: the wake credited it and it did not count itself again');
  });

  it('with more simulated CPUs than host CPUs: an adaptive budget, doubled after a caught wait, halved after a long sleep', () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    words[0] = 1;
    const sp = new Spinner(words, 0, 2, false, 1e9);
    const polls = () => {
      sp.start();
      let n = 0;
      while (sp.spin()) n++;
      return n;
    };
    assert.equal(polls(), 499, 'the first budget: 500 polls, the last of which gives up');
    // that wait gave up without sleeping: it counts as caught (the caller would sleep; here it did not)
    assert.equal(polls(), 999);
    sp.sleep(words, 1, 7, 1); // not-equal: returns at once, a near miss
    assert.equal(polls(), 1999);
    sp.sleep(words, 1, 7, 5); // again at once
    sp.start();
    assert.equal(sp.budget, 4000);
    sp.sleep(words, 1, 0, 3); // a real sleep of 3 ms: the other side was not running
    sp.start();
    assert.equal(sp.budget, 2000);
    for (let i = 0; i < 20; i++) {
      sp.sleep(words, 1, 0, 0.5);
      sp.start();
    }
    assert.equal(sp.budget, 8, 'never below 8');
    // Smp picks the regime from its CPUs (the kernel thread and the workers) and the host's
    const three = Smp.create(3, 2).spinner();
    three.start();
    assert.equal(three.budget, 500);
    const two = Smp.create(2, 2).spinner();
    two.start();
    for (let i = 0; i < 5000; i++) assert.equal(two.spin(), true, '2 threads, 2 host CPUs: spins until the cap');
  });

  it('the kernel gets the host CPU count it is told, and refuses a bad one', () => {
    const smp = Smp.create(3, 2);
    assert.equal(Atomics.load(smp.words, smp.doorbell + 2), 2);
    assert.equal(Smp.create(3).spinner() instanceof Spinner, true);
    assert.equal(Atomics.load(Smp.create(3).words, Smp.create(3).doorbell + 2), 3, 'one per simulated CPU by default');
    assert.throws(() => Smp.create(2, 0), /hostCpus: expected >= 1, got 0/);
    assert.throws(() => Smp.create(2, 1.5), /hostCpus: expected >= 1, got 1.5/);
    assert.ok(SPIN_CAP_MS > 0);
  });
});
