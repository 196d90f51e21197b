// A worker thread that is one CPU of the simulated machine, running a
// process's user code: stores and loads through its MMU and the engine, and
// traps to the kernel thread on faults. Between an 'attach' message and a
// park command it runs rounds from the round board (board.ts), not from
// messages, so a round costs no event-loop turn on either side.
import { parentPort } from 'node:worker_threads';
import { dataBuf, type DataBuf } from '../hardware/backend.js';
import { PAGE_SIZE } from '../hardware/types.js';
import { hostCompare, releaseBound } from '../hardware/xts-native.js';
import { PAGE_STEP_WORDS, streamInto } from '../interfaces/conformance.js';
import { WorkerCpu } from '../kernel/trap.js';
import {
  FLAG_LOCKSTEP,
  FLAG_VERIFY_ONLY,
  FLAG_WRITE_ONLY,
  KIND_PARK,
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
  P_SEED,
  R_CMD,
  R_DONE,
  R_FAILED,
  R_KIND,
  RoundBoard,
  TURN_ABORT,
} from './board.js';
import type { FromCpu, ToCpu } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('cpu-worker: must run in a worker thread');

// The read-back page and the pattern stream are this thread's alone, on
// SharedArrayBuffers so that the native backend binds them once and finds
// them by number on every page (hardware/xts-native.ts).
const got = new Uint8Array(new SharedArrayBuffer(PAGE_SIZE));
const gotBuf = dataBuf(got);
/** the addon's memcmp of bound buffers (hardware/xts-native.ts); null without the addon: Buffer.compare */
const cmp = hostCompare();

/**
 * The round's data: the seed's pattern stream, 4·pages + 1020 words, made
 * once per round (a few microseconds) and reused by every pass, store and
 * check. Page p's pattern is the 4 KiB at byte 16p of it (conformance.ts
 * streamInto), so nothing is generated or allocated per page. Grown, never shrunk.
 */
const WORDS_PER_PAGE = PAGE_SIZE >>> 2;
/** bytes from one page's pattern to the next's in the stream */
const STEP = PAGE_STEP_WORDS * 4;
let patBuf: Buffer<ArrayBufferLike> = Buffer.alloc(0);
let patWords: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
let patData: DataBuf = dataBuf(patBuf);
let patKey = '';

function patternsFor(seed: number, pages: number): Buffer<ArrayBufferLike> {
  const key = `${seed}/${pages}`;
  if (patKey !== key) {
    const n = pages * PAGE_STEP_WORDS + WORDS_PER_PAGE - PAGE_STEP_WORDS;
    if (patWords.length < n) {
      patBuf = Buffer.from(new SharedArrayBuffer(n * 4));
      patWords = new Uint32Array(patBuf.buffer, patBuf.byteOffset, n);
      patData = dataBuf(patBuf);
    }
    streamInto(seed, 0, n, patWords, 0);
    patKey = key;
  }
  return patBuf;
}

/**
 * Polls of the turn word, acking IPIs, before a CPU sleeps on it (a
 * migration entry's wait polls 1000: UserCpu.idleWhile). Where the threads do
 * not fit the host CPUs it yields every 64 polls, so the CPU whose turn it is,
 * or the kernel serving it, gets the host CPU. Sleeping after 1000 polls,
 * a 2-CPU counting round paid a futex wake-up for nearly every turn. The
 * whole matrix at 2 CPUs, one round a cell, on the 2-vCPU development VM
 * (wall, median ratio of 8 alternated pairs): with this spin 0.94x the
 * sleeping wait, and 1.01x the free-running counting round.
 */
const TURN_SPIN = 20000;

/**
 * Lockstep (board.ts): wait until the turn word holds t. False when a CPU
 * stopped the round (TURN_ABORT).
 */
function awaitTurn(c: WorkerCpu, b: RoundBoard, t: number): boolean {
  const w = b.i32;
  for (;;) {
    const now = Atomics.load(w, b.turn);
    if (now === t) return true;
    if (now === TURN_ABORT) return false;
    if (now > t) throw new Error(`lockstep: turn ${t} of CPU ${c.cpu} passed (the word holds ${now})`);
    c.user.idleWhile(w, b.turn, now, TURN_SPIN, c.smp.crowded ? c.yieldCpu : null);
  }
}

/** Lockstep: give the turn to the next access's CPU (t + 1), or stop everyone (TURN_ABORT). */
function passTurn(b: RoundBoard, next: number): void {
  Atomics.store(b.i32, b.turn, next);
  Atomics.notify(b.i32, b.turn);
}

