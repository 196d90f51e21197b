// Survivors of the quick mutation run in kernel/trap.ts: the trap mailbox
// between a worker CPU and the kernel thread, all of it driven on this thread
// so that every outcome is exact. Covers cpuDescriptor's CPU range check and
// its fast-fault switch; WorkerCpu.trap (number, arguments and return value of
// a syscall, the address and write flag of a fault, the argument limit, the
// REQ notify, polling before sleeping on RESP, sleeping at once while the
// kernel waits for another CPU's ack) and online(); TrapServer's
// serveOne (what it answers, where it writes RET, waking the CPU), its serving
// loop (a trap already outstanding, stop() ending the loops) and pump (step(),
// not sleeping while there is work, polling before sleeping, the stall error
// and what restarts its clock).
// A WorkerCpu is built here from cpuDescriptor, as a worker thread builds it;
// its trap blocks until RESP changes, so the kernel's side runs from inside
// the CPU's wait: a node:test mock of Atomics.load (the CPU's look at RESP)
// or of Atomics.wait (its sleep on RESP) calls TrapServer.serveOne there.
// Mailbox words are also written by hand (post) where a CPU that has trapped
// is all a test needs. The pump's sleeps on the doorbell are a mock of
// Atomics.wait that moves a mock clock (performance.now) 5 ms per sleep, and
// the kernels run with one host CPU, so every spin is a fixed number of polls
// (backoff.ts): no test measures time.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { E } from '../../kernel/errno.js';
import { MM_FAST } from '../../kernel/fastfault.js';
import { ALL_FEATURES, Kernel, type Task } from '../../kernel/kernel.js';
import { defaultOvercommit } from '../../kernel/limits.js';
import { PTE_PRESENT, PTE_WRITE } from '../../kernel/pgtable.js';
import { A_RET, CPU_ARGS, W_ACK, W_IPI, W_NR, W_ONLINE, W_REQ, W_RESP, W_ROUND, W_TAKEN } from '../../kernel/smp.js';
import { NR, type SysArg } from '../../kernel/syscalls.js';
import { WAKE_MS } from '../../kernel/backoff.js';
import { TAKEN_POLLS, TRAP_FAULT, TrapServer, WorkerCpu, cpuDescriptor } from '../../kernel/trap.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ } from '../../kernel/uapi.js';
import { BASE, PAGE, mapAnon } from './util.js';

const realLoad = Atomics.load;
const realWait = Atomics.wait;
const realWaitAsync = Atomics.waitAsync;

afterEach(() => mock.restoreAll());

/** A syscall number no kernel table uses: the probe the tests register. */
const NR_PROBE = 4242;

interface Setup {
  k: Kernel;
  t: Task;
  /** every call of the probe syscall: its six arguments */
  calls: SysArg[][];
  /** what the next probe calls return, in order (then 0) */
  rets: number[];
  /** work the next probe calls do, in order: run inside the call */
  work: (() => void)[];
  /** worker CPUs offline, mocks gone, kernel shut down */
  done(): void;
}

/**
 * A kernel on nrCpus CPUs that share one host CPU (so every hand-off spins a
 * fixed budget of polls before it sleeps, backoff.ts), a task, and the probe
 * syscall registered.
 */
function setup(nrCpus = 3, hostCpus = 1): Setup {
  const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 0 }, nrCpus });
  const k = new Kernel(m, {
    features: ALL_FEATURES,
    swap: null,
    pgtableSlots: 512,
    hostCpus,
    probeLoad: false, // the regime is the thread count's, however busy the machine running the tests
    overcommit: { ...defaultOvercommit(128, 0), mode: 1 },
  });
  k.smp.yieldCpu = null; // polls on the budget, whether or not the addon is built (yielding polls: their own tests)
  const t = k.spawn();
  const calls: SysArg[][] = [];
  const rets: number[] = [];
  const work: (() => void)[] = [];
  k.registerSyscall(NR_PROBE, (_k, _t, ...args) => {
    calls.push(args);
    work.shift()?.();
    return rets.shift() ?? 0;
  });
  return {
    k,
    t,
    calls,
    rets,
    work,
    done() {
      mock.restoreAll();
      for (let c = 1; c < nrCpus; c++) k.smp.setOffline(c); // exit's shootdown waits for no one
      k.shutdown();
    },
  };
}

const word = (k: Kernel, cpu: number, w: number): number => realLoad(k.smp.words, k.smp.w(cpu, w));
const outstanding = (k: Kernel, cpu: number): boolean => word(k, cpu, W_REQ) !== word(k, cpu, W_RESP);
const retSlot = (k: Kernel, cpu: number): number => k.smp.args[cpu * CPU_ARGS + A_RET];

/** What a worker CPU does to trap, without its wait: NR and ARGS, then REQ (and the doorbell if `ring`). */
function post(k: Kernel, cpu: number, nr: number, args: number[], ring = true): void {
  Atomics.store(k.smp.words, k.smp.w(cpu, W_NR), nr);
  for (let i = 0; i < 6; i++) k.smp.args[cpu * CPU_ARGS + i] = args[i] ?? 0;
  Atomics.add(k.smp.words, k.smp.w(cpu, W_REQ), 1);
  if (ring) k.smp.ring();
}

