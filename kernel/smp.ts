// Cross-CPU control words in shared memory: TLB-shootdown IPIs and the trap
// mailbox through which a worker CPU enters the kernel (page faults, syscalls).
//
// The kernel runs on the boot CPU (cpu 0, the main thread). Other CPUs are
// worker threads running user code. Protocols (all words accessed atomically):
//
// IPI: as native_flush_tlb_multi does, the kernel first bumps IPI[c] of every
// target to a new generation, then waits until each ACK[c] reaches it,
// spinning before it sleeps. (No CPU sleeps on its IPI word: one that sleeps
// is offline, in a trap or between accesses, and is not waited for.) A CPU
// checks IPI at every access boundary, on leaving a trap, and while it spins
// between accesses (a migration entry, a lockstep turn: cpu.ts idleWhile);
// when IPI != ACK it empties its TLB
// and then stores ACK = IPI (seq-cst: the flush happens before the kernel sees
// the ack, so the kernel may then reuse the frame or change its KeyID). A CPU
// that is OFFLINE is not waited for, and neither is one inside a trap
// (REQ != RESP) or asleep between accesses (WAIT = 1): it is blocked
// until the kernel answers (or the word it sleeps on changes) and polls IPIs
// before its next access (cpu.ts), like a CPU in lazy TLB mode. An access is
// never split by an ack: translate + engine access run between two IPI checks.
//
// Trap: the CPU writes NR and ARGS, then bumps REQ and notifies; the kernel
// (which waits on REQ with Atomics.waitAsync) runs the call, writes RET, sets
// RESP = REQ and notifies. The CPU waits on RESP while polling IPIs.
// A request is outstanding while REQ != RESP, whoever serves it.
//
// Doorbell: one word after the per-CPU blocks. A CPU bumps it (and notifies)
// whenever it wants the kernel's attention (a trap, a finished round), so a
// kernel thread that has nothing else to do can sleep on one word.
//
// Host CPUs: the word after the doorbell holds how many host CPUs the
// simulator's threads share; hand-offs spin freely only if the simulated CPUs
// (one thread each) fit them (backoff.ts).
//
// Busy: the word after the kernel-waits word holds until when (ms after the
// descriptor's epoch) the host counts as busy, whatever the thread count
// says: other processes hold its CPUs, and the hand-offs take the adaptive
// regime of a crowded machine (backoff.ts, HostLoad).
//
// Online bell: the word after the busy word is 1 while the kernel's work
// waits for a CPU to come online for a round (trap.ts, TrapServer.pump); a
// CPU that comes online then rings the doorbell.
//
// Kernel waits: the word after that is 1 while the kernel waits for an ack
// that did not come at once, when the simulated CPUs outnumber the host's. A
// CPU waiting for its trap reply then sleeps instead of spinning: the CPU
// the kernel waits for may be the one its spin keeps off the host CPU. (As a
// paravirtual TLB flush does not wait for a preempted vCPU, arch/x86/kernel/
// kvm.c kvm_flush_tlb_multi, it lets the CPU that must ack run.)
//
// Rounds left: the word after the online bell counts the CPUs that have
// not yet finished the round under way; whoever hands a round out sets it
// (workloads/). A CPU that finishes rings the doorbell only if it was the
// last (the word then reaches 0; below 0, no one set it, and every CPU
// rings): the kernel, asleep until the round is over, is woken once.
//
// Host CPU: HOST[c] holds the host CPU that worker CPU c's thread started
// its last round on (-1: none yet, or the host does not say); spreadOut
// below reads it.

import { hostPlacement, hostSchedstat, hostYield } from '../hardware/xts-native.js';
import { HostLoad, Spinner, SPIN_CAP_MS } from './backoff.js';