/** One round on this CPU's pages, parameters and results on the board. */
function round(c: WorkerCpu, b: RoundBoard): void {
  const f = b.f64;
  const at = (slot: number) => f[b.f(c.cpu, slot)];
  const addr = at(P_ADDR), seed = at(P_SEED), passes = at(P_PASSES), flags = at(P_FLAGS);
  const first = at(P_FIRST), end = at(P_END), pages = at(P_PAGES);
  const writes = !(flags & FLAG_VERIFY_ONLY), reads = !(flags & FLAG_WRITE_ONLY);
  const lockstep = (flags & FLAG_LOCKSTEP) !== 0;
  const phases = (writes ? 1 : 0) + (reads ? 1 : 0);
  let errors = 0, fault = 0, accesses = 0;
  const u = c.user;
  const pat = patternsFor(seed, pages);
  if (lockstep) Atomics.add(b.i32, b.turn, 1); // online: one fewer CPU to wait for (turn 0 when all are)
  let t = 0;
  outer: for (let pass = 0; pass < passes; pass++) {
    let phase = pass * phases;
    if (writes) {
      for (let p = first; p < end; p++) {
        if (lockstep && !awaitTurn(c, b, (t = phase * pages + p))) break outer;
        const r = u.store(addr + p * PAGE_SIZE, pat, p * STEP);
        accesses++;
        if (r < 0) {
          fault = r;
          break outer;
        }
        if (lockstep) passTurn(b, t + 1);
      }
      phase++;
    }
    if (!reads) continue;
    for (let p = first; p < end; p++) {
      if (lockstep && !awaitTurn(c, b, (t = phase * pages + p))) break outer;
      const r = u.load(addr + p * PAGE_SIZE, got);
      accesses++;
      if (r < 0) {
        fault = r;
        break outer;
      }
      if (lockstep) passTurn(b, t + 1);
      if ((cmp !== null ? cmp(patData, p * STEP, gotBuf, 0, PAGE_SIZE) : pat.compare(got, 0, PAGE_SIZE, p * STEP, p * STEP + PAGE_SIZE)) !== 0) errors++;
    }
  }
  if (lockstep) {
    if (fault < 0) passTurn(b, TURN_ABORT);
    else awaitTurn(c, b, passes * phases * pages); // the others' last accesses, with this CPU still online
  }
  f[b.f(c.cpu, O_ERRORS)] = errors;
  f[b.f(c.cpu, O_FAULT)] = fault;
  f[b.f(c.cpu, O_ACCESSES)] = accesses;
}

const f64Flags = (b: RoundBoard, cpu: number): number => b.f64[b.f(cpu, P_FLAGS)];

/** Run rounds from the board until the kernel parks us. */
function serveBoard(c: WorkerCpu, b: RoundBoard): void {
  const w = b.i32;
  const sp = c.smp.spinner(); // its own: the trap reply's (c.spinner) adapts to other waits
  const cmdWord = b.i(c.cpu, R_CMD);
  let seen = Atomics.load(w, b.i(c.cpu, R_DONE));
  // traps made before the last round (spreadOut moves only a CPU whose last round made none)
  let trapsBefore = -1;
  for (;;) {
    // the wait polls with sched_yield when the threads do not fit the host (backoff.ts)
    sp.start(true);
    while (Atomics.load(w, cmdWord) === seen) if (!sp.spin()) sp.sleep(w, cmdWord, seen, 20);
    seen = Atomics.load(w, cmdWord);
    if (Atomics.load(w, b.i(c.cpu, R_KIND)) === KIND_PARK) {
      Atomics.store(w, b.i(c.cpu, R_DONE), seen);
      Atomics.notify(w, b.i(c.cpu, R_DONE));
      return;
    }
    c.smp.spreadOut(c.cpu, c.traps === trapsBefore); // (smp.ts: two worker threads stacked on one host CPU)
    c.online();
    trapsBefore = c.traps;
    let failure: unknown = null;
    const t = performance.now();
    try {
      round(c, b);
    } catch (e) {
      failure = e;
      if (f64Flags(b, c.cpu) & FLAG_LOCKSTEP) passTurn(b, TURN_ABORT); // the other CPUs must not wait for its turns
    }
    b.f64[b.f(c.cpu, O_WORK)] = performance.now() - t;
    c.offline(); // before reporting: the kernel may unmap as soon as it hears
    Atomics.store(w, b.i(c.cpu, R_FAILED), failure === null ? 0 : 1);
    Atomics.store(w, b.i(c.cpu, R_DONE), seen);
    c.roundDone();
    if (failure !== null) {
      port!.postMessage({ type: 'fail', cpu: c.cpu, message: failure instanceof Error ? failure.message : String(failure) } satisfies FromCpu);
      return;
    }
  }
}

let cpu: WorkerCpu | null = null;

port.on('message', (m: ToCpu) => {
  try {
    switch (m.type) {
      case 'attach': {
        cpu?.offline();
        releaseBound(); // the last cell's memory and pages (xts-native.ts)
        cpu = new WorkerCpu(m.desc);
        cpu.offline(); // idle until a round
        const board = new RoundBoard(m.board);
        port.postMessage({ type: 'ready', cpu: cpu.cpu } satisfies FromCpu);
        serveBoard(cpu, board);
        break;
      }
      case 'exit':
        cpu?.offline();
        releaseBound();
        port.close();
        break;
    }
  } catch (e) {
    cpu?.offline();
    port.postMessage({ type: 'fail', cpu: cpu?.cpu ?? -1, message: e instanceof Error ? e.message : String(e) } satisfies FromCpu);
  }
});