interface Answering {
  /** the CPU's looks at its RESP word while a trap was outstanding, since the last answer */
  polls: number;
  /** the CPU's sleeps on its RESP word: [value, timeout ms], all traps */
  sleeps: [number, number][];
  /** looks before the first sleep of the current trap (-1: no sleep yet) */
  pollsBeforeSleep: number;
  /** set if the safety net answered: the trap was not answered where the test said */
  forced: boolean;
  /** traps answered */
  answered: number;
}

/**
 * The kernel answers cpu's traps from inside the CPU's wait: at the CPU's
 * `onPoll`-th look at its RESP word, or in its `onSleep`-th sleep on it
 * (counted from the trap), server.serveOne(cpu) runs first, as the kernel
 * thread would just then. Sleeps are recorded and return at once.
 */
function kernelAnswers(k: Kernel, server: TrapServer, cpu: number, o: { onPoll?: number; onSleep?: number } = { onPoll: 1 }): Answering {
  const buf = k.smp.words.buffer;
  const resp = k.smp.w(cpu, W_RESP);
  const st: Answering = { polls: 0, sleeps: [], pollsBeforeSleep: -1, forced: false, answered: 0 };
  let sleeps = 0;
  let inside = false;
  const answer = () => {
    // no test makes a thousand traps: a CPU that does is retrying one access forever
    if (++st.answered > 1000) throw new Error(`CPU ${cpu} keeps trapping`);
    inside = true;
    try {
      server.serveOne(cpu);
    } finally {
      inside = false;
    }
    st.polls = 0;
    sleeps = 0;
  };
  mock.method(Atomics, 'load', ((a: Int32Array, i: number) => {
    if (!inside && a.buffer === buf && i === resp && outstanding(k, cpu)) {
      st.polls++;
      if (st.polls === o.onPoll) answer();
      else if (st.polls > 1_000_000) {
        st.forced = true; // a mutant that never sleeps: answer rather than hang
        answer();
      }
    }
    return realLoad(a, i);
  }) as unknown as typeof Atomics.load);
  mock.method(Atomics, 'wait', ((a: Int32Array, i: number, v: number, ms?: number) => {
    if (a.buffer !== buf || i !== resp) return realWait(a, i, v, ms);
    if (sleeps === 0) st.pollsBeforeSleep = st.polls;
    st.sleeps.push([v, ms ?? Infinity]);
    if (realLoad(a, i) !== v) return 'not-equal';
    if (++sleeps === o.onSleep) {
      answer();
      return 'ok';
    }
    if (sleeps > 1000) {
      st.forced = true;
      answer();
      return 'ok';
    }
    return 'timed-out';
  }) as unknown as typeof Atomics.wait);
  return st;
}

/** Worker CPU `cpu` of t built on this thread (the CPU runs t's mm from now on). */
function workerCpu(k: Kernel, t: Task, cpu: number, fastFaults = false): WorkerCpu {
  return new WorkerCpu(cpuDescriptor(k, t, cpu, fastFaults));
}

describe('trap.ts: cpuDescriptor', () => {
  it('refuses a CPU number that is not a worker CPU of the machine, naming the range', () => {
    const s = setup(3);
    for (const cpu of [0, -1, 3, 4, 1.5, NaN])
      assert.throws(() => cpuDescriptor(s.k, s.t, cpu), { name: 'RangeError', message: `cpu: expected an integer in [1, 2], got ${cpu}` });
    assert.equal(s.t.mm.shared.i32[MM_FAST], 0, 'a refused CPU enables nothing');
    for (const cpu of [1, 2]) assert.equal(cpuDescriptor(s.k, s.t, cpu).cpu, cpu);
    s.done();
  });

  it('by default a worker CPU handles private anonymous faults itself: its first write to a fresh page needs no trap', () => {
    const s = setup(2);
    mapAnon(s.k, s.t, 4);
    s.k.smp.setOnline(1, s.t.mm.id); // in the mm's cpumask: its per-CPU list is topped up
    const d = cpuDescriptor(s.k, s.t, 1);
    assert.equal(d.fastFaults, true);
    const cpu = new WorkerCpu(d);
    assert.notEqual(cpu.fast, null);
    const st = kernelAnswers(s.k, new TrapServer(s.k, s.t), 1);
    assert.equal(cpu.user.store(BASE, new Uint8Array(8).fill(7), 0, 8), 0);
    assert.equal(word(s.k, 1, W_REQ), 0, 'no trap');
    assert.equal(cpu.traps, 0);
    assert.equal(st.forced, false);
    assert.equal(cpu.fast?.handled, 1);
    s.done();
  });

  it('with fastFaults false the mm stays closed to CPU-side faults: every fault traps and no frame waits on the CPU\'s list', () => {
    const s = setup(2);
    mapAnon(s.k, s.t, 4);
    s.k.smp.setOnline(1, s.t.mm.id);
    const d = cpuDescriptor(s.k, s.t, 1, false);
    assert.equal(d.fastFaults, false);
    assert.equal(s.t.mm.shared.i32[MM_FAST], 0);
    const cpu = new WorkerCpu(d);
    assert.equal(cpu.fast, null);
    kernelAnswers(s.k, new TrapServer(s.k, s.t), 1);
    assert.equal(cpu.user.store(BASE, new Uint8Array(8).fill(7), 0, 8), 0);
    assert.equal(word(s.k, 1, W_REQ), 1, 'the fault trapped');
    assert.equal(s.k.alloc.map.pcpCountOf(1, 0) + s.k.alloc.map.pcpCountOf(1, 1), 0, 'the kernel left no frames for CPU 1');
    assert.equal(s.t.mm.shared.i32[MM_FAST], 0);
    s.done();
  });
});

