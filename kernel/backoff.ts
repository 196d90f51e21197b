// Spinning before a futex sleep, for every hand-off between the simulator's
// threads (trap reply, trap service, round board). A hand-off that completes
// within microseconds is worth polling for: a futex sleep and wake cost tens
// of microseconds on a VM. But a spinning thread occupies a host CPU, and
// when the simulator has more threads awake than the host has CPUs, it takes
// that CPU from the very thread it waits for.
//
// Two regimes, chosen by whether the simulator has a host CPU for each of
// its threads (the kernel thread and every worker CPU):
//
// - They fit: spin until the hand-off (the thread waited for has a CPU of
//   its own, as the kernel's optimistic spinning, kernel/locking/mutex.c
//   mutex_spin_on_owner, spins only while the owner runs on another CPU),
//   capped in time so that a thread whose partner has gone idle (the kernel
//   thread between cells) sleeps instead of burning a CPU.
// - They do not fit (2 worker CPUs and the kernel thread on 2 host CPUs): an
//   adaptive budget of polls, as glibc's adaptive mutexes do: doubled after a
//   wait the spin caught or that slept less than NEAR_MS (a near miss),
//   halved after a longer sleep (the other side was not running).
//
// Measured on this 2-vCPU VM: with 1 worker CPU the adaptive budget alone
// flipped between a spinning and a sleeping regime, within a process and
// between processes (fault per-process medians 17-22% apart, 5.0-8.0 us per
// op within one process), where the first regime gives 3.3-3.6 us. With 2
// worker CPUs, spinning while the threads awake fitted the CPUs had
// stretches of 2-4 ms rounds (a spinner holding the CPU a just-woken thread
// needed, for a time slice), and never spinning made swap ops take
// milliseconds (every trap two futex wake-ups): there the adaptive budget
// does best (swap t2 12-183 us per op, measured while the two CPUs still
// evicted each other's just-faulted pages; 6-10 us since, pgtable.ts
// pageProt). A CPU in a trap also stops spinning while the kernel waits
// for another CPU's ack (smp.ts, kernel waits).
//
// A third way, for waits whose caller asks for it (start(true)) when the
// threads do not fit and the native addon is there: poll with sched_yield
// between polls, up to the cap. The waiting thread gives its CPU to any
// thread queued on that CPU, yet the CPU never goes idle, and an idle vCPU
// takes tens of microseconds to wake on a VM (2 worker CPUs: each woken
// worker waited 50 us per round for its CPU). Only two waits ask: the
// kernel's pump once a CPU has trapped (trap.ts), and a worker CPU's wait
// for its next round after a round without traps (cpu-worker.ts). A worker
// whose round trapped, and every trap reply, keep the adaptive budget (a
// trap reply's wait yields only now and then, while the kernel has not
// taken its request: the last paragraph below): a
// thread that yield-spins there holds a CPU the load balancer would give
// to the kernel thread and the trapping CPU, which otherwise queue on one
// (swap t2 went 1.4-1.6x slower with yield-spins on every wait). Measured
// with 2 worker CPUs on this 2-vCPU VM, 6 alternating fresh processes a
// side, per-op medians against the budget alone: swap madvise-encrypt
// 0.71x, plain-mmap 0.62x; enosys-fallback 0.83x; dax-stacking 0.86x;
// qemu-guest 0.81x; fault madvise-encrypt 0.87x, plain-mmap 0.97x;
// migration 0.90x; 1 worker CPU (whose threads fit) unchanged, 1.01x.
//
// The threads are left where the host's scheduler puts them. With 2 worker
// CPUs, a process used to run a trapping cell (file-backed faults, swap)
// 10-15x slower for stretches of 0.25-1.5 s: the kernel thread and one
// worker queued on one host CPU, the other CPU idle, and every trap reply
// spent the worker's whole budget spinning while the kernel it waited for
// sat preempted behind it. A trap's wait now yields while the kernel has not
// taken its request (trap.ts, WorkerCpu.trap), which ended them. Pinning
// each worker to its own host CPU (sched_setaffinity, prototyped in the
// addon) had removed them too, but made fault t2 on anonymous memory
// 1.2-1.8x slower, slower than t1; pinning only while a CPU's rounds trap
// was worse for the trapping cells; pinning the kernel thread too made t1
// file-backed faults about 20x slower. None of them is used.

/** Longest spin of one wait, in ms: longer than a round of the default workloads. */
export const SPIN_CAP_MS = 2;

/** Polls between two looks at the clock. */
const CLOCK_EVERY = 128;
/** Yielding polls (a syscall each, about 0.3 us here) between two looks at the clock. */
const YIELD_CLOCK_EVERY = 16;

/** Adaptive budget (threads outnumber CPUs): bounds and start, in polls. */
const MIN_POLLS = 8;
const MAX_POLLS = 4000;
const START_POLLS = 500;
/** A sleep shorter than this (a futex round trip or two) was a near miss. */
export const NEAR_MS = 0.1;

export class Spinner {
  private polls = 0;
  private since = 0;
  private over = false;
  /** adaptive regime: polls before sleeping, and how the last wait went */
  budget = START_POLLS;
  private waited = false;
  private sleptMs = -1;
  /** this wait polls with sched_yield (start(true) in the adaptive regime, with a yield to call) */
  private yielding = false;

  /**
   * @param allowed true when the simulated CPUs fit the host CPUs (spin to
   * the cap); false for the adaptive regime
   * @param yieldCpu sched_yield (the native addon's), for waits that ask for
   * yielding polls; null: they poll on the adaptive budget like the rest
   */
  constructor(
    private readonly allowed: boolean,
    private readonly capMs = SPIN_CAP_MS,
    private readonly yieldCpu: (() => void) | null = null,
  ) {}

  /**
   * A wait begins (and the previous one, if any, is over). `yielding`: in
   * the adaptive regime, poll with sched_yield up to the cap instead of on
   * the budget, where there is a yield to call.
   */
  start(yielding = false): void {
    this.polls = 0;
    this.over = false;
    this.yielding = yielding && !this.allowed && this.yieldCpu !== null;
    this.since = performance.now(); // (the budget's polls do not look at it)
    // (with the threads fitting, the budget is never used: nothing to keep)
    if (!this.allowed) {
      if (this.waited) this.adapt();
      this.waited = true;
      this.sleptMs = -1;
    }
  }

  /** Adaptive regime: the budget after a wait that slept sleptMs (-1: the spin caught it). */
  private adapt(): void {
    if (this.sleptMs < NEAR_MS) this.budget = Math.min(MAX_POLLS, this.budget * 2);
    else this.budget = Math.max(MIN_POLLS, this.budget >> 1);
  }

  /** A poll found nothing: may the thread poll again (true), or must it sleep (false)? */
  spin(): boolean {
    if (!this.allowed && !this.yielding) return ++this.polls < this.budget;
    if (this.over) return false;
    if (this.yielding) (this.yieldCpu as () => void)();
    if (++this.polls % (this.yielding ? YIELD_CLOCK_EVERY : CLOCK_EVERY) !== 0) return true;
    this.over = performance.now() - this.since >= this.capMs;
    return !this.over;
  }

  /** Futex-sleep on w[index] while it holds value, at most ms. */
  sleep(w: Int32Array, index: number, value: number, ms: number): 'ok' | 'not-equal' | 'timed-out' {
    if (this.allowed) return Atomics.wait(w, index, value, ms);
    const t = performance.now();
    const r = Atomics.wait(w, index, value, ms);
    this.sleptMs = Math.max(this.sleptMs, 0) + performance.now() - t;
    return r;
  }
}
