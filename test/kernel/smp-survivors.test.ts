// Survivors of the quick mutation run in kernel/smp.ts, on an Smp of its own
// (no kernel, no worker thread): Smp.create's check of the CPU count and its
// message, the layout of the shared words (per-CPU blocks, then the doorbell,
// then the host CPU count, then the kernel-waits word), ring() and its
// wake-up, the spinning regime a spinner() gets, targets() (the
// mm_cpumask), and shootdown: which CPUs get an IPI, which acks it waits
// for, its spin-then-sleep on an ack, and when it asks CPUs in traps to
// sleep (the kernel-waits word). The CPUs are
// played by the test: it writes their words, and node:test mocks of
// Atomics.load and Atomics.wait make a CPU ack at a chosen poll or when the
// kernel sleeps on its ACK word (a spy on Atomics.notify sees ring's wake-up).
// One test, marked todo, shows a known bug: the ack of the IPI whose
// generation wraps past 2^31 - 1 is not waited for. No test measures time.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { CPU_WORDS, NEVER_BUSY, Smp, W_ACK, W_HOST, W_IPI, W_ONLINE, W_REQ, W_WAIT } from '../../kernel/smp.js';

const realLoad = Atomics.load;
const realStore = Atomics.store;

/** CPU cpu runs mm and is offline (the kernel waits for no ack from it). */
function runsOffline(smp: Smp, cpu: number, mm: number): void {
  smp.setOnline(cpu, mm);
  smp.setOffline(cpu);
}

const ipis = (smp: Smp) => Array.from({ length: smp.nrCpus }, (_, c) => realLoad(smp.words, smp.w(c, W_IPI)));

/**
 * The other CPUs, played through mocks of Atomics.load and Atomics.wait. A
 * sleep on a CPU's ACK word is answered by that CPU acking its pending IPI
 * (or, if it has none, going offline, so that a kernel waiting for the wrong
 * CPU does not wait forever); with ackAtPoll a CPU acks at that read of its
 * ACK word. A kernel that reads one ACK word 10000 times without sleeping is
 * marked spunOn and the CPU acks, so a kernel that never sleeps fails the test
 * instead of hanging it. sleeps: [cpu, value slept on, reads of that ACK word
 * up to then] per sleep.
 */
function playCpus(smp: Smp, ackAtPoll = 0) {
  const polls = new Array<number>(smp.nrCpus).fill(0);
  const sleeps: [number, number, number][] = [];
  const played = { polls, sleeps, spunOn: false };
  const cpuOf = (a: Int32Array, i: number) => (a === smp.words && i < smp.nrCpus * CPU_WORDS && i % CPU_WORDS === W_ACK ? (i - W_ACK) / CPU_WORDS : -1);
  const ackOrLeave = (c: number) => {
    const ipi = realLoad(smp.words, smp.w(c, W_IPI));
    if (ipi !== realLoad(smp.words, smp.w(c, W_ACK))) realStore(smp.words, smp.w(c, W_ACK), ipi);
    else realStore(smp.words, smp.w(c, W_ONLINE), 0);
  };
  mock.method(Atomics, 'load', (a: Int32Array, i: number) => {
    const c = cpuOf(a, i);
    if (c >= 0) {
      const n = ++polls[c];
      if (n === ackAtPoll) ackOrLeave(c);
      if (n === 10000) {
        played.spunOn = true;
        ackOrLeave(c);
      }
    }
    return realLoad(a, i);
  });
  mock.method(Atomics, 'wait', (a: Int32Array, i: number, v: number) => {
    const c = cpuOf(a, i);
    assert.ok(c >= 0, `a sleep on word ${i}`);
    sleeps.push([c, v, polls[c]]);
    ackOrLeave(c);
    return 'ok';
  });
  return played;
}