describe('trap.ts: WorkerCpu.trap', () => {
  it('a syscall trap carries its number and all six arguments intact and returns the kernel\'s answer; unused arguments are 0', () => {
    const s = setup(3);
    const server = new TrapServer(s.k, s.t);
    const cpu = workerCpu(s.k, s.t, 1);
    kernelAnswers(s.k, server, 1);
    s.rets.push(2 ** 40 + 7, -E.EINVAL);
    const args = [BASE + 3, -1, 2 ** 53 - 1, 3.5, 0x7fff_ffff, 6];
    assert.equal(cpu.trap(NR_PROBE, ...args), 2 ** 40 + 7);
    assert.equal(cpu.trap(NR_PROBE, 9), -E.EINVAL);
    assert.deepEqual(s.calls, [args, [9, 0, 0, 0, 0, 0]]);
    assert.equal(cpu.traps, 2, 'the CPU counts its traps');
    assert.equal(word(s.k, 1, W_REQ), 2);
    assert.equal(word(s.k, 1, W_RESP), 2);
    s.done();
  });

  it('crowded, a CPU whose request the kernel has not taken yields every TAKEN_POLLS polls; once taken, it does not; serveOne marks it taken', () => {
    const s = setup(2); // 2 threads on 1 host CPU: crowded
    const server = new TrapServer(s.k, s.t);
    const cpu = workerCpu(s.k, s.t, 1);
    assert.equal(cpu.yieldCpu, cpu.smp.yieldCpu, 'crowded: the host yield, where the addon has one');
    let yields = 0;
    cpu.yieldCpu = () => yields++;
    // answered at the 3rd look past 3 x TAKEN_POLLS: polls TAKEN_POLLS, 2x and 3x yielded
    const st = kernelAnswers(s.k, server, 1, { onPoll: 3 * TAKEN_POLLS + 3 });
    s.rets.push(5);
    assert.equal(cpu.trap(NR_PROBE, 1), 5);
    assert.deepEqual([yields, st.sleeps.length, st.forced], [3, 0, false]);
    assert.equal(word(s.k, 1, W_TAKEN), word(s.k, 1, W_REQ), 'serveOne marked the request it served as taken');
    // the kernel has already taken the next request (it is serving it): the CPU spins without yielding
    Atomics.store(s.k.smp.words, s.k.smp.w(1, W_TAKEN), word(s.k, 1, W_REQ) + 1);
    yields = 0;
    assert.equal(cpu.trap(NR_PROBE, 2), 0);
    assert.deepEqual([yields, st.forced], [0, false]);
    // one poll short of TAKEN_POLLS: answered before any yield
    mock.restoreAll();
    kernelAnswers(s.k, server, 1, { onPoll: TAKEN_POLLS });
    assert.equal(cpu.trap(NR_PROBE, 3), 0);
    assert.equal(yields, 0);
    s.done();
  });

  it('with a host CPU for each thread a trap never yields: the kernel thread has a CPU of its own', () => {
    const s = setup(2, 2);
    const cpu = workerCpu(s.k, s.t, 1);
    let yields = 0;
    cpu.yieldCpu = () => yields++;
    const st = kernelAnswers(s.k, new TrapServer(s.k, s.t), 1, { onPoll: 3 * TAKEN_POLLS + 3 });
    assert.equal(cpu.trap(NR_PROBE, 1), 0);
    assert.deepEqual([yields, st.forced], [0, false]);
    s.done();
  });

  it('on a busy host a trap yields as a crowded one does, though there is a host CPU for each thread; once the host is quiet again, it does not', () => {
    const s = setup(2, 2);
    const cpu = workerCpu(s.k, s.t, 1);
    let yields = 0;
    cpu.yieldCpu = () => yields++;
    const ms = Math.floor(performance.timeOrigin + performance.now() - s.k.smp.descriptor().epoch);
    Atomics.store(s.k.smp.words, s.k.smp.busyWord, ms + 60_000); // other processes hold the host CPUs (HostLoad)
    const server = new TrapServer(s.k, s.t);
    const st = kernelAnswers(s.k, server, 1, { onPoll: 3 * TAKEN_POLLS + 3 });
    s.rets.push(5);
    assert.equal(cpu.trap(NR_PROBE, 1), 5);
    assert.deepEqual([yields, st.sleeps.length, st.forced], [3, 0, false]);
    Atomics.store(s.k.smp.words, s.k.smp.busyWord, ms - 1);
    yields = 0;
    assert.equal(cpu.trap(NR_PROBE, 2), 0);
    assert.deepEqual([yields, st.forced], [0, false]);
    s.done();
  });

  it('a trap with a syscall number the kernel does not have (0, 1, 2) answers -ENOSYS', () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    kernelAnswers(s.k, new TrapServer(s.k, s.t), 1);
    for (const nr of [0, 1, 2]) assert.equal(cpu.trap(nr, BASE, 1), -E.ENOSYS, `nr ${nr}`);
    assert.equal(s.k.counters.get('enosys'), 3);
    assert.equal(s.k.counters.get('faults'), 0, 'none of them was taken for a fault');
    s.done();
  });

  it('a trap with more than six arguments throws RangeError naming the count, and nothing reaches the kernel', () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    assert.throws(() => cpu.trap(NR_PROBE, 1, 2, 3, 4, 5, 6, 7), { name: 'RangeError', message: 'args: at most 6, got 7' });
    assert.equal(word(s.k, 1, W_REQ), 0);
    assert.deepEqual(s.calls, []);
    s.done();
  });

  it('a fault traps with its address and whether it was a write: reading a read-only page is served, writing it is -EFAULT', () => {
    const s = setup(2);
    const ro = BASE + 8 * PAGE;
    mapAnon(s.k, s.t, 4);
    assert.equal(s.k.syscall(s.t, NR.mmap, ro, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), ro);
    const cpu = workerCpu(s.k, s.t, 1);
    kernelAnswers(s.k, new TrapServer(s.k, s.t), 1);
    const pte = (va: number) => s.k.pool.get(s.t.mm.pgd, va);
    // the trap itself, as the CPU makes it: the fault's va, then 1 for a write, 0 for a read
    assert.equal(cpu.trap(TRAP_FAULT, ro + 8, 1), -E.EFAULT, 'a write to the read-only page');
    assert.equal(pte(ro), 0);
    assert.equal(cpu.trap(TRAP_FAULT, ro + 8, 0), 0, 'a read of it');
    assert.equal(pte(ro) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT);
    assert.equal(cpu.trap(TRAP_FAULT, BASE + 2 * PAGE + 100, 1), 0, 'a write to a writable page');
    assert.equal(pte(BASE + 2 * PAGE) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT | PTE_WRITE);
    for (const p of [0, 1, 3]) assert.equal(pte(BASE + p * PAGE), 0, `page ${p} untouched`);
    // and through the CPU's accesses
    assert.equal(cpu.user.store(ro + 16, new Uint8Array(8), 0, 8), -E.EFAULT);
    assert.equal(cpu.user.load(ro + 16, new Uint8Array(8), 0, 8), 0);
    assert.equal(s.k.counters.get('segv'), 2);
    s.done();
  });

  it('a trap wakes a kernel thread that waits on the CPU\'s REQ word, and rings the doorbell', async () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    const w = s.k.smp.words;
    const req = s.k.smp.w(1, W_REQ);
    const onReq = realWaitAsync(w, req, 0);
    const onBell = realWaitAsync(w, s.k.smp.doorbell, realLoad(w, s.k.smp.doorbell));
    assert.equal(onReq.async, true);
    assert.equal(onBell.async, true);
    kernelAnswers(s.k, new TrapServer(s.k, s.t), 1);
    s.rets.push(5);
    assert.equal(cpu.trap(NR_PROBE), 5);
    mock.restoreAll();
    assert.equal(Atomics.notify(w, req), 0, 'the trap already woke the waiter on REQ');
    assert.equal(Atomics.notify(w, s.k.smp.doorbell), 0, 'and the one on the doorbell');
    assert.equal(await onReq.value, 'ok');
    assert.equal(await onBell.value, 'ok');
    s.done();
  });

  it('a CPU whose answer comes while it is still polling takes it without sleeping on RESP', () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    const st = kernelAnswers(s.k, new TrapServer(s.k, s.t), 1, { onPoll: 10 });
    s.rets.push(11);
    assert.equal(cpu.trap(NR_PROBE), 11);
    assert.deepEqual(st.sleeps, []);
    assert.equal(st.forced, false);
    s.done();
  });

  it('a CPU whose answer is late polls first, then sleeps on its RESP word 1 ms at a time until the kernel answers', () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    const st = kernelAnswers(s.k, new TrapServer(s.k, s.t), 1, { onPoll: 0, onSleep: 3 });
    s.rets.push(12);
    assert.equal(cpu.trap(NR_PROBE), 12);
    assert.equal(st.forced, false);
    assert.deepEqual(st.sleeps, [
      [0, 1],
      [0, 1],
      [0, 1],
    ]);
    assert.ok(st.pollsBeforeSleep > 1, `it polled ${st.pollsBeforeSleep} times before its first sleep`);
    s.done();
  });

  it('while the kernel waits for another CPU\'s ack (the kernel-waits word is 1), a CPU waiting for its trap reply sleeps after one look instead of polling', () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    const st = kernelAnswers(s.k, new TrapServer(s.k, s.t), 1, { onPoll: 10, onSleep: 2 });
    Atomics.store(s.k.smp.words, s.k.smp.kernelWaits, 1);
    s.rets.push(13);
    assert.equal(cpu.trap(NR_PROBE), 13);
    assert.equal(st.forced, false);
    assert.equal(st.pollsBeforeSleep, 1, 'one look at RESP, then a sleep');
    assert.deepEqual(st.sleeps, [
      [0, 1],
      [0, 1],
    ]);
    Atomics.store(s.k.smp.words, s.k.smp.kernelWaits, 0);
    s.done();
  });

  it('online() puts an idle CPU back online and acks an IPI sent while it was offline, flushing its TLB first', () => {
    const s = setup(2);
    mapAnon(s.k, s.t, 1);
    const cpu = workerCpu(s.k, s.t, 1);
    kernelAnswers(s.k, new TrapServer(s.k, s.t), 1);
    const buf = new Uint8Array(8);
    assert.equal(cpu.user.store(BASE, buf.fill(3), 0, 8), 0);
    assert.equal(cpu.user.load(BASE, buf, 0, 8), 0);
    cpu.offline();
    assert.equal(word(s.k, 1, W_ONLINE), 0);
    assert.equal(s.k.smp.shootdown(0, s.t.mm.id), 1, 'the kernel IPIs the idle CPU but does not wait for it');
    assert.notEqual(word(s.k, 1, W_ACK), word(s.k, 1, W_IPI));
    cpu.online();
    assert.equal(word(s.k, 1, W_ONLINE), 1);
    assert.equal(word(s.k, 1, W_ACK), word(s.k, 1, W_IPI));
    const misses = cpu.user.tlbMisses;
    assert.equal(cpu.user.load(BASE, buf, 0, 8), 0);
    assert.equal(cpu.user.tlbMisses, misses + 1, 'the TLB was flushed');
    assert.equal(buf[0], 3);
    s.done();
  });
});

