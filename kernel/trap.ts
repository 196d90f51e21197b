// Entering the kernel from a worker CPU: the trap mailbox of smp.ts.
// Worker side: write NR and ARGS, bump REQ, wait for RESP (acking IPIs while
// waiting, so a kernel that is shooting down TLBs never waits on us forever).
// Kernel side: one async loop per CPU on Atomics.waitAsync(REQ), running the
// trap on the boot CPU's thread between other kernel work.
import { Machine, type MachineDescriptor } from '../hardware/machine.js';
import { FAULT_FILLED, UserCpu } from './cpu.js';
import type { Kernel, KernelCounter, KernelDescriptor, Task } from './kernel.js';
import { FastFault, MmShared, enableFastFaults, type MmSharedDescriptor } from './fastfault.js';
import { PerCpuCounters } from '../hardware/counters.js';
import { MemMap } from './page_alloc.js';
import { PageTablePool } from './pgtable.js';
import { A_RET, CPU_ARGS, Smp, W_NR, W_ONLINE, W_REQ, W_RESP, W_ROUND, W_TAKEN } from './smp.js';

import { WAKE_MS, type Spinner } from './backoff.js';

/** Trap number of a page fault (args: va, write); syscalls use their own numbers. */
export const TRAP_FAULT = -1;

/**
 * Polls of a trap's reply wait between two looks at whether the kernel has
 * taken the request (WorkerCpu.trap): 64 polls of that loop took 1.3 us on
 * the development VM (median of 7 timings of 2 million polls, 3 processes).
 */
export const TAKEN_POLLS = 64;

/** Everything a worker needs to run as one more CPU of a process. */
export interface CpuDescriptor {
  readonly machine: MachineDescriptor;
  readonly kernel: KernelDescriptor;
  readonly mm: { readonly id: number; readonly pgd: number; readonly shared: MmSharedDescriptor };
  readonly cpu: number;
  /** handle private anonymous faults on this CPU (fastfault.ts); false: every fault traps */
  readonly fastFaults: boolean;
}

/**
 * What a worker needs to run as `cpu` of task. From now on CPUs may handle
 * task's private anonymous faults themselves, unless fastFaults is false.
 */
export function cpuDescriptor(k: Kernel, task: Task, cpu: number, fastFaults = true): CpuDescriptor {
  if (!Number.isInteger(cpu) || cpu < 1 || cpu >= k.machine.nrCpus)
    throw new RangeError(`cpu: expected an integer in [1, ${k.machine.nrCpus - 1}], got ${cpu}`);
  if (fastFaults) enableFastFaults(k, task.mm);
  const mm = { id: task.mm.id, pgd: task.mm.pgd, shared: task.mm.shared.descriptor() };
  return { machine: k.machine.descriptor(), kernel: k.descriptor(), mm, cpu, fastFaults };
}

/** A worker CPU: a user-mode CPU whose faults and syscalls trap to the kernel thread. */
export class WorkerCpu {
  readonly machine: Machine;
  readonly smp: Smp;
  readonly user: UserCpu;
  readonly cpu: number;
  /** this CPU's own anonymous-fault handler, or null when every fault traps */
  readonly fast: FastFault | null;
  /** traps this CPU made (a worker asks whether its last round made any: cpu-worker.ts) */
  traps = 0;
  private readonly base: number;
  private readonly argBase: number;
  /**
   * Spin, then sleep, on the reply (backoff.ts). Measured on the 2-vCPU
   * development VM, one trap round trip (worker -> kernel thread -> worker):
   * 64 us sleeping at once, 7 us after 200 polls.
   */
  private readonly spinner: Spinner;
  /**
   * sched_yield for a trap's wait in the adaptive regime: the simulator's
   * threads outnumber the host CPUs, or the host is busy (see trap); null
   * without the addon; tests put a counter here.
   */
  yieldCpu: (() => void) | null;

