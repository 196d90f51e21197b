// One cell's machine, kernel, process and worker CPUs. The main thread is the
// kernel's CPU (cpu 0): it serves the workers' traps between its own work and
// runs the process's control path (the design's userspace helper: add_key,
// mmap, ...). Worker CPUs 1..threads run the data path on their share of pages.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Machine } from '../hardware/machine.js';
import { releaseBound } from '../hardware/xts-native.js';
import { getProfile } from '../hardware/profiles.js';
import { CPU_KEY, type Allocation, type EncryptionDesign, type UserEnv } from '../interfaces/contract.js';
import { getDesign } from '../interfaces/registry.js';
import { snapshotCounters, type Counter, type ProcCount } from '../interfaces/conformance.js';
import { ALL_FEATURES, KERNEL_COUNTERS, Kernel, NO_FEATURES, type KernelCounter, type Task } from '../kernel/kernel.js';
import { W_ONLINE, W_ROUND } from '../kernel/smp.js';
import { TrapServer, cpuDescriptor } from '../kernel/trap.js';
import {
  FLAG_LOCKSTEP,
  FLAG_VERIFY_ONLY,
  FLAG_WRITE_ONLY,
  KIND_PARK,
  KIND_ROUND,
  O_ACCESSES,
  O_ERRORS,
  O_FAULT,
  O_WORK,
  P_ADDR,
  P_END,
  P_FIRST,
  P_FLAGS,
  P_PAGES,
  P_PASSES,
  P_ROUND,
  P_SEED,
  R_CMD,
  R_DONE,
  R_FAILED,
  R_KIND,
  RoundBoard,
  shareStart,
} from './board.js';
import type { CpuReport, FromCpu, RoundSpec, ToCpu } from './protocol.js';
import type { Workload } from './workload.js';

export interface CellConfig {
  readonly design: string;
  readonly hardware: string;
  readonly kernel: 'patched' | 'unpatched';
  readonly workload: Workload;
  /** worker CPUs */
  readonly threads: number;
  readonly seed: number;
  readonly backend: string;
  /** folder for swap files and DAX images */
  readonly workdir: string;
  /** the swap device encrypts what it stores (swap over dm-crypt); for workloads that swap */
  readonly encryptedSwap?: boolean;
  /** host CPUs the simulator's threads share (kernel/backoff.ts); by default os.availableParallelism() */
  readonly hostCpus?: number;
}

/** Two kernels' values of one counter: high-water marks take the max, event counts add. */
const carry = (c: KernelCounter, a: number, b: number): number =>
  c === 'vma_count_max' || c === 'pinned_pages' ? Math.max(a, b) : a + b;

const WORKER_URL = new URL('./cpu-worker.js', import.meta.url);

/**
 * Worker CPUs left parked by closed cells, for the next cell of this process:
 * starting one (a thread, its imports, the crypto backend) costs tens of ms,
 * a few times a cell's own counting round. Idle ones are unref'd, so they
 * never keep the process alive, and one that dies idle is dropped.
 */
const idle: Worker[] = [];

function takeWorker(): Worker {
  const w = idle.pop();
  if (w === undefined) return new Worker(WORKER_URL);
  for (const e of EVENTS) w.removeAllListeners(e);
  w.ref();
  return w;
}

/** The events a session listens to (only these: Worker keeps listeners of its own). */
const EVENTS = ['message', 'error', 'exit'] as const;

function giveBack(w: Worker): void {
  for (const e of EVENTS) w.removeAllListeners(e);
  const drop = (): void => {
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
  };
  w.on('error', drop);
  w.on('exit', drop);
  w.unref();
  idle.push(w);
}


