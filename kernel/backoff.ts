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
// for its next round (cpu-worker.ts). Every trap reply keeps the adaptive
// budget (its wait yields only now and then, while the kernel has not
// taken its request: the last paragraph below): a
// thread that yield-spins there holds a CPU the load balancer would give
// to the kernel thread and the trapping CPU, which otherwise queue on one
// (swap t2 went 1.4-1.6x slower with yield-spins on every wait). A worker
// whose round trapped kept the budget too for its next round's wait, until
// it was measured alone: between two rounds of file-backed faults the
// kernel works 20-28 us, past the budget, so both workers slept and a
// round began with their futex wake-ups (the kernel waited 50-100 us a
// round beyond its slowest CPU). Yielding there instead, ab, 12-13
// processes, 2 worker CPUs: fault memfd-secret -12.2%, guest-memfd -11.4%,
// dev-mktme -9.1%, enosys-fallback guest-memfd 89.4 -> 39.3 us (-56.8%),
// each p_holm <= 0.012; swap -3.8% and -3.7% (n.s.); enosys-fallback on the
// unpatched kernel +2.2% and +2.8% (p_holm 0.018, under the 5% threshold);
// fault and migration of anonymous memory, dax-stacking and qemu-guest
// within -3.0..+1.6%, none significant; 1 worker CPU (its threads fit:
// no yield) unchanged. It may cost on a busy host, where processes fall
// into a regime of milliseconds an op before and after alike: with two
// busy loops on the two vCPUs, enosys-fallback memfd-secret t2 had a median
// of 118 us an op in three runs of 3 processes before (one process in the
// millisecond regime in two of them), 16 and 18 ms in two runs after (all
// processes). A gate that yields only while HostLoad finds the host quiet
// gave 16, 12 ms and 132 us on the busy host, and on the quiet host it
// gave back the whole gain: the simulator's own three threads on two vCPUs
// make HostLoad find the host busy at a third of these waits (ab against
// the ungated build: fault memfd-secret +19.6%, enosys-fallback of the
// three file-backed designs +113..+126%). Not kept. Measured
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
// file-backed faults about 20x slower. None of them is used. The one move
// the simulator makes is a worker thread's off a host CPU it shares with
// another worker thread while its rounds make no trap (smp.ts spreadOut):
// a move, not a pin, after which the host's scheduler places it again.