describe('trap.ts: TrapServer.serveOne', () => {
  it('serveOne is false and serves nothing while the CPU has no trap outstanding, true when it served one', () => {
    const s = setup(2);
    const server = new TrapServer(s.k, s.t);
    assert.equal(server.serveOne(1), false);
    post(s.k, 1, NR_PROBE, [1]);
    assert.equal(server.serveOne(1), true);
    assert.equal(server.serveOne(1), false);
    assert.equal(s.calls.length, 1);
    s.done();
  });

  it('serveOne takes the arguments from that CPU\'s slots, writes RET to its RET slot, and wakes the CPU waiting on RESP', async () => {
    const s = setup(3);
    const server = new TrapServer(s.k, s.t);
    const a = s.k.smp.args;
    for (let i = 0; i < 3 * CPU_ARGS; i++) a[i] = 1000 + i; // every CPU's slots hold something
    post(s.k, 2, NR_PROBE, [21, 22, 23, 24, 25, 26]);
    const resp = s.k.smp.w(2, W_RESP);
    const onResp = realWaitAsync(s.k.smp.words, resp, 0);
    s.rets.push(-E.ENOMEM);
    assert.equal(server.serveOne(2), true);
    assert.deepEqual(s.calls, [[21, 22, 23, 24, 25, 26]]);
    assert.equal(retSlot(s.k, 2), -E.ENOMEM);
    assert.deepEqual(Array.from(a.subarray(CPU_ARGS, 2 * CPU_ARGS)), [1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015], 'CPU 1\'s slots untouched');
    assert.equal(word(s.k, 2, W_RESP), 1);
    assert.equal(Atomics.notify(s.k.smp.words, resp), 0, 'the waiter on RESP was already woken');
    assert.equal(await onResp.value, 'ok');
    s.done();
  });
});