export class CellSession {
  readonly cfg: CellConfig;
  readonly design: EncryptionDesign;
  readonly machine: Machine;
  readonly pages: number;
  k!: Kernel;
  task!: Task;
  env!: UserEnv;
  /** the region the workload works on, when it keeps one across rounds */
  region: Allocation | null = null;
  /**
   * Rounds of 2 or more CPUs make their accesses in lockstep, one at a time
   * in the order one CPU would make them (board.ts FLAG_LOCKSTEP). The cell
   * sets it for its setup and counting round (cell.ts), whose counters must
   * not depend on how the host schedules the CPUs; timed rounds run free.
   */
  lockstep = false;
  private server!: TrapServer;
  private readonly workers: Worker[] = [];
  private waiting = new Map<number, { resolve: (m: FromCpu) => void; reject: (e: Error) => void }>();
  private failure: Error | null = null;
  private readonly board: RoundBoard;
  /**
   * The CPUs' rounds so far (runCpus), as sums: the ms from handing a round
   * out to seeing it done (the kernel thread's clock), the slowest CPU's
   * work in each, and every CPU's work (each CPU's own clock). What the
   * kernel waited beyond the slowest CPU's work is the hand-offs' cost and
   * the CPUs' uneven starts (bench/phases.ts).
   */
  readonly cpuRounds = { rounds: 0, waitMs: 0, slowestMs: 0, workMs: 0 };
  /** kernel counters of kernels that ran before a power cycle */
  private readonly carried = Object.fromEntries(KERNEL_COUNTERS.map((c) => [c, 0])) as Record<KernelCounter, number>;

  private constructor(cfg: CellConfig) {
    this.cfg = cfg;
    this.design = getDesign(cfg.design);
    this.pages = cfg.workload.pages;
    if (!Number.isInteger(cfg.threads) || cfg.threads < 1 || cfg.threads > 64)
      throw new RangeError(`threads: expected an integer in [1, 64], got ${cfg.threads}`);
    this.board = RoundBoard.create(cfg.threads + 1);
    const keys = getProfile(cfg.hardware).nrKeyids;
    const frames = Math.max(this.pages * 2 + 64, cfg.workload.frames?.(keys) ?? 0);
    this.machine = Machine.create({
      profile: cfg.hardware,
      backend: cfg.backend,
      memory: { nodeFrames: [frames, frames], daxFrames: cfg.workload.dax ? this.pages : 0 },
      nrCpus: cfg.threads + 1,
    });
  }

  /** Boot the machine, start the worker CPUs. */
  static async open(cfg: CellConfig): Promise<CellSession> {
    const s = new CellSession(cfg);
    s.boot();
    for (let c = 1; c <= cfg.threads; c++) {
      const w = takeWorker();
      w.on('message', (m: FromCpu) => s.onMessage(c, m));
      w.on('error', (e) => s.onFailure(c, e));
      w.on('exit', (code) => {
        if (code !== 0) s.onFailure(c, new Error(`cpu ${c} exited with code ${code}`));
      });
      s.workers.push(w);
    }
    await s.attachAll();
    return s;
  }

  /** (Re)boot the kernel on this machine; workers must attach again. */
  private boot(): void {
    const cfg = this.cfg;
    const wl = cfg.workload;
    const swap = wl.swap ? { path: `${cfg.workdir}/swap`, slots: this.pages * 2, encrypt: cfg.encryptedSwap ?? false } : null;
    this.k = new Kernel(this.machine, {
      features: cfg.kernel === 'patched' ? ALL_FEATURES : NO_FEATURES,
      swap,
      pgtableSlots: Math.max(256, wl.pgtableSlots?.(this.machine.profile.nrKeyids) ?? 0),
      hostCpus: cfg.hostCpus ?? availableParallelism(),
    });
    this.design.install(this.k);
    this.task = this.k.spawn({ memLimit: wl.memLimit(this.pages, this.cfg.threads) });
    const k = this.k;
    const task = this.task;
    this.env = { sys: (nr, ...a) => k.syscall(task, nr, ...a), cpu: k.localCpu(task) };
    this.server = new TrapServer(k, task);
    for (let c = 1; c <= cfg.threads; c++) {
      this.server.serve(c);
      // in the mm's cpumask from now on, so IPI counts do not depend on start-up timing
      k.smp.setOnline(c, task.mm.id);
    }
  }

  private onMessage(cpu: number, m: FromCpu): void {
    const w = this.waiting.get(cpu);
    if (w === undefined) {
      if (m.type === 'fail') this.failure ??= new Error(`cpu ${cpu}: ${m.message}`);
      return;
    }
    this.waiting.delete(cpu);
    if (m.type === 'fail') w.reject(new Error(`cpu ${cpu}: ${m.message}`));
    else w.resolve(m);
  }

