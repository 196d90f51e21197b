import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { BUSY_HOLD_MS, BUSY_MIN_WAIT_MS, BUSY_WAIT_SHARE, HostLoad, LOAD_MIN_RUNNABLE_MS, LOAD_WINDOW_MS, Spinner } from '../../kernel/backoff.js';
import { NEVER_BUSY, Smp } from '../../kernel/smp.js';
import { hostSchedstat } from '../../hardware/xts-native.js';

const MS = 1e6; // ns

/**
 * A thread's schedstat the test moves on: [ns on a CPU, ns waiting for one,
 * times put on a CPU]. `ok` false: the host does not say; `counts` false:
 * the probe leaves out[2] alone (an addon built before it gave the count).
 */
function fakeThread(): {
  probe: (out: Float64Array) => boolean;
  run(onCpuMs: number, waitedMs: number, waits?: number): void;
  calls: () => number;
  ok: boolean;
  counts: boolean;
} {
  let onCpu = 5 * MS, waited = 50 * MS, slices = 3, calls = 0; // a thread that waited most of its life: only windows count
  const t = {
    ok: true,
    counts: true,
    probe: (out: Float64Array) => {
      calls++;
      if (!t.ok) return false;
      out[0] = onCpu;
      out[1] = waited;
      if (t.counts) out[2] = slices;
      return true;
    },
    /** a window's time on a CPU and waiting, in `waits` waits (by default one: waits as long as a time slice) */
    run(onCpuMs: number, waitedMs: number, waits = 1) {
      onCpu += onCpuMs * MS;
      waited += waitedMs * MS;
      slices += waits;
    },
    calls: () => calls,
  };
  return t;
}

/** A busy word, and a HostLoad whose clock is this thread's performance.now() (epoch: this thread's time origin). */
function load(probe: ((out: Float64Array) => boolean) | null, words = new Int32Array(new SharedArrayBuffer(8))): { h: HostLoad; words: Int32Array } {
  return { h: new HostLoad(words, 1, performance.timeOrigin, probe), words };
}

/** Is the host busy after a fresh thread's first window of onCpuMs on a CPU and waitedMs waiting, in `waits` waits? */
function firstWindow(onCpuMs: number, waitedMs: number, waits: number): boolean {
  const t = fakeThread();
  const { h } = load(t.probe);
  h.busy(0);
  t.run(onCpuMs, waitedMs, waits);
  return h.busy(LOAD_WINDOW_MS);
}