describe('trap.ts: TrapServer.serve and stop', () => {
  it('serve(cpu) answers a trap already outstanding at once, before its loop first waits', async () => {
    const s = setup(2);
    const server = new TrapServer(s.k, s.t);
    s.rets.push(31);
    post(s.k, 1, NR_PROBE, [3]);
    server.serve(1);
    assert.equal(outstanding(s.k, 1), false);
    assert.equal(retSlot(s.k, 1), 31);
    await server.stop();
    s.done();
  });

  it('a serving loop answers each trap when the CPU notifies REQ, and once stop() resolves no loop waits on REQ any more', async () => {
    const s = setup(3);
    // the loops' 50 ms timeout is taken away: only a notify wakes them, so every step is exact
    mock.method(Atomics, 'waitAsync', ((a: Int32Array, i: number, v: number) => realWaitAsync(a, i, v)) as unknown as typeof Atomics.waitAsync);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    server.serve(2);
    const w = s.k.smp.words;
    for (const [cpu, ret] of [
      [1, 41],
      [2, 42],
    ]) {
      s.rets.push(ret);
      const onResp = realWaitAsync(w, s.k.smp.w(cpu, W_RESP), 0);
      post(s.k, cpu, NR_PROBE, [cpu]);
      Atomics.notify(w, s.k.smp.w(cpu, W_REQ));
      assert.equal(await onResp.value, 'ok');
      assert.equal(retSlot(s.k, cpu), ret);
    }
    await server.stop();
    for (const cpu of [1, 2]) assert.equal(Atomics.notify(w, s.k.smp.w(cpu, W_REQ)), 0, `no loop waits on CPU ${cpu}'s REQ`);
    post(s.k, 1, NR_PROBE, [1]);
    assert.equal(Atomics.notify(w, s.k.smp.w(1, W_REQ)), 0);
    assert.equal(outstanding(s.k, 1), true, 'a trap after stop() is not served');
    assert.equal(s.calls.length, 2);
    s.done();
  });
});