  constructor(d: CpuDescriptor) {
    this.machine = Machine.attach(d.machine, d.cpu);
    this.smp = Smp.attach(d.kernel.smp);
    this.cpu = d.cpu;
    this.base = this.smp.w(d.cpu, 0);
    this.argBase = d.cpu * CPU_ARGS;
    this.spinner = this.smp.spinner();
    this.yieldCpu = this.smp.yieldCpu;
    const pool = PageTablePool.attach(d.kernel.pgtable);
    if (d.fastFaults) {
      const counters = PerCpuCounters.attach<KernelCounter>(d.kernel.counters);
      this.fast = new FastFault({
        cpu: d.cpu,
        mmId: d.mm.id,
        pgd: d.mm.pgd,
        mm: MmShared.attach(d.mm.shared),
        map: MemMap.attach(d.kernel.memmap),
        pool,
        engine: this.machine.engine,
        keyPageRefs: new Int32Array(d.kernel.keyPageRefs),
        counters: counters.row(d.cpu),
        faultsIndex: counters.index.faults,
        directMapIndex: counters.index.direct_map_removed,
      });
    } else this.fast = null;
    const fast = this.fast;
    this.user = new UserCpu(this.machine.engine, pool, this.smp, d.mm, (va, write, fill, fillOff) =>
      fast !== null && fast.tryFault(va, write, fill, fillOff) ? (fast.filled ? FAULT_FILLED : 0) : this.trap(TRAP_FAULT, va, write ? 1 : 0),
    );
    this.smp.setOnline(d.cpu, d.mm.id);
  }

  /** Enter the kernel: a fault or a syscall with numeric arguments. */
  trap(nr: number, ...args: number[]): number {
    this.traps++;
    const w = this.smp.words;
    const a = this.smp.args;
    if (args.length > 6) throw new RangeError(`args: at most 6, got ${args.length}`);
    Atomics.store(w, this.base + W_NR, nr);
    for (let i = 0; i < 6; i++) a[this.argBase + i] = args[i] ?? 0;
    // REQ's seq-cst add publishes NR and ARGS to the kernel thread.
    const req = Atomics.add(w, this.base + W_REQ, 1) + 1;
    Atomics.notify(w, this.base + W_REQ);
    this.smp.ring();
    // Spin first: a trap is served in microseconds, and a futex sleep and
    // wake costs tens of them on a VM. IPIs need no ack while we wait here:
    // the kernel does not wait for a CPU in a trap (smp.ts).
    // But not while the kernel waits for another CPU's ack: that CPU may need
    // the host CPU this spin holds (smp.ts, kernel waits).
    //
    // And where the threads outnumber the host CPUs (or the host is busy:
    // backoff.ts, HostLoad), a request the kernel
    // has not taken after TAKEN_POLLS polls gets a sched_yield (and another
    // every TAKEN_POLLS polls while it stays untaken): the kernel thread may be
    // queued behind this spin on the same host CPU, as Linux's
    // mutex_spin_on_owner stops spinning when the owner is not on a CPU
    // (kernel/locking/mutex.c). A yield with nothing else queued returns at
    // once. Measured on the 2-vCPU development VM with scheduler tracepoints
    // (perf sched:sched_switch), in the 10-15x slow stretches of 2-CPU
    // file-backed faults: the kernel thread and one worker shared a host
    // CPU while the other stood idle; each reply's wake-up preempted the
    // kernel (wakeup preemption), and the worker's next trap then spun its
    // whole budget, about 100-130 us, before sleeping let the kernel run
    // for the 7-10 us the trap needed. The sleep being short, the adaptive
    // budget took it for a near miss and stayed at its largest. A yield on
    // every wait instead, taken or not, made swap t2 2.5x slower.
    const sp = this.spinner;
    const kw = this.smp.kernelWaits;
    sp.start();
    const y = sp.fitting ? null : this.yieldCpu;
    for (let n = 1; ; n++) {
      const resp = Atomics.load(w, this.base + W_RESP);
      if (resp === req) break;
      if (y !== null && n % TAKEN_POLLS === 0 && Atomics.load(w, this.base + W_TAKEN) !== req) y();
      if (Atomics.load(w, kw) !== 0 || !sp.spin()) sp.sleep(w, this.base + W_RESP, resp, 1);
    }
    this.user.pollIpi(); // before the next access: IPIs sent while we were in the kernel
    return a[this.argBase + A_RET];
  }