describe('backoff.ts: HostLoad, the host as the threads see it', () => {
  it('a window in which the thread waited for a CPU more than BUSY_WAIT_SHARE of its runnable time makes the host busy for BUSY_HOLD_MS', () => {
    const t = fakeThread();
    const { h, words } = load(t.probe);
    assert.equal(h.busy(1000), false, 'the first look only takes the baseline');
    assert.equal(t.calls(), 1);
    t.run(10, 10); // waited half its runnable time
    assert.equal(h.busy(1000 + LOAD_WINDOW_MS - 1), false, 'before the window is over nothing is read');
    assert.equal(t.calls(), 1);
    assert.equal(h.busy(1000 + LOAD_WINDOW_MS), true);
    assert.equal(t.calls(), 2);
    assert.equal(words[1], 1000 + LOAD_WINDOW_MS + BUSY_HOLD_MS, 'busy until (ms after the epoch)');
    assert.equal(h.busy(1000 + LOAD_WINDOW_MS + BUSY_HOLD_MS - 1), true, 'the hold: no new window needed');
    assert.equal(h.busy(1000 + LOAD_WINDOW_MS + BUSY_HOLD_MS), false, 'over at the hold, this window being quiet (nothing ran)');
  });

  it('a window at the share, or with under LOAD_MIN_RUNNABLE_MS runnable, or with no probe, is not busy', () => {
    const t = fakeThread();
    const { h, words } = load(t.probe);
    h.busy(0);
    t.run(6, 4); // exactly BUSY_WAIT_SHARE of 10 ms
    assert.equal(BUSY_WAIT_SHARE, 0.4);
    assert.equal(h.busy(LOAD_WINDOW_MS), false, 'at the share, not above it');
    t.run(0.5, LOAD_MIN_RUNNABLE_MS - 0.5 - 1e-6); // nearly all waiting, but under the minimum runnable
    assert.equal(h.busy(2 * LOAD_WINDOW_MS), false, 'too little runnable time to judge');
    t.run(0.5, LOAD_MIN_RUNNABLE_MS - 0.5);
    assert.equal(h.busy(3 * LOAD_WINDOW_MS), true, 'at the minimum runnable time it counts');
    assert.equal(words[1], 3 * LOAD_WINDOW_MS + BUSY_HOLD_MS);
    const none = load(null);
    assert.equal(none.h.busy(0), false);
    assert.equal(none.h.busy(10 * LOAD_WINDOW_MS), false);
    assert.equal(none.words[1], 0);
  });

  it('waits as short as wake-ups are not a busy host, however much of the window they fill: each must average BUSY_MIN_WAIT_MS', () => {
    assert.equal(BUSY_MIN_WAIT_MS, 0.25);
    const t = fakeThread();
    const { h, words } = load(t.probe);
    h.busy(0);
    // a thread of the adaptive regime on a quiet VM: it sleeps and is woken 600 times a window, 40 us on the runqueue each
    t.run(40, 24, 600);
    assert.equal(h.busy(LOAD_WINDOW_MS), false, 'sleeps and wake-ups');
    t.run(40, 60, 60 / BUSY_MIN_WAIT_MS + 1); // just under the average wait
    assert.equal(h.busy(2 * LOAD_WINDOW_MS), false);
    t.run(40, 60, 60 / BUSY_MIN_WAIT_MS); // at it
    assert.equal(h.busy(3 * LOAD_WINDOW_MS), true);
    assert.equal(words[1], 3 * LOAD_WINDOW_MS + BUSY_HOLD_MS);
    assert.equal(firstWindow(40, 60, 30), true, "another process's time slices: 30 waits of 2 ms");
    assert.equal(firstWindow(60, 40, 4), false, 'long waits that are no more than the share of the window');
  });

  it('a probe that gives no count of waits (an addon built before it did): the share alone decides', () => {
    const t = fakeThread();
    t.counts = false;
    const { h } = load(t.probe);
    h.busy(0);
    t.run(40, 24, 600);
    assert.equal(h.busy(LOAD_WINDOW_MS), false, 'under the share');
    t.run(40, 60, 600);
    assert.equal(h.busy(2 * LOAD_WINDOW_MS), true, 'above the share, the waits uncounted');
    assert.equal(firstWindow(0, 20, 0), true, 'a window all of it waiting for its first time slice');
  });

  it('a probe that fails takes no window: the next one that works is a baseline again', () => {
    const t = fakeThread();
    const { h } = load(t.probe);
    h.busy(0);
    t.ok = false;
    t.run(10, 90);
    assert.equal(h.busy(LOAD_WINDOW_MS), false);
    t.ok = true;
    assert.equal(h.busy(2 * LOAD_WINDOW_MS), false, 'a baseline, not a window from before the failure');
    t.run(10, 90);
    assert.equal(h.busy(3 * LOAD_WINDOW_MS), true);
  });

  it('the busy word is shared: one thread finds the host busy, and every HostLoad on the word sees it; a later, shorter hold never shortens it', () => {
    const t = fakeThread();
    const words = new Int32Array(new SharedArrayBuffer(8));
    const a = load(t.probe, words).h;
    const b = load(null, words).h; // another thread, without a probe of its own
    a.busy(0);
    t.run(10, 30);
    assert.equal(b.busy(50), false);
    assert.equal(a.busy(LOAD_WINDOW_MS), true);
    assert.equal(b.busy(LOAD_WINDOW_MS + 1), true);
    Atomics.store(words, 1, 10 * BUSY_HOLD_MS); // held further by another thread
    t.run(10, 30);
    assert.equal(a.busy(2 * LOAD_WINDOW_MS), true);
    assert.equal(words[1], 10 * BUSY_HOLD_MS, 'kept');
  });

  it('a spinner whose threads fit takes the adaptive budget while the host is busy, and spins to the cap again after', () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const h = new HostLoad(words, 1, performance.timeOrigin, null);
    let yields = 0;
    const sp = new Spinner(true, 2, () => yields++, h);
    let now = 1000;
    mock.method(performance, 'now', () => now);
    try {
      Atomics.store(words, 1, 1500); // busy until 1500 ms
      sp.start();
      assert.equal(sp.fitting, false);
      let n = 0;
      while (sp.spin()) n++;
      assert.equal(n, 499, 'the first adaptive budget');
      sp.start(true);
      for (let i = 1; i < 16; i++) sp.spin();
      assert.equal(yields, 15, 'a wait that asks for yielding polls yields on a busy host');
      now = 1500;
      sp.start(true);
      assert.equal(sp.fitting, true);
      for (let i = 1; i < 128; i++) assert.equal(sp.spin(), true);
      now = 1502;
      assert.equal(sp.spin(), false, 'the cap');
      assert.equal(yields, 15, 'no yield where the threads fit a quiet host');
    } finally {
      mock.restoreAll();
    }
  });

  it('Smp: crowded while the busy word is ahead of the clock; probeLoad false gives its threads no probe; the probe goes to attached copies', () => {
    const smp = Smp.create(2, 2, false);
    assert.equal(smp.load.probe, null);
    assert.equal(smp.crowded, false);
    assert.equal(smp.words[smp.busyWord], NEVER_BUSY);
    mock.method(performance, 'now', () => -1e9); // a clock far before the epoch (a test's mock) still finds it quiet
    try {
      assert.equal(smp.crowded, false);
    } finally {
      mock.restoreAll();
    }
    const ms = Math.floor(performance.timeOrigin + performance.now() - smp.descriptor().epoch);
    Atomics.store(smp.words, smp.busyWord, ms + 60_000);
    assert.equal(smp.crowded, true, 'busy: crowded, though 2 threads fit 2 host CPUs');
    assert.equal(Smp.attach(smp.descriptor()).crowded, true, 'a worker CPU sees the same word');
    assert.equal(Smp.attach(smp.descriptor()).load.probe, null);
    Atomics.store(smp.words, smp.busyWord, ms - 1);
    assert.equal(smp.crowded, false);
    assert.equal(Smp.create(3, 2, false).crowded, true, 'more threads than host CPUs');
    const live = Smp.create(2, 2);
    assert.equal(live.load.probe, hostSchedstat(), "by default, the addon's schedstat (null without the addon)");
    assert.equal(Smp.attach(live.descriptor()).load.probe, hostSchedstat());
  });

  it("the addon's schedstat: this thread's ns on a CPU grow while it works, and ns waiting is a whole count that never falls", { skip: hostSchedstat() === null ? 'the native addon is not built' : false }, () => {
    const probe = hostSchedstat()!;
    const a = new Float64Array(3).fill(-1), b = new Float64Array(3).fill(-1);
    if (!probe(a)) return; // a host without schedstat: nothing to check
    let x = 0;
    for (let i = 0; i < 20_000_000; i++) x += i & 1;
    // a sleep: the thread is off its CPU, and put on one again after
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    assert.equal(probe(b), true);
    assert.equal(x, 10_000_000);
    assert.ok(b[0] > a[0], `on a CPU: ${a[0]} -> ${b[0]} ns`);
    assert.ok(b[1] >= a[1] && Number.isInteger(b[1]) && Number.isInteger(b[0]));
    assert.ok(a[2] >= 1 && Number.isInteger(a[2]), `times put on a CPU: ${a[2]}`);
    assert.ok(b[2] > a[2] && Number.isInteger(b[2]), `after a sleep, put on a CPU again: ${a[2]} -> ${b[2]}`);
    const two = new Float64Array([-1, -1, 7]).subarray(0, 2);
    assert.equal(probe(two), true);
    assert.equal(two.buffer instanceof ArrayBuffer && new Float64Array(two.buffer)[2], 7, 'an array of 2 gets 2');
    assert.throws(() => probe(new Float64Array(1)), { name: 'TypeError', message: 'schedstat: expected a Float64Array of at least 2' });
    assert.throws(() => probe(new Uint8Array(16) as unknown as Float64Array), { name: 'TypeError' });
  });
});