describe('trap.ts: TrapServer.pump', () => {
  interface Quiet {
    /** sleeps on the doorbell so far: the result each gave */
    sleeps: string[];
    /** the mock clock, ms */
    now(): number;
    /** move the clock on */
    advance(ms: number): void;
  }

  /**
   * A mock clock (performance.now, from 1000 ms) and a mock of the pump's
   * sleep on the doorbell: 'not-equal' if it was rung since the pump looked,
   * else the sleep lasts 5 ms and ends 'timed-out', or 'ok' if `ringAt(n)`
   * says a CPU rings during the n-th sleep (from 1); `ring` does the ringing.
   */
  function quiet(k: Kernel, ringAt: (n: number) => boolean = () => false, ring: () => void = () => k.smp.ring()): Quiet {
    let clock = 1000;
    const q: Quiet = { sleeps: [], now: () => clock, advance: (ms) => (clock += ms) };
    mock.method(performance, 'now', () => clock);
    mock.method(Atomics, 'wait', ((a: Int32Array, i: number, v: number, ms?: number) => {
      if (a.buffer !== k.smp.words.buffer || i !== k.smp.doorbell) return realWait(a, i, v, ms);
      assert.equal(ms, 5, 'the pump sleeps 5 ms at a time');
      let r: 'ok' | 'not-equal' | 'timed-out';
      if (realLoad(a, i) !== v) r = 'not-equal';
      else {
        clock += 5;
        if (ringAt(q.sleeps.length + 1)) {
          ring();
          r = 'ok';
        } else r = 'timed-out';
      }
      q.sleeps.push(r);
      return r;
    }) as unknown as typeof Atomics.wait);
    return q;
  }

  /** finished() for the pump: true from the n-th call on; also true after 20000 calls or 100 sleeps, so that no mutant hangs. */
  function after(n: number, q: Quiet, hook: (call: number) => void = () => {}): { finished: () => boolean; calls: () => number } {
    let calls = 0;
    return {
      finished: () => {
        calls++;
        hook(calls);
        return calls >= n || calls > 20_000 || q.sleeps.length > 100;
      },
      calls: () => calls,
    };
  }

  /** A pump of 20 polls in which CPU 1 makes a probe trap (argument arg) at the 10th. */
  function pumpTrapAt10(s: Setup, q: Quiet, server: TrapServer, arg: number): void {
    server.pump(
      after(20, q, (call) => {
        if (call === 10) post(s.k, 1, NR_PROBE, [arg]);
      }).finished,
    );
  }

  it('pump serves the traps of every served CPU, runs step() until it has no more work and never again, and returns when finished', async () => {
    const s = setup(3);
    const q = quiet(s.k);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    server.serve(2);
    s.rets.push(51, 52);
    post(s.k, 1, NR_PROBE, [1]);
    post(s.k, 2, NR_PROBE, [2]);
    let steps = 0;
    const f = after(20, q);
    server.pump(f.finished, () => ++steps < 4);
    assert.equal(f.calls(), 20);
    assert.equal(steps, 4, 'step() until its first false, then no more');
    assert.deepEqual(
      [retSlot(s.k, 1), retSlot(s.k, 2), outstanding(s.k, 1), outstanding(s.k, 2)],
      [51, 52, false, false],
    );
    assert.deepEqual(q.sleeps, []);
    await server.stop();
    s.done();
  });

  it("step() 'wait' (its work waits for a running CPU) is no work: a crowded pump sleeps; the online bell is up while step() looks, so the CPU that comes online rings the pump awake; down once step() works and when the pump returns", async () => {
    const s = setup(2);
    const w = s.k.smp.words;
    const cpu = workerCpu(s.k, s.t, 1);
    cpu.offline();
    const bellUp = () => realLoad(w, s.k.smp.onlineBell);
    // the CPU comes online during the pump's 2nd sleep
    const q = quiet(s.k, (n) => n === 2, () => cpu.online());
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    const inStep: number[] = [], afterStep: number[] = [];
    let works = 0;
    const step = (): boolean | 'wait' => {
      inStep.push(bellUp());
      if (realLoad(w, s.k.smp.w(1, W_ONLINE)) === 0) return 'wait';
      return ++works < 3;
    };
    const g = after(Infinity, q, () => afterStep.push(bellUp()));
    server.pump(() => g.finished() || works === 3, step);
    assert.deepEqual(q.sleeps, ['timed-out', 'ok'], 'asleep at once while it waited; the online CPU rang');
    assert.deepEqual(inStep, [1, 1, 1, 1, 1]);
    assert.deepEqual(afterStep, [1, 1, 0, 0, 0]);
    assert.equal(bellUp(), 0);
    // with the bell down, a CPU that comes online rings nobody
    cpu.offline();
    const rung = realLoad(w, s.k.smp.doorbell);
    cpu.online();
    assert.equal(realLoad(w, s.k.smp.doorbell), rung);
    // a pump that returns while its step() still waits takes the bell down
    cpu.offline();
    server.pump(after(3, q).finished, () => 'wait');
    assert.equal(bellUp(), 0);
    await server.stop();
    s.done();
  });

  it('pump does not sleep while step() has work, nor while CPUs keep trapping, however long that goes on', async () => {
    const s = setup(2);
    const q = quiet(s.k);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    let steps = 0;
    const g = after(Infinity, q); // (a guard only)
    server.pump(
      () => g.finished() || steps === 3000,
      () => ++steps < 3000,
    );
    assert.equal(steps, 3000);
    assert.deepEqual(q.sleeps, [], 'step() had work');
    const f = after(3000, q, (call) => {
      if (call < 3000) post(s.k, 1, NR_PROBE, [call]);
    });
    server.pump(f.finished);
    assert.equal(s.calls.length, 2999);
    // the first poll came before the first trap, and the last pump served none: the
    // crowded kernel went to sleep at once, and the trap's ring sent it back at once
    assert.deepEqual(q.sleeps, ['not-equal'], 'a trap in every round');
    await server.stop();
    s.done();
  });

  it('a quiet pump after one that served a trap polls before it sleeps: a CPU that traps within the spin is served without a sleep', async () => {
    const s = setup(2);
    const q = quiet(s.k);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    s.rets.push(60, 61, 62);
    post(s.k, 1, NR_PROBE, [5]);
    server.pump(after(1, q).finished);
    assert.deepEqual([retSlot(s.k, 1), q.sleeps], [60, []]);
    pumpTrapAt10(s, q, server, 6);
    assert.equal(retSlot(s.k, 1), 61);
    assert.deepEqual(q.sleeps, []);
    // that pump served a trap too: the next one spins as well
    pumpTrapAt10(s, q, server, 7);
    assert.equal(retSlot(s.k, 1), 62);
    assert.deepEqual(q.sleeps, []);
    await server.stop();
    s.done();
  });

  it('a crowded kernel whose CPUs trapped in neither this pump nor the last sleeps at the first quiet poll, and serves the trap that rings it', async () => {
    const s = setup(2);
    const q = quiet(s.k, (n) => n === 3, () => post(s.k, 1, NR_PROBE, [8]));
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    s.rets.push(71, 72);
    const f = after(3, q);
    server.pump(f.finished);
    assert.deepEqual(q.sleeps, ['timed-out', 'timed-out'], 'a sleep after each quiet poll, none spun for');
    // the last pump served nothing either: sleeps at once again, until the trap rings;
    // from the served trap on it polls, and catches the next trap without a sleep
    let since = 0;
    const g = after(Infinity, q, () => {
      if (retSlot(s.k, 1) === 71 && ++since === 10) post(s.k, 1, NR_PROBE, [9]);
    });
    server.pump(() => g.finished() || retSlot(s.k, 1) === 72);
    assert.deepEqual([retSlot(s.k, 1), s.calls.length, since], [72, 2, 10]);
    assert.deepEqual(q.sleeps, ['timed-out', 'timed-out', 'ok']);
    await server.stop();
    s.done();
  });

  it('with sched_yield to call, a crowded pump after a served trap polls with it up to the 2 ms cap, then sleeps; one after a quiet pump yields only for as long as a wake-up costs (WAKE_MS), then sleeps', async () => {
    const s = setup(2);
    const q = quiet(
      s.k,
      (n) => n === 5,
      () => post(s.k, 1, NR_PROBE, [2]),
    );
    let yields = 0;
    let step = 0.125;
    s.k.smp.yieldCpu = () => {
      yields++;
      q.advance(step);
    };
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    s.rets.push(91);
    post(s.k, 1, NR_PROBE, [1]);
    server.pump(after(1, q).finished);
    assert.deepEqual([retSlot(s.k, 1), yields, q.sleeps], [91, 0, []]);
    // a trap came in the last pump: 16 yields of 0.125 ms reach the cap, then a sleep
    server.pump(() => q.sleeps.length === 1 || yields > 1000);
    assert.deepEqual([yields, q.sleeps], [16, ['timed-out']]);
    // no trap in that pump nor in this one: one yield of 0.125 ms is past WAKE_MS, then asleep
    server.pump(() => q.sleeps.length === 2 || yields > 1000);
    assert.deepEqual([yields, q.sleeps], [17, ['timed-out', 'timed-out']]);
    // quiet again, yields of 1/128 ms: those that begin within WAKE_MS of the pump's start, then
    // asleep (a sleep that times out starts no new window), until a trap rings in the pump's third
    // sleep: from it on, yields to the cap, 2 ms of them
    step = 1 / 128;
    const inWindow = Math.ceil(WAKE_MS / step);
    assert.equal(inWindow, 6, 'WAKE_MS is 0.04 ms: yields at 0, 1/128, ... 5/128 ms');
    s.rets.push(92);
    server.pump(() => q.sleeps.length === 6 || yields > 100_000);
    assert.equal(retSlot(s.k, 1), 92);
    assert.deepEqual([yields, q.sleeps.slice(2)], [17 + inWindow + 2 / step, ['timed-out', 'timed-out', 'ok', 'timed-out']]);
    await server.stop();
    s.done();
  });

  it('a quiet crowded pump yields while less than WAKE_MS has passed since it began, not at WAKE_MS', async () => {
    const s = setup(2);
    const q = quiet(s.k);
    q.advance(-q.now()); // the pump begins at 0 ms: its times since are exact
    let yields = 0;
    s.k.smp.yieldCpu = () => {
      yields++;
      q.advance(WAKE_MS);
    };
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    server.pump(() => q.sleeps.length === 1 || yields > 100);
    assert.deepEqual([yields, q.sleeps], [1, ['timed-out']], 'one yield at 0 ms; at WAKE_MS it sleeps');
    await server.stop();
    s.done();
  });

  it('a kernel with a host CPU for each thread polls before it sleeps even when no CPU trapped', async () => {
    const s = setup(2, 2);
    const q = quiet(s.k);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    s.rets.push(81);
    pumpTrapAt10(s, q, server, 9);
    assert.equal(retSlot(s.k, 1), 81);
    assert.deepEqual(q.sleeps, []);
    await server.stop();
    s.done();
  });

  it('pump throws the stall error naming stallMs once nothing rang for more than stallMs, not at exactly stallMs', async () => {
    const s = setup(2);
    const q = quiet(s.k);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    const f = after(Infinity, q);
    assert.throws(() => server.pump(f.finished, undefined, 20), { name: 'Error', message: 'trap server: no CPU rang for 20 ms' });
    assert.deepEqual(q.sleeps, ['timed-out', 'timed-out', 'timed-out', 'timed-out', 'timed-out'], 'thrown after the 5th sleep: 25 ms > 20');
    await server.stop();
    s.done();
  });

  it('a doorbell ring without a trap (a CPU that finished a round) restarts the stall clock', async () => {
    const s = setup(2);
    const cpu = workerCpu(s.k, s.t, 1);
    // CPU 1 finishes a round during every 4th sleep: the pump is never quiet for more than 20 ms
    const q = quiet(s.k, (n) => n % 4 === 0, () => cpu.roundDone());
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    const rounds = () => word(s.k, 1, W_ROUND);
    const f = after(Infinity, q);
    assert.doesNotThrow(() => server.pump(() => f.finished() || rounds() === 10, undefined, 20));
    assert.equal(rounds(), 10);
    assert.equal(q.sleeps.length, 40);
    assert.equal(q.sleeps.filter((r) => r === 'ok').length, 10);
    await server.stop();
    s.done();
  });

  it('a round\'s CPUs ring the doorbell once, the last to finish; with no count set (0 or below) each rings', () => {
    const s = setup(3);
    const [c1, c2] = [workerCpu(s.k, s.t, 1), workerCpu(s.k, s.t, 2)];
    const w = s.k.smp.words;
    const bell = () => realLoad(w, s.k.smp.doorbell);
    Atomics.store(w, s.k.smp.roundsLeft, 2);
    const b0 = bell();
    c2.roundDone();
    assert.deepEqual([bell() - b0, word(s.k, 2, W_ROUND), realLoad(w, s.k.smp.roundsLeft)], [0, 1, 1], 'not the last: its round counted, no ring');
    c1.roundDone();
    assert.deepEqual([bell() - b0, word(s.k, 1, W_ROUND), realLoad(w, s.k.smp.roundsLeft)], [1, 1, 0], 'the last rings');
    // not set for this round (0, then below): every CPU rings
    c1.roundDone();
    c2.roundDone();
    assert.equal(bell() - b0, 3);
    s.done();
  });

  it('kernel work in step() and in a served trap restarts the stall clock', async () => {
    const s = setup(2);
    const q = quiet(s.k);
    const server = new TrapServer(s.k, s.t);
    server.serve(1);
    // 30 ms of the kernel's own work in six steps, then 15 ms of quiet: no stall at 20 ms
    let steps = 0;
    let f = after(Infinity, q);
    const stopAt = () => q.sleeps.length === 3;
    assert.doesNotThrow(() =>
      server.pump(
        () => f.finished() || stopAt(),
        () => {
          q.advance(5);
          return ++steps < 6;
        },
        20,
      ),
    );
    assert.deepEqual([steps, q.sleeps.length], [6, 3]);
    // a trap whose syscall takes 30 ms, then 15 ms of quiet
    q.sleeps.length = 0;
    f = after(Infinity, q);
    s.work.push(() => q.advance(30));
    post(s.k, 1, NR_PROBE, [7]);
    assert.doesNotThrow(() => server.pump(() => f.finished() || stopAt(), undefined, 20));
    assert.equal(s.calls.length, 1);
    assert.equal(q.sleeps.length, 3);
    await server.stop();
    s.done();
  });
});
