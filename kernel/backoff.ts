// Spinning before a futex sleep, for every hand-off between the simulator's
// threads (trap reply, trap service, round board). A hand-off that completes
// within microseconds is worth polling for: a futex sleep and wake cost tens
// of microseconds on a VM. But a spinning thread occupies a host CPU, and
// when the simulator has more threads awake than the host has CPUs, it takes
// that CPU from the very thread it waits for.
//
// So a thread spins only when the simulator has a host CPU for every one of
// its threads (the kernel thread and each worker CPU), as the kernel's
// optimistic spinning (kernel/locking/mutex.c, mutex_spin_on_owner) spins
// only while the owner runs on another CPU. With more threads than host CPUs
// every hand-off sleeps at once. Within that, a thread also stops spinning
// when more of the simulator's threads are awake than there are host CPUs:
// a shared count (smp.ts) that a thread leaves for the length of a futex
// sleep, and is put back on by whoever wakes it, at the moment of the wake-up
// (Spinner.wake: Atomics.notify says how many it woke), not when the woken
// thread gets to run. A thread that wakes by timeout puts itself back. A spin
// is also capped in time, so a thread whose partner has gone idle for longer
// (the kernel thread between cells) sleeps instead of burning a CPU.
//
// Measured (fault, 2 worker CPUs on this 2-vCPU VM, medians of 25 rounds):
// with spinning allowed whenever the awake count fitted, the first thousand
// rounds had stretches of 2-4 ms rounds (a spinner holding the CPU the woken
// thread needed, for a time slice) against 0.3 ms once settled; with no
// spinning at 3 threads on 2 CPUs, 0.22-0.31 ms and no such stretches.
//
// This replaced an adaptive spin budget (halved after a wait that slept,
// doubled after one the spin caught). That budget flipped between a spinning
// and a sleeping regime within a process and between processes: the same
// cell's per-process medians spread by 17-22%, the fault op by 5.0-8.0 us
// within one process. The rule here has no state to flip.

/** Longest spin of one wait, in ms: longer than a round of the default workloads. */
export const SPIN_CAP_MS = 2;

/** Polls between two looks at the clock. */
const CLOCK_EVERY = 128;

export class Spinner {
  private polls = 0;
  private since = 0;
  private over = false;

  /**
   * @param words the shared word array that holds the count
   * @param onCpu index of the count of the simulator's threads on a CPU
   * @param hostCpus the host CPUs those threads share
   * @param allowed false: never spin (more threads than host CPUs)
   */
  constructor(
    private readonly words: Int32Array,
    private readonly onCpu: number,
    private readonly hostCpus: number,
    private readonly allowed = true,
    private readonly capMs = SPIN_CAP_MS,
  ) {}

  /** A wait begins. */
  start(): void {
    this.polls = 0;
    this.since = performance.now();
    this.over = false;
  }

  /** A poll found nothing: may the thread poll again (true), or must it sleep (false)? */
  spin(): boolean {
    if (!this.allowed || this.over || Atomics.load(this.words, this.onCpu) > this.hostCpus) return false;
    if (++this.polls % CLOCK_EVERY !== 0) return true;
    this.over = performance.now() - this.since >= this.capMs;
    return !this.over;
  }

  /**
   * Futex-sleep on w[index] while it holds value, at most ms, off the count
   * of threads on a CPU. Only threads that sleep here may wait on w[index],
   * and only wake() may wake them: a wake credits the count for them.
   */
  sleep(w: Int32Array, index: number, value: number, ms: number): 'ok' | 'not-equal' | 'timed-out' {
    Atomics.sub(this.words, this.onCpu, 1);
    let r: 'ok' | 'not-equal' | 'timed-out' = 'timed-out';
    try {
      r = Atomics.wait(w, index, value, ms);
    } finally {
      if (r !== 'ok') Atomics.add(this.words, this.onCpu, 1); // woken by wake(): already counted
    }
    return r;
  }

  /** Wake the threads sleeping on w[index] (sleep()), and count them as on a CPU from now. */
  wake(w: Int32Array, index: number): number {
    // (a woken thread that runs and sleeps again before the add leaves the
    // count one low for that moment: at worst a spin that should have slept)
    const n = Atomics.notify(w, index);
    if (n > 0) Atomics.add(this.words, this.onCpu, n);
    return n;
  }

  /** This thread starts running simulated work (a worker CPU entering its round loop). */
  enter(): void {
    Atomics.add(this.words, this.onCpu, 1);
  }

  /** This thread stops running simulated work. */
  leave(): void {
    Atomics.sub(this.words, this.onCpu, 1);
  }
}