// A busy host. Whether the threads fit is not only a matter of counting
// them: other processes may hold the host CPUs. Then a spin to the cap is
// the worst choice of all: the thread waited for sits on a runqueue behind
// another process's thread, the spinner burns its own share, and a hand-off
// waits for a time slice. Measured on this 2-vCPU VM with two busy-loop
// processes beside one worker CPU (the threads "fit"): swap took 8.1-8.4 ms
// an op against 25-31 us quiet, fault plain-mmap 63.6 against 3.4-5.5 us;
// with the adaptive regime of crowded machines instead, 33.9 and 6.2 us.
// Yet on a quiet host the adaptive regime costs the 1-CPU cells up to 30%
// (ab, the same processes: enosys-fallback +24 to +30%, dax-stacking +15 to
// +22%, migration +6%). So the regime follows the host's load as the
// threads see it: each thread reads its own time on a CPU and time waiting
// on a runqueue (Linux's schedstat, through the native addon) every
// LOAD_WINDOW_MS, and when it waited for more than BUSY_WAIT_SHARE of its
// runnable time, every thread of the simulator takes the adaptive regime
// for BUSY_HOLD_MS (a shared word), as if it were crowded. That share of
// 100 ms windows, measured on this VM: one worker CPU, quiet, 0.00-0.35
// (median 0.01-0.10) on the kernel thread; with the two busy loops 0.47-0.59
// on both threads while they spin, and 0.41-0.54 (worker CPU) while they
// sleep in the adaptive regime, so the hold keeps being renewed.
// Without the addon, or where Linux does not keep schedstat, the regime
// is the thread count's alone.
//
// But a thread that sleeps and is woken waits on the runqueue too, from its
// wake-up until it runs, and on a VM an idle vCPU takes tens of
// microseconds to wake (WAKE_MS). In the adaptive regime the threads sleep
// and are woken at nearly every hand-off, so on a quiet host the hold kept
// renewing itself once a busy start (V8 compiling on its own threads) had
// set it. Measured with 1 worker CPU, fault madvise-encrypt, on the quiet
// 2-vCPU VM: the kernel thread's 100 ms windows waited 18-67% of their
// runnable time, at 13-106 us a wait (415-765 waits a window), and a
// round's hand-offs cost 30-34 us (median) instead of 1.5 us, for the whole
// 1.3 s of the cell; without the probe they fell to 1.5 us once the start
// was over. With the two busy loops the windows waited 90-98%, at 1.7-3.0
// ms a wait (the other processes' time slices: 26-56 waits a window). So a
// window finds the host busy only if its waits were long as well, at least
// BUSY_MIN_WAIT_MS each on average: the number of waits is schedstat's
// third figure, the times the thread was put on a CPU. Where the probe does
// not give it (an addon built before it did), the share alone decides.
//
// Measured with the two busy loops, 1 worker CPU (a single-cell script,
// 1.5 s of rounds): swap plain-mmap 8119 us -> 30.9 us an op, fault
// plain-mmap 63.6 -> 5.2 us, fault madvise-encrypt 4.9 us. On the quiet VM,
// ab against the build before (10 processes, the 1-CPU cells of fault,
// swap and swap over dm-crypt, migration, enosys-fallback, dax-stacking and
// qemu-guest; plain-mmap, madvise-encrypt): no cell changed significantly,
// -0.4 to +2.8%.
//
// With migration's wait for a running CPU as well (workloads/migration.ts,
// TrapServer.pump), the two busy loops and `run` of 20 cells (swap, fault,
// migration, enosys-fallback, dax-stacking; plain-mmap, madvise-encrypt;
// 1 and 2 worker CPUs; 2 processes): 151 s before both, 37.6 s after. 1
// worker CPU, per op: swap 3980-7964 us -> 34.7-45.8 us, enosys-fallback
// 2047-4034 -> 56.5 us, dax-stacking 66-127 -> 2.9-3.3 us, fault
// madvise-encrypt 65.5 -> 4.6 us, migration 36-40 -> 17-20 us. Quiet, ab
// against the build before both (10 processes, the same 20 cells): no cell
// changed significantly, -1.2 to +5.7%.

/** Each thread's window for its share of runnable time spent waiting for a CPU, ms. */
export const LOAD_WINDOW_MS = 100;
/** A window counts only with at least this much runnable time in it, ms (a mostly asleep thread says little). */
export const LOAD_MIN_RUNNABLE_MS = 10;
/** Above this share of its runnable time waiting for a CPU, a thread finds the host busy. */
export const BUSY_WAIT_SHARE = 0.4;
/**
 * ... and only if it waited at least this long, ms, for each time it was put
 * on a CPU: longer than a wake-up (WAKE_MS, and the 13-106 us measured in
 * the adaptive regime), shorter than another process's time slice (1.7-3.0
 * ms measured).
 */
export const BUSY_MIN_WAIT_MS = 0.25;
/** How long every thread then takes the adaptive regime, ms. */
export const BUSY_HOLD_MS = 500;

/**
 * The host's load as the simulator's threads see it. One per thread (its
 * windows are its own) on a word shared by all of them: the time, ms after
 * `epoch` (absolute ms, performance.timeOrigin + performance.now()), until
 * which the host counts as busy.
 */
export class HostLoad {
  private next = -Infinity;
  /** [ns on a CPU, ns waiting for one, times put on a CPU (0 where the probe does not say)] */
  private readonly now = new Float64Array(3);
  private readonly last = new Float64Array(3);
  private have = false;

  /**
   * @param probe the calling thread's ns on a CPU, ns waiting for one and,
   * where it can, the times it was put on a CPU, into out[0..2] (the
   * addon's schedstat); null: never busy
   */
  constructor(
    private readonly words: Int32Array,
    private readonly index: number,
    private readonly epoch: number,
    readonly probe: ((out: Float64Array) => boolean) | null,
  ) {}

  /** ms since the epoch: the shared word's clock */
  private ms(now: number): number {
    return Math.floor(performance.timeOrigin + now - this.epoch);
  }