  /**
   * Go idle between bursts of user work: the kernel no longer waits for this
   * CPU's IPI acks (lazy TLB), so it can unmap and free while we sleep.
   */
  offline(): void {
    this.smp.setOffline(this.cpu);
  }

  /** Tell a kernel that pumps (TrapServer.pump) that this CPU finished a round of work. */
  roundDone(): void {
    Atomics.add(this.smp.words, this.base + W_ROUND, 1);
    // the last of the round wakes the kernel (smp.ts, rounds left); the others need not
    if (Atomics.sub(this.smp.words, this.smp.roundsLeft, 1) <= 1) this.smp.ring();
  }

  /**
   * Back to running user code. Online first, then catch up on any IPI sent
   * while idle (seq-cst: a kernel that saw us offline had already bumped IPI,
   * so this poll sees it and flushes before the first access). A kernel
   * whose work waits for a running CPU (TrapServer.pump, step() 'wait';
   * the online bell) hears it on the doorbell; no other kernel is woken.
   */
  online(): void {
    const w = this.smp.words;
    Atomics.store(w, this.smp.w(this.cpu, W_ONLINE), 1);
    this.user.pollIpi();
    if (Atomics.load(w, this.smp.onlineBell) !== 0) this.smp.ring();
  }
}

/** Kernel side: serve traps of the given CPUs for task until stop(). */
export class TrapServer {
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly cpus: number[] = [];
  /** spin, then sleep, on the doorbell (backoff.ts) */
  private readonly spinner: Spinner;
  /** the last pump served a trap (see pump: whether a crowded kernel polls at all) */
  private trappedLast = false;

  constructor(
    private readonly k: Kernel,
    private readonly task: Task,
  ) {
    this.spinner = k.smp.spinner();
  }

  serve(cpu: number): void {
    this.cpus.push(cpu);
    this.loops.push(this.loop(cpu));
  }

  /** Serve cpu's outstanding trap, if it has one. */
  serveOne(cpu: number): boolean {
    const k = this.k;
    const w = k.smp.words;
    const base = k.smp.w(cpu, 0);
    const req = Atomics.load(w, base + W_REQ);
    if (req === Atomics.load(w, base + W_RESP)) return false;
    const a = k.smp.args;
    const argBase = cpu * CPU_ARGS;
    const nr = Atomics.load(w, base + W_NR);
    Atomics.store(w, base + W_TAKEN, req); // the waiting CPU stops yielding to us (WorkerCpu.trap)
    let ret: number;
    // (leaving the mm, the kernel tops up the per-CPU lists of its CPUs: fastfault.ts)
    if (nr === TRAP_FAULT) ret = k.fault(this.task, a[argBase], a[argBase + 1] !== 0);
    else ret = k.syscall(this.task, nr, a[argBase], a[argBase + 1], a[argBase + 2], a[argBase + 3], a[argBase + 4], a[argBase + 5]);
    a[argBase + A_RET] = ret;
    Atomics.store(w, base + W_RESP, req);
    Atomics.notify(w, base + W_RESP);
    return true;
  }