export const CPU_WORDS = 16;
export const W_ONLINE = 0;
export const W_IPI = 1;
export const W_ACK = 2;
export const W_REQ = 3;
export const W_RESP = 4;
export const W_NR = 5;
export const W_MM = 6; // id of the mm this CPU runs (for mm_cpumask-like IPI targeting)
export const W_ROUND = 7; // rounds of user work this CPU has finished (workloads/)
export const W_WAIT = 8; // 1 while this CPU sleeps between accesses: on a migration entry (migration_entry_wait) or a lockstep turn (cpu.ts idleWhile)
export const W_TAKEN = 9; // the last trap request (REQ) of this CPU the kernel began to serve (trap.ts)
export const W_HOST = 10; // the host CPU this CPU's thread started its last round on, -1 unknown (spreadOut)
export const CPU_ARGS = 8; // Float64 slots per CPU: 6 args, ret, spare
export const A_RET = 6;

export interface SmpDescriptor {
  readonly sab: SharedArrayBuffer;
  readonly argSab: SharedArrayBuffer;
  readonly nrCpus: number;
  /** absolute ms (performance.timeOrigin + performance.now()) at create: the busy word's clock starts there */
  readonly epoch: number;
  /** each thread reads its schedstat for the busy word (HostLoad); false: only the thread count decides the regime */
  readonly probeLoad: boolean;
}

/** The busy word's value until a thread finds the host busy: before any clock (a clock mocked to before the epoch, in tests, included). */
export const NEVER_BUSY = -0x80000000;

/**
 * Rounds in a row, each after a round without traps, that a worker CPU's
 * thread may start on the host CPU of a lower-numbered worker CPU's thread
 * before it moves off (spreadOut): a few hundred microseconds of rounds.
 */
export const STACKED_ROUNDS = 16;

/** The calling thread's host CPU, and its move to another (hardware/xts-native.ts hostPlacement). */
export interface HostPlacement {
  readonly cpu: () => number;
  readonly moveOff: () => number;
}

/** Polls of an ack before the kernel sleeps on it: an ack takes a CPU one access boundary. */
const ACK_SPIN = 2000;
/** Polls of an ack before, threads outnumbering host CPUs, CPUs in traps are asked to sleep. */
const ACK_YIELD = 64;

export class Smp {
  readonly nrCpus: number;
  readonly words: Int32Array;
  readonly args: Float64Array;
  /** shootdown's per-CPU generations, made once */
  private readonly gens: Int32Array;
  /** sched_yield for spin-waits that ask for it when crowded (backoff.ts); null without the native addon, and where a test says so */
  yieldCpu: (() => void) | null = hostYield();
  /** this thread's host CPU and a move off it, for spreadOut; null without the native addon, and where a test says so */
  placement: HostPlacement | null = hostPlacement();
  /** spreadOut: rounds in a row this thread started on a lower worker CPU's host CPU */
  private stacked = 0;
  /** moves spreadOut made on this thread */
  moves = 0;
  /** the host's load as this thread sees it (backoff.ts); its probe is null without the addon, and where the kernel's config says so */
  readonly load: HostLoad;
  /** what other threads attach to */
  private readonly d: SmpDescriptor;

  private constructor(d: SmpDescriptor) {
    this.d = d;
    this.nrCpus = d.nrCpus;
    this.words = new Int32Array(d.sab);
    this.args = new Float64Array(d.argSab);
    this.gens = new Int32Array(d.nrCpus);
    this.load = new HostLoad(this.words, this.busyWord, d.epoch, d.probeLoad ? hostSchedstat() : null);
  }