  private onFailure(cpu: number, e: Error): void {
    this.failure ??= e;
    this.k.smp.setOffline(cpu); // never wait for its IPI acks again
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  private ask(cpu: number, msg: ToCpu): Promise<FromCpu> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting.set(cpu, { resolve, reject });
      this.workers[cpu - 1].postMessage(msg);
    });
  }

  private async attachAll(): Promise<void> {
    await Promise.all(
      this.workers.map((_, i) => this.ask(i + 1, { type: 'attach', desc: cpuDescriptor(this.k, this.task, i + 1), board: this.board.d })),
    );
  }

  /** Hand CPU c a command on the board. */
  private command(c: number, kind: number): number {
    const b = this.board;
    Atomics.store(b.i32, b.i(c, R_KIND), kind);
    const cmd = Atomics.add(b.i32, b.i(c, R_CMD), 1) + 1; // publishes KIND and the parameters
    Atomics.notify(b.i32, b.i(c, R_CMD));
    return cmd;
  }

  /**
   * One round of user work on every CPU, handed over on the round board.
   * Meanwhile this thread serves their traps synchronously and runs `step`
   * (the kernel's own work, one piece per call, false when done, 'wait'
   * while it waits for the CPUs: TrapServer.pump).
   */
  async runCpus(spec: RoundSpec, step?: () => boolean | 'wait'): Promise<CpuReport[]> {
    const b = this.board;
    const f = b.f64;
    const w = this.k.smp.words;
    const lockstep = this.lockstep && this.cfg.threads > 1;
    const flags = (spec.verifyOnly ? FLAG_VERIFY_ONLY : 0) | (spec.writeOnly ? FLAG_WRITE_ONLY : 0) | (lockstep ? FLAG_LOCKSTEP : 0);
    if (lockstep) Atomics.store(b.i32, b.turn, -this.cfg.threads); // before the commands publish the round
    const cpus = this.workers.map((_, i) => i + 1);
    const words = cpus.map((c) => this.k.smp.w(c, W_ROUND)); // rounds each CPU has finished
    const before = words.map((i) => Atomics.load(w, i));
    // only the last CPU to finish rings the doorbell (smp.ts, rounds left)
    Atomics.store(w, this.k.smp.roundsLeft, cpus.length);
    const handedOut = performance.now();
    for (const c of cpus) {
      const p = (slot: number, v: number) => (f[b.f(c, slot)] = v);
      p(P_ROUND, spec.round);
      p(P_ADDR, spec.addr);
      p(P_SEED, spec.seed);
      p(P_PASSES, spec.passes);
      p(P_FLAGS, flags);
      // each CPU a contiguous share, as a program splits an array among its
      // threads. CPUs that took every other page wrote the same cache lines
      // of PTEs (8 to a line) on every fault; ab against that, 2 worker
      // CPUs, 10-13 processes: fault plain-mmap -8.5%, migration plain-mmap
      // -7.0%, dax-stacking -12.2% and -7.3% (madvise-encrypt), each p_holm
      // <= 0.008; fault and migration madvise-encrypt -3.6% and -1.1%, swap
      // and enosys-fallback within +-2.3%, none significant; 1 CPU unchanged
      p(P_FIRST, shareStart(this.pages, this.cfg.threads, c - 1));
      p(P_END, shareStart(this.pages, this.cfg.threads, c));
      p(P_PAGES, this.pages);
      this.command(c, KIND_ROUND);
    }
    // polled millions of times a second while the CPUs work: no allocation per call
    const finished = (): boolean => {
      for (let i = 0; i < words.length; i++) if (Atomics.load(w, words[i]) === before[i]) return false;
      return true;
    };
    this.server.pump(finished, step);
    if (cpus.some((c) => Atomics.load(b.i32, b.i(c, R_FAILED)) === 1)) {
      // the CPU's 'fail' message says what happened; give it a turn to arrive
      for (let i = 0; i < 100 && this.failure === null; i++) await new Promise((r) => setTimeout(r, 1));
      throw this.failure ?? new Error('a CPU failed in a round');
    }
    const r = this.cpuRounds;
    r.rounds++;
    r.waitMs += performance.now() - handedOut;
    let slowest = 0;
    for (const c of cpus) {
      const work = f[b.f(c, O_WORK)];
      r.workMs += work;
      slowest = Math.max(slowest, work);
    }
    r.slowestMs += slowest;
    return cpus.map((c) => ({
      cpu: c,
      errors: f[b.f(c, O_ERRORS)],
      fault: f[b.f(c, O_FAULT)],
      accesses: f[b.f(c, O_ACCESSES)],
    }));
  }

  /**
   * From now on the worker CPUs run in `task`'s address space (a guest's:
   * kernel/kvm.ts) and its faults are served for it. Every fault traps: no
   * CPU handles one on its own there.
   */
  async runIn(task: Task): Promise<void> {
    this.park();
    await this.server.stop();
    this.server = new TrapServer(this.k, task);
    for (let c = 1; c <= this.cfg.threads; c++) {
      this.server.serve(c);
      this.k.smp.setOnline(c, task.mm.id);
    }
    await Promise.all(
      this.workers.map((_, i) => this.ask(i + 1, { type: 'attach', desc: cpuDescriptor(this.k, task, i + 1, false), board: this.board.d })),
    );
  }

  /** Send every CPU back to its message loop (before re-attaching or exiting). */
  private park(): void {
    const b = this.board;
    for (let c = 1; c <= this.cfg.threads; c++) {
      if (Atomics.load(b.i32, b.i(c, R_FAILED)) === 1) continue; // already parked itself
      const cmd = this.command(c, KIND_PARK);
      for (let spins = 0; Atomics.load(b.i32, b.i(c, R_DONE)) !== cmd; spins++) {
        if (this.failure !== null || spins > 2000) throw this.failure ?? new Error(`cpu ${c} does not park`);
        Atomics.wait(b.i32, b.i(c, R_DONE), Atomics.load(b.i32, b.i(c, R_DONE)), 5);
      }
    }
  }

  /** Is any worker CPU running user code right now? */
  anyCpuRunning(): boolean {
    for (let c = 1; c <= this.cfg.threads; c++) if (Atomics.load(this.k.smp.words, this.k.smp.w(c, W_ONLINE)) === 1) return true;
    return false;
  }

  /** Allocate the workload's memory through the design (careful program). */
  allocate(): Allocation | { failed: number } {
    return this.design.allocate(this.env, this.pages * 4096, CPU_KEY, true);
  }

  /** Power cycle: the persistent region goes to `image`; a new kernel boots; CPUs re-attach. */
  async powerCycle(image: string): Promise<void> {
    this.park();
    const before = this.k.counters.snapshot();
    for (const c of KERNEL_COUNTERS) this.carried[c] = carry(c, this.carried[c], before[c]);
    await this.server.stop();
    this.k.shutdown();
    this.machine.powerOff(image);
    this.machine.powerOn(image);
    this.boot();
    await this.attachAll();
  }

  /** Every counter of this cell so far (kernel counters summed over power cycles). */
  counters(integrity: number, procs?: ProcCount): Record<Counter, number> {
    const now = snapshotCounters(this.k, integrity, procs);
    for (const c of KERNEL_COUNTERS) now[c] = carry(c, now[c], this.carried[c]);
    return now;
  }

  async close(): Promise<void> {
    let parked = false;
    try {
      this.park();
      parked = true;
    } catch {
      /* a CPU that cannot park is terminated below */
    }
    if (parked && this.failure === null) {
      // parked in their message loops, attached to nothing that matters: the
      // next cell of this process may have them
      for (const w of this.workers) giveBack(w);
      await this.server.stop();
      this.k.shutdown();
      releaseBound(); // this thread's binding of the cell's memory and pages (hardware/xts-native.ts); each CPU lets its own go at its next attach
      return;
    }
    const exits = this.workers.map((w) => new Promise<void>((r) => w.once('exit', () => r())));
    for (const w of this.workers) w.postMessage({ type: 'exit' } satisfies ToCpu);
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 2000))]);
    await Promise.all(this.workers.map((w) => w.terminate()));
    await this.server.stop();
    this.k.shutdown();
    releaseBound();
  }
}
