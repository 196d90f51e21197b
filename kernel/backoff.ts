// Adaptive spinning before a futex sleep, for every hand-off between threads
// (trap reply, trap service, round board). A hand-off that usually completes
// within a few microseconds is worth polling for: a futex sleep and wake cost
// tens of microseconds on a VM. But when the machine is busy (more runnable
// threads than CPUs), a spinning thread takes the CPU from the very thread it
// waits for, and a fixed spin is far worse than sleeping at once. So the
// budget follows what happened: halved when a wait had to sleep anyway,
// doubled when the spin was enough (like the adaptive mutexes of glibc and
// the kernel's optimistic spinning, which give up when the owner is not running).
// A wait that slept but ended within NEAR_MS of going to sleep counts as a
// near miss: a longer spin would have caught it, so the budget grows; only a
// long sleep (the other side was not running) shrinks it. Without that, a
// budget once shrunk would never grow again, since no short spin catches a
// hand-off that takes a few hundred polls.
export class Backoff {
  /** polls to make before sleeping */
  spins: number;

  constructor(
    private readonly min = 8,
    private readonly max = 4000,
    start = 500,
  ) {
    this.spins = start;
  }

  /** The wait ended within the spin: spin as long again, or longer. */
  hit(): void {
    if (this.spins < this.max) this.spins <<= 1;
  }

  /** The wait had to sleep: the spin was wasted, spin less next time. */
  miss(): void {
    if (this.spins > this.min) this.spins >>= 1;
  }

  /** The wait slept for sleptMs after its spin: a near miss grows the budget, a long sleep shrinks it. */
  slept(sleptMs: number): void {
    if (sleptMs < NEAR_MS) this.hit();
    else this.miss();
  }
}

/** A sleep shorter than this (a futex round trip or two) was a near miss. */
export const NEAR_MS = 0.1;