  /**
   * @param hostCpus the host CPUs the simulator's threads share: hand-offs
   * spin freely only when the simulated CPUs fit them (backoff.ts); by
   * default one per simulated CPU
   * @param probeLoad the regime also follows the host's load, as each thread
   * sees it (backoff.ts HostLoad); false: the thread count alone decides
   */
  static create(nrCpus: number, hostCpus = nrCpus, probeLoad = true): Smp {
    if (!Number.isInteger(nrCpus) || nrCpus < 1) throw new RangeError(`nrCpus: expected >= 1, got ${nrCpus}`);
    if (!Number.isInteger(hostCpus) || hostCpus < 1) throw new RangeError(`hostCpus: expected >= 1, got ${hostCpus}`);
    const s = new Smp({
      sab: new SharedArrayBuffer((nrCpus * CPU_WORDS + 6) * 4),
      argSab: new SharedArrayBuffer(nrCpus * CPU_ARGS * 8),
      nrCpus,
      epoch: performance.timeOrigin + performance.now(),
      probeLoad,
    });
    Atomics.store(s.words, W_ONLINE, 1); // the boot CPU
    for (let c = 0; c < nrCpus; c++) Atomics.store(s.words, s.w(c, W_HOST), -1);
    Atomics.store(s.words, s.doorbell + 1, hostCpus);
    Atomics.store(s.words, s.busyWord, NEVER_BUSY);
    return s;
  }

  static attach(d: SmpDescriptor): Smp {
    return new Smp(d);
  }

  descriptor(): SmpDescriptor {
    return this.d;
  }

  w(cpu: number, word: number): number {
    return cpu * CPU_WORDS + word;
  }

  /**
   * At the start of a round, on worker CPU `cpu`'s thread: note the host CPU
   * the thread runs on (HOST), and move the thread to another host CPU when
   * it has started STACKED_ROUNDS rounds in a row on the host CPU of a
   * lower-numbered worker CPU, each after a round without traps (`quiet`),
   * while there is a host CPU for every worker CPU (the kernel thread
   * shares). Returns whether it moved.
   *
   * Between rounds a worker CPU polls with sched_yield (backoff.ts):
   * its thread never leaves the runqueue, and Linux's load balancer does not
   * take a task that ran within the last half millisecond (can_migrate_task
   * refuses a cache-hot one, task_hot with sysctl_sched_migration_cost,
   * kernel/sched/fair.c, until enough balancing attempts have failed), nor
   * a running one. So two worker CPUs' threads the host once put on one host
   * CPU stayed there, their rounds done one after the other, while the
   * kernel thread had the other host CPU to itself and slept. Measured on the
   * 2-vCPU VM, enosys-fallback with 2 worker CPUs (a round of 8 pages every
   * 14 us): stretches of 25-200 ms at 40-48 us a round, both worker threads
   * on one host CPU switching 9000-12000 times in 20 ms (their schedstat),
   * and in `run` 1-2 processes of 9 at 3x the others' per-op time (cv
   * 47-74% in the enosys-fallback cells it hit). With the move, two runs of
   * 9 processes a side, 14 cells at 2 CPUs: no process above 1.8x its cell's
   * median (6 before), the largest cv 10.3% and 10.0% (74.1% and 52.6%).
   * A round that trapped leaves the placement alone: there the kernel
   * thread's share of a host CPU decides (pinning each worker thread to a
   * host CPU of its own, with taskset on the same VM, made swap
   * madvise-encrypt with 2 worker CPUs 9x slower, 11 -> 101 us an op).
   */
  spreadOut(cpu: number, quiet: boolean): boolean {
    const p = this.placement;
    if (p === null) return false;
    const w = this.words;
    const here = p.cpu();
    Atomics.store(w, this.w(cpu, W_HOST), here);
    let shared = false;
    if (quiet && here >= 0 && this.nrCpus - 1 <= this.hostCpus)
      for (let c = 1; c < cpu && !shared; c++) shared = Atomics.load(w, this.w(c, W_HOST)) === here;
    if (!shared) {
      this.stacked = 0;
      return false;
    }
    if (++this.stacked < STACKED_ROUNDS) return false;
    this.stacked = 0;
    if (p.moveOff() < 0) return false;
    this.moves++;
    return true;
  }

  /** Index of the doorbell word. */
  get doorbell(): number {
    return this.nrCpus * CPU_WORDS;
  }

  /** A spin-then-sleep policy for one thread's hand-offs (backoff.ts): it follows this thread's view of the host's load. */
  spinner(): Spinner {
    return new Spinner(this.threadsFit, SPIN_CAP_MS, this.yieldCpu, this.load);
  }