  /**
   * Serve traps synchronously until `finished()`, running `step()` (the
   * kernel's own work, one bounded piece at a time; false when it has none
   * left; 'wait' when it has none yet, waiting for the CPUs: a pass that
   * served no trap either is then a quiet one, below) between them, and
   * sleeping on the doorbell when there is nothing to do. Blocks this
   * thread: much lower trap latency than the event loop.
   *
   * When the simulator's threads outnumber the host CPUs (backoff.ts), a
   * kernel whose CPUs served no trap in this pump nor in the last one does
   * not spin at all: nothing is coming for it to catch (a round of fast
   * faults makes no trap at all), and its spin takes the host
   * CPU a worker needs. It sleeps on the doorbell, which a trap, a
   * CPU coming online for a round, or a finished round rings, once it has
   * polled with sched_yield (where the native addon is there) for as long as
   * a wake-up costs (backoff.ts WAKE_MS): a yield gives its host CPU to a
   * worker thread queued there, and a round that ends within it is caught
   * without a sleep and a wake-up of a halted vCPU. Once a trap came, it
   * polls, with sched_yield where the native addon is there, up to the cap
   * (backoff.ts). Measured
   * with 2 worker CPUs on this 2-vCPU VM, 5 alternating fresh processes per
   * side, medians: migration madvise-encrypt 9581 -> 7172 ns per op,
   * plain-mmap 8136 -> 6022, dax-stacking madvise-encrypt 5401 -> 2246,
   * enosys-fallback 146 -> 133 us, qemu-guest 37.3 -> 36.2 us; swap (a trap
   * every op) and fault unchanged within the noise (1.03, 1.00, 1.01).
   * The polls within WAKE_MS before that sleep, ab against the build that
   * slept at once, 12 processes, 2 worker CPUs: enosys-fallback plain-mmap
   * -20.8%, madvise-encrypt -16.9%, dax-stacking plain-mmap -19.3%,
   * madvise-encrypt -11.6% (each p_holm 0.012); fault, migration, swap and
   * qemu-guest -6.2..-0.5%, none significant; the 1-CPU cells (their threads
   * fit: no change of code) -1.4..+3.1%.
   */
  pump(finished: () => boolean, step: () => boolean | 'wait' = () => false, stallMs = 60_000): void {
    const w = this.k.smp.words;
    const bell = this.k.smp.doorbell;
    const sp = this.spinner;
    const crowded = this.k.smp.crowded;
    const yieldCpu = this.k.smp.yieldCpu;
    const onlineBell = this.k.smp.onlineBell;
    let bell1 = 0;
    let more = true;
    let trapped = false;
    let quietSince = performance.now();
    sp.start(true);
    try {
      for (;;) {
        const rung = Atomics.load(w, bell);
        let busy = false;
        for (const cpu of this.cpus) if (this.serveOne(cpu)) busy = true;
        if (busy) trapped = true;
        let worked = false;
        if (more) {
          // the online bell rings before step() looks at the CPUs' online
          // words (seq-cst, both sides): either it sees a CPU online, or that
          // CPU sees the bell and rings the doorbell, changing it from `rung`
          if (!bell1) Atomics.store(w, onlineBell, (bell1 = 1));
          const r = step();
          more = r !== false;
          worked = r === true;
          if (r !== 'wait') Atomics.store(w, onlineBell, (bell1 = 0));
        }
        if (finished()) {
          this.trappedLast = trapped;
          return;
        }
        if (busy || worked) {
          quietSince = performance.now();
          sp.start(true);
        } else {
          const atOnce = crowded && !trapped && !this.trappedLast;
          if (!atOnce && sp.spin()) continue;
          // (quiet and crowded: yields for as long as a wake-up costs first, where there is a yield)
          if (atOnce && yieldCpu !== null && performance.now() - quietSince < WAKE_MS) {
            yieldCpu();
            continue;
          }
          // (a sleep at once bypasses the spinner, whose budget would learn from waits it never spun for)
          const r = atOnce ? Atomics.wait(w, bell, rung, 5) : sp.sleep(w, bell, rung, 5);
          const now = performance.now();
          if (r !== 'timed-out') quietSince = now;
          else if (now - quietSince > stallMs) throw new Error(`trap server: no CPU rang for ${stallMs} ms`);
        }
      }
    } finally {
      if (bell1) Atomics.store(w, onlineBell, 0);
    }
  }

  private async loop(cpu: number): Promise<void> {
    const w = this.k.smp.words;
    const base = this.k.smp.w(cpu, 0);
    while (!this.stopped) {
      const seen = Atomics.load(w, base + W_REQ);
      if (seen === Atomics.load(w, base + W_RESP)) {
        const r = Atomics.waitAsync(w, base + W_REQ, seen, 50);
        if (r.async) await r.value;
      }
      this.serveOne(cpu);
    }
  }

  /**
   * Stop serving. A pending Atomics.waitAsync does not keep Node's event loop
   * alive, so each loop is woken explicitly rather than left to time out.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const cpu of this.cpus) Atomics.notify(this.k.smp.words, this.k.smp.w(cpu, W_REQ));
    await Promise.all(this.loops);
  }
}
