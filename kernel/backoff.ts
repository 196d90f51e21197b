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

/** Longest spin of one wait, in ms: longer than a round of the default workloads. */
export const SPIN_CAP_MS = 2;

/** Polls between two looks at the clock. */
const CLOCK_EVERY = 128;

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

  /**
   * @param allowed true when the simulated CPUs fit the host CPUs (spin to
   * the cap); false for the adaptive regime
   */
  constructor(
    private readonly allowed: boolean,
    private readonly capMs = SPIN_CAP_MS,
  ) {}

  /** A wait begins (and the previous one, if any, is over). */
  start(): void {
    this.polls = 0;
    this.over = false;
    if (this.allowed) this.since = performance.now();
    else {
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
    if (!this.allowed) return ++this.polls < this.budget;
    if (this.over) return false;
    if (++this.polls % CLOCK_EVERY !== 0) return true;
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