  /** The simulated CPUs (one thread each) fit the host CPUs they share: the thread count's half of the regime. */
  get threadsFit(): boolean {
    return this.nrCpus <= this.hostCpus;
  }

  /** Host CPUs the simulator's threads share. */
  get hostCpus(): number {
    return Atomics.load(this.words, this.doorbell + 1);
  }

  /**
   * The simulated CPUs (one thread each) outnumber the host CPUs they share,
   * or the host is busy (HostLoad: other processes hold its CPUs).
   */
  get crowded(): boolean {
    return !this.threadsFit || this.load.busy(performance.now());
  }

  /** Index of the busy word: until when (ms after the epoch) the host counts as busy (HostLoad). */
  get busyWord(): number {
    return this.doorbell + 3;
  }

  /** Index of the online-bell word: 1 while the kernel waits for a CPU to come online (a CPU that does rings the doorbell). */
  get onlineBell(): number {
    return this.doorbell + 4;
  }

  /** Index of the rounds-left word: CPUs of the round under way that have not finished it (WorkerCpu.roundDone). */
  get roundsLeft(): number {
    return this.doorbell + 5;
  }

  /** Index of the kernel-waits word: 1 while CPUs in traps should sleep, not spin. */
  get kernelWaits(): number {
    return this.doorbell + 2;
  }

  ring(): void {
    Atomics.add(this.words, this.doorbell, 1);
    Atomics.notify(this.words, this.doorbell);
  }

  setOnline(cpu: number, mmId: number): void {
    Atomics.store(this.words, this.w(cpu, W_MM), mmId);
    Atomics.store(this.words, this.w(cpu, W_ONLINE), 1);
  }

  setOffline(cpu: number): void {
    Atomics.store(this.words, this.w(cpu, W_ONLINE), 0);
    Atomics.notify(this.words, this.w(cpu, W_ACK));
  }

  /** CPUs other than `self` that run mm `mmId` (the mm_cpumask): the IPI targets. */
  targets(self: number, mmId: number): number {
    let n = 0;
    for (let c = 0; c < this.nrCpus; c++)
      if (c !== self && Atomics.load(this.words, this.w(c, W_MM)) === mmId) n++;
    return n;
  }

  /**
   * Kernel side of a TLB shootdown for mm mmId: IPI every CPU that runs it,
   * then wait for the acks of those that may still use a translation. Returns
   * how many IPIs were sent (counted whether or not the CPU was online or in a
   * trap, as mm_cpumask is, so counts do not depend on timing).
   */
  shootdown(self: number, mmId: number): number {
    const w = this.words;
    const gens = this.gens;
    let sent = 0;
    for (let c = 0; c < this.nrCpus; c++) {
      gens[c] = 0;
      if (c === self || Atomics.load(w, this.w(c, W_MM)) !== mmId) continue;
      sent++;
      gens[c] = Atomics.add(w, this.w(c, W_IPI), 1) + 1;
    }
    const crowded = this.crowded;
    let asked = false;
    for (let c = 0; c < this.nrCpus; c++) {
      const gen = gens[c];
      if (gen === 0) continue;
      for (let spin = 0; ; spin++) {
        const ack = Atomics.load(w, this.w(c, W_ACK));
        // the generations are 32-bit counters that wrap: compare mod 2^32
        if (((ack - gen) | 0) >= 0 || Atomics.load(w, this.w(c, W_ONLINE)) === 0) break;
        if (Atomics.load(w, this.w(c, W_REQ)) !== Atomics.load(w, this.w(c, W_RESP))) break; // in a trap
        if (Atomics.load(w, this.w(c, W_WAIT)) === 1) break; // asleep between accesses
        if (spin === ACK_YIELD && crowded && !asked) {
          Atomics.store(w, this.kernelWaits, 1);
          asked = true;
        }
        if (spin >= ACK_SPIN) Atomics.wait(w, this.w(c, W_ACK), ack, 0.05);
      }
    }
    if (asked) Atomics.store(w, this.kernelWaits, 0);
    return sent;
  }
}