describe('smp.ts: Smp.create and the shared words', () => {
  afterEach(() => mock.restoreAll());

  it('Smp.create wants an integer of at least one CPU and says so', () => {
    assert.throws(() => Smp.create(0), { name: 'RangeError', message: 'nrCpus: expected >= 1, got 0' });
    assert.throws(() => Smp.create(1.5), { name: 'RangeError', message: 'nrCpus: expected >= 1, got 1.5' });
    assert.throws(() => Smp.create(-2), { name: 'RangeError', message: 'nrCpus: expected >= 1, got -2' });
    const one = Smp.create(1);
    assert.equal(one.nrCpus, 1);
    assert.equal(one.words.length, CPU_WORDS + 6);
  });

  it('the doorbell is the word after the per-CPU blocks, then the host CPU count, the kernel-waits word, the busy word, the online bell and the rounds-left word; ring() bumps the doorbell and wakes its sleeper', async () => {
    const smp = Smp.create(3, 2);
    assert.equal(smp.words.length, 3 * CPU_WORDS + 6);
    assert.equal(smp.doorbell, 3 * CPU_WORDS);
    assert.equal(smp.words[3 * CPU_WORDS + 1], 2);
    assert.equal(smp.hostCpus, 2);
    assert.equal(smp.kernelWaits, 3 * CPU_WORDS + 2);
    assert.equal(smp.busyWord, 3 * CPU_WORDS + 3);
    assert.equal(smp.onlineBell, 3 * CPU_WORDS + 4);
    assert.equal(smp.roundsLeft, 3 * CPU_WORDS + 5);
    const others = () => [...smp.words].filter((_, i) => i !== smp.doorbell);
    const before = others();
    const block = (cpu: number) => Array.from({ length: CPU_WORDS }, (_, i) => (i === W_HOST ? -1 : cpu === 0 && i === W_ONLINE ? 1 : 0));
    assert.deepEqual(before, [...block(0), ...block(1), ...block(2), 2, 0, NEVER_BUSY, 0, 0], 'only the boot CPU is online; no CPU has a host CPU noted yet; the kernel waits for nobody; never busy; no online bell; no round under way');
    const sleeper = Atomics.waitAsync(smp.words, 3 * CPU_WORDS, 0);
    assert.equal(sleeper.async, true);
    const realNotify = Atomics.notify;
    const wakes: [number, number][] = [];
    mock.method(Atomics, 'notify', (a: Int32Array, i: number, n?: number) => {
      const woken = realNotify(a, i, n);
      if (a === smp.words) wakes.push([i, woken]);
      return woken;
    });
    smp.ring();
    assert.deepEqual(wakes, [[3 * CPU_WORDS, 1]], 'the ring woke the one sleeper on the doorbell');
    assert.equal(await sleeper.value, 'ok');
    smp.ring();
    assert.equal(smp.words[3 * CPU_WORDS], 2);
    assert.deepEqual(others(), before, 'no other word changed');
  });

  it('a spinner spins until the time cap only when the simulated CPUs fit the host CPUs (as many included)', () => {
    mock.method(performance, 'now', () => 0); // the clock stands still: the cap is never reached
    const spins = (smp: Smp): number => {
      const sp = smp.spinner();
      sp.start();
      let n = 0;
      while (n < 5000 && sp.spin()) n++;
      return n;
    };
    assert.equal(spins(Smp.create(2, 2)), 5000, '2 CPUs on 2 host CPUs: no poll budget');
    assert.equal(spins(Smp.create(1, 4)), 5000);
    assert.equal(spins(Smp.create(3, 2)), 499, '3 CPUs on 2 host CPUs: the adaptive budget');
  });
});

describe('smp.ts: targets (the mm_cpumask)', () => {
  it('targets counts the CPUs other than the caller whose mm word is the mm, online or not', () => {
    const smp = Smp.create(4);
    smp.setOnline(0, 7);
    smp.setOnline(1, 7);
    runsOffline(smp, 2, 7);
    smp.setOnline(3, 8);
    assert.equal(smp.targets(0, 7), 2, 'cpus 1 and 2');
    assert.equal(smp.targets(1, 7), 2, 'cpus 0 and 2');
    assert.equal(smp.targets(3, 7), 3);
    assert.equal(smp.targets(0, 8), 1, 'cpu 3');
    assert.equal(smp.targets(3, 8), 0, 'only the caller runs mm 8');
    assert.equal(smp.targets(0, 9), 0, 'nobody runs mm 9');
  });
});