  /** Is the host busy? `now`: this thread's performance.now(). Samples the thread's schedstat once a window. */
  busy(now: number): boolean {
    if (now >= this.next && this.probe !== null) this.sample(now);
    return Atomics.load(this.words, this.index) > this.ms(now);
  }

  private sample(now: number): void {
    this.next = now + LOAD_WINDOW_MS;
    const c = this.now, l = this.last;
    if (!this.probe!(c)) {
      this.have = false;
      return;
    }
    if (this.have) {
      const waited = c[1] - l[1];
      const runnable = c[0] - l[0] + waited;
      // (a probe that does not count leaves both at 0: no waits, so only the share decides)
      const waits = c[2] - l[2];
      if (runnable >= LOAD_MIN_RUNNABLE_MS * 1e6 && waited > BUSY_WAIT_SHARE * runnable && waited >= BUSY_MIN_WAIT_MS * 1e6 * waits) {
        const until = this.ms(now) + BUSY_HOLD_MS;
        if (until > Atomics.load(this.words, this.index)) Atomics.store(this.words, this.index, until);
      }
    }
    l.set(c);
    this.have = true;
  }
}

/**
 * What waking a thread asleep on a futex costs here, in ms: a crowded
 * kernel thread with nothing to serve polls with sched_yield this long
 * before it sleeps (trap.ts, TrapServer.pump), as long as the sleep it may
 * save (a spin as long as a block costs is within 2x of the best choice
 * whatever the wait turns out to be: Karlin, Li, Manasse and Owicki,
 * "Empirical studies of competitive spinning for a shared-memory
 * multiprocessor", SOSP 1991). Measured on the 2-vCPU VM, two node threads:
 * from Atomics.notify to the woken thread running, with its host CPU left
 * idle for 0.2 ms before, 37.8-38.1 us p10, 39.8-40.3 us median, 42.7-43.2 us
 * p90 (3 processes of 2000 wakes).
 */
export const WAKE_MS = 0.04;

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
  /** this wait spins to the cap: the threads fit and the host is not busy (HostLoad) */
  private fits: boolean;

  /**
   * @param allowed true when the simulated CPUs fit the host CPUs (spin to
   * the cap); false for the adaptive regime
   * @param yieldCpu sched_yield (the native addon's), for waits that ask for
   * yielding polls; null: they poll on the adaptive budget like the rest
   * @param load the host's load: while busy, a spinner whose threads fit
   * takes the adaptive regime; null: the thread count alone decides
   */
  constructor(
    private readonly allowed: boolean,
    private readonly capMs = SPIN_CAP_MS,
    private readonly yieldCpu: (() => void) | null = null,
    private readonly load: HostLoad | null = null,
  ) {
    this.fits = allowed;
  }

  /** The current wait spins to the cap (the threads fit a host that is not busy); false: the adaptive regime. */
  get fitting(): boolean {
    return this.fits;
  }

  /**
   * A wait begins (and the previous one, if any, is over). `yielding`: in
   * the adaptive regime, poll with sched_yield up to the cap instead of on
   * the budget, where there is a yield to call.
   */
  start(yielding = false): void {
    this.polls = 0;
    this.over = false;
    this.since = performance.now(); // (the budget's polls do not look at it)
    this.fits = this.allowed && !(this.load !== null && this.load.busy(this.since));
    this.yielding = yielding && !this.fits && this.yieldCpu !== null;
    // (with the threads fitting, the budget is never used: nothing to keep)
    if (!this.fits) {
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
    if (!this.fits && !this.yielding) return ++this.polls < this.budget;
    if (this.over) return false;
    if (this.yielding) (this.yieldCpu as () => void)();
    if (++this.polls % (this.yielding ? YIELD_CLOCK_EVERY : CLOCK_EVERY) !== 0) return true;
    this.over = performance.now() - this.since >= this.capMs;
    return !this.over;
  }

  /** Futex-sleep on w[index] while it holds value, at most ms. */
  sleep(w: Int32Array, index: number, value: number, ms: number): 'ok' | 'not-equal' | 'timed-out' {
    if (this.fits) return Atomics.wait(w, index, value, ms);
    const t = performance.now();
    const r = Atomics.wait(w, index, value, ms);
    this.sleptMs = Math.max(this.sleptMs, 0) + performance.now() - t;
    return r;
  }
}