describe('smp.ts: shootdown', () => {
  afterEach(() => mock.restoreAll());

  it('shootdown IPIs every other CPU running the mm once, counts the offline and trapped ones, and waits only for the others', () => {
    const smp = Smp.create(5);
    smp.setOnline(0, 7); // the caller runs the mm too
    runsOffline(smp, 1, 7);
    smp.setOnline(2, 7);
    realStore(smp.words, smp.w(2, W_REQ), 1); // cpu 2 is inside a trap (REQ != RESP)
    smp.setOnline(3, 8); // another mm
    smp.setOnline(4, 7);
    const { sleeps } = playCpus(smp);
    assert.equal(smp.shootdown(0, 7), 3, 'cpus 1, 2 and 4');
    assert.deepEqual(ipis(smp), [0, 1, 1, 0, 1]);
    assert.deepEqual(sleeps.map(([c]) => c), [4], 'only cpu 4 is waited for');
    assert.equal(realLoad(smp.words, smp.w(4, W_ACK)), 1);
    assert.equal(smp.shootdown(0, 7), 3);
    assert.deepEqual(ipis(smp), [0, 2, 2, 0, 2], 'a new generation per shootdown');
  });

  it('a CPU asleep on a migration entry (WAIT) gets its IPI but is not waited for; once awake it is again', () => {
    const smp = Smp.create(3);
    smp.setOnline(1, 7);
    smp.setOnline(2, 7);
    realStore(smp.words, smp.w(1, W_WAIT), 1);
    const { sleeps } = playCpus(smp);
    assert.equal(smp.shootdown(0, 7), 2);
    assert.deepEqual(ipis(smp), [0, 1, 1]);
    assert.deepEqual(sleeps.map(([c]) => c), [2], 'only cpu 2 is waited for');
    assert.equal(realLoad(smp.words, smp.w(1, W_ACK)), 0, 'cpu 1 acks when it polls, before its next access');
    realStore(smp.words, smp.w(1, W_WAIT), 0);
    realStore(smp.words, smp.w(1, W_ACK), 1);
    assert.equal(smp.shootdown(0, 7), 2);
    assert.deepEqual(sleeps.map(([c]) => c), [2, 1, 2], 'awake, cpu 1 is waited for');
  });

  it('a CPU that acks within a few polls is never slept on', () => {
    const smp = Smp.create(2);
    smp.setOnline(1, 7);
    const { polls, sleeps } = playCpus(smp, 5); // cpu 1 acks at the kernel's 5th read of its ACK word
    assert.equal(smp.shootdown(0, 7), 1);
    assert.equal(polls[1], 5);
    assert.deepEqual(sleeps, []);
  });

  it('the kernel reads a pending ack 2000 times (ACK_SPIN) before it sleeps on the ACK word, with the value it read last', () => {
    const smp = Smp.create(2);
    smp.setOnline(1, 7);
    const played = playCpus(smp);
    assert.equal(smp.shootdown(0, 7), 1);
    assert.equal(played.spunOn, false, 'the kernel went to sleep');
    assert.deepEqual(played.sleeps, [[1, 0, 2001]], '2000 polls, then the read whose value it sleeps on');
    assert.equal(realLoad(smp.words, smp.w(1, W_ACK)), 1);
  });

  it('with more CPUs than host CPUs, an ack still missing at the 65th read (ACK_YIELD) raises the kernel-waits word once, lowered when the shootdown is done', () => {
    const raised = (smp: Smp, ackAtPoll: number): number[] => {
      const stores: number[] = [];
      playCpus(smp, ackAtPoll);
      mock.method(Atomics, 'store', (a: Int32Array, i: number, v: number) => {
        if (a === smp.words && i === smp.kernelWaits) stores.push(v);
        return realStore(a, i, v);
      });
      smp.setOnline(1, 7);
      smp.setOnline(2, 7);
      assert.equal(smp.shootdown(0, 7), 2);
      assert.equal(realLoad(smp.words, smp.kernelWaits), 0, 'lowered at the end');
      mock.restoreAll();
      return stores;
    };
    assert.deepEqual(raised(Smp.create(3, 2), 65), [], 'acks at the 65th read: nobody is asked to sleep');
    assert.deepEqual(raised(Smp.create(3, 2), 66), [1, 0], 'raised at the 65th read, once for both CPUs waited on');
    assert.deepEqual(raised(Smp.create(3, 2), 0), [1, 0], 'the kernel went to sleep on the acks: raised once');
    assert.deepEqual(raised(Smp.create(3, 3), 0), [], 'the CPUs fit the host: CPUs in traps may spin');
  });

  it('a CPU of another mm is not waited for, even when its generation counter has wrapped negative', () => {
    const smp = Smp.create(3);
    runsOffline(smp, 1, 7);
    smp.setOnline(2, 8);
    // cpu 2 has taken and acked 2^32 - 5 IPIs: its words wrapped to -5
    realStore(smp.words, smp.w(2, W_IPI), -5);
    realStore(smp.words, smp.w(2, W_ACK), -5);
    const { polls, sleeps } = playCpus(smp);
    assert.equal(smp.shootdown(0, 7), 1);
    assert.deepEqual(sleeps, []);
    assert.equal(polls[2], 0, 'its ACK word is not even read');
    assert.deepEqual(ipis(smp), [0, 1, -5]);
    assert.equal(realLoad(smp.words, smp.w(2, W_ONLINE)), 1);
  });

  // Known bug (reported, not fixed): shootdown compares ack - gen as doubles.
  // The IPI word wraps from 2^31 - 1 to -2^31 (Int32), so for that one
  // shootdown ack - gen = (2^31 - 1) - (-2^31) = 2^32 - 1 >= 0 and the kernel
  // returns before the CPU has flushed its TLB. ((ack - gen) | 0 >= 0 would
  // not.) It takes 2^31 IPIs to one CPU.
  it('the kernel waits for the ack of the IPI whose generation wraps from 2^31 - 1 to -2^31', () => {
    const smp = Smp.create(2);
    smp.setOnline(1, 7);
    realStore(smp.words, smp.w(1, W_IPI), 0x7fffffff);
    realStore(smp.words, smp.w(1, W_ACK), 0x7fffffff);
    const { sleeps } = playCpus(smp);
    assert.equal(smp.shootdown(0, 7), 1);
    assert.equal(realLoad(smp.words, smp.w(1, W_IPI)), -0x80000000);
    assert.equal(realLoad(smp.words, smp.w(1, W_ACK)), -0x80000000, 'cpu 1 acked (flushed its TLB) before shootdown returned');
    assert.deepEqual(sleeps, [[1, 0x7fffffff, 2001]]);
  });
});
