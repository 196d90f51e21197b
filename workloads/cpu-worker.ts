// A worker thread that is one CPU of the simulated machine, running a
// process's user code: stores and loads through its MMU and the engine, and
// traps to the kernel thread on faults. Between an 'attach' message and a
// park command it runs rounds from the round board (board.ts), not from
// messages, so a round costs no event-loop turn on either side.
import { parentPort } from 'node:worker_threads';
import { PAGE_SIZE } from '../hardware/types.js';
import { Backoff } from '../kernel/backoff.js';
import { patternInto } from '../interfaces/conformance.js';
import { WorkerCpu } from '../kernel/trap.js';
import {
  FLAG_VERIFY_ONLY,
  FLAG_WRITE_ONLY,
  KIND_PARK,
  O_ACCESSES,
  O_ERRORS,
  O_FAULT,
  P_ADDR,
  P_FIRST,
  P_FLAGS,
  P_NEXT_SEED,
  P_PAGES,
  P_PASSES,
  P_SEED,
  P_STRIDE,
  R_CMD,
  R_DONE,
  R_FAILED,
  R_KIND,
  RoundBoard,
} from './board.js';
import type { FromCpu, ToCpu } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('cpu-worker: must run in a worker thread');

/** Polls of the command word before sleeping on it, adapted to the load (kernel/backoff.ts). */
const backoff = new Backoff();

const got = new Uint8Array(PAGE_SIZE);

/**
 * The round's data patterns for this CPU's pages, made once per round (seed)
 * and reused by every pass, store and check: no pattern is computed twice and
 * nothing is allocated per page. Two buffers: the round's, and a spare that
 * the CPU fills for the next round (its seed is hinted on the board) while
 * the kernel thread is between rounds, so that making data is off the
 * round's critical path when the hint is right. Grown, never shrunk.
 */
class Patterns {
  buf = Buffer.alloc(0);
  words = new Uint32Array(0);
  key = '';

  fill(seed: number, first: number, stride: number, pages: number): void {
    if (this.buf.length < pages * PAGE_SIZE) {
      this.buf = Buffer.alloc(pages * PAGE_SIZE);
      this.words = new Uint32Array(this.buf.buffer, this.buf.byteOffset, this.buf.length >>> 2);
    }
    for (let p = first; p < pages; p += stride) patternInto(seed, p, this.words, p * (PAGE_SIZE >>> 2));
    this.key = `${seed}/${first}/${stride}/${pages}`;
  }
}
let current = new Patterns();
let spare = new Patterns();

function patternsFor(seed: number, first: number, stride: number, pages: number): Buffer {
  const key = `${seed}/${first}/${stride}/${pages}`;
  if (current.key !== key) {
    if (spare.key === key) [current, spare] = [spare, current];
    else current.fill(seed, first, stride, pages);
  }
  return current.buf;
}

/** Make the next round's data ahead, from the hint of the round just done. */
function prefetch(c: WorkerCpu, b: RoundBoard): void {
  const f = b.f64;
  const at = (slot: number) => f[b.f(c.cpu, slot)];
  const first = at(P_FIRST), stride = at(P_STRIDE), pages = at(P_PAGES);
  const next = at(P_NEXT_SEED);
  if (spare.key !== `${next}/${first}/${stride}/${pages}`) spare.fill(next, first, stride, pages);
}

/** One round on this CPU's pages, parameters and results on the board. */
function round(c: WorkerCpu, b: RoundBoard): void {
  const f = b.f64;
  const at = (slot: number) => f[b.f(c.cpu, slot)];
  const addr = at(P_ADDR), seed = at(P_SEED), passes = at(P_PASSES), flags = at(P_FLAGS);
  const first = at(P_FIRST), stride = at(P_STRIDE), pages = at(P_PAGES);
  let errors = 0, fault = 0, accesses = 0;
  const u = c.user;
  const pat = patternsFor(seed, first, stride, pages);
  outer: for (let pass = 0; pass < passes; pass++) {
    if (!(flags & FLAG_VERIFY_ONLY))
      for (let p = first; p < pages; p += stride) {
        const r = u.store(addr + p * PAGE_SIZE, pat, p * PAGE_SIZE);
        accesses++;
        if (r < 0) {
          fault = r;
          break outer;
        }
      }
    if (flags & FLAG_WRITE_ONLY) continue;
    for (let p = first; p < pages; p += stride) {
      const r = u.load(addr + p * PAGE_SIZE, got);
      accesses++;
      if (r < 0) {
        fault = r;
        break outer;
      }
      if (pat.compare(got, 0, PAGE_SIZE, p * PAGE_SIZE, (p + 1) * PAGE_SIZE) !== 0) errors++;
    }
  }
  f[b.f(c.cpu, O_ERRORS)] = errors;
  f[b.f(c.cpu, O_FAULT)] = fault;
  f[b.f(c.cpu, O_ACCESSES)] = accesses;
}

/** Run rounds from the board until the kernel parks us. */
function serveBoard(c: WorkerCpu, b: RoundBoard): void {
  const w = b.i32;
  const cmdWord = b.i(c.cpu, R_CMD);
  let seen = Atomics.load(w, b.i(c.cpu, R_DONE));
  for (;;) {
    let sleptAt = -1;
    for (let spin = 0; Atomics.load(w, cmdWord) === seen; spin++)
      if (spin >= backoff.spins) {
        if (sleptAt < 0) sleptAt = performance.now();
        Atomics.wait(w, cmdWord, seen, 20);
      }
    if (sleptAt >= 0) backoff.slept(performance.now() - sleptAt);
    else backoff.hit();
    seen = Atomics.load(w, cmdWord);
    if (Atomics.load(w, b.i(c.cpu, R_KIND)) === KIND_PARK) {
      Atomics.store(w, b.i(c.cpu, R_DONE), seen);
      Atomics.notify(w, b.i(c.cpu, R_DONE));
      return;
    }
    c.online();
    let failure: unknown = null;
    try {
      round(c, b);
    } catch (e) {
      failure = e;
    }
    c.offline(); // before reporting: the kernel may unmap as soon as it hears
    Atomics.store(w, b.i(c.cpu, R_FAILED), failure === null ? 0 : 1);
    Atomics.store(w, b.i(c.cpu, R_DONE), seen);
    c.roundDone();
    if (failure !== null) {
      port!.postMessage({ type: 'fail', cpu: c.cpu, message: failure instanceof Error ? failure.message : String(failure) } satisfies FromCpu);
      return;
    }
    prefetch(c, b);
  }
}

let cpu: WorkerCpu | null = null;

port.on('message', (m: ToCpu) => {
  try {
    switch (m.type) {
      case 'attach': {
        cpu?.offline();
        cpu = new WorkerCpu(m.desc);
        cpu.offline(); // idle until a round
        const board = new RoundBoard(m.board);
        port.postMessage({ type: 'ready', cpu: cpu.cpu } satisfies FromCpu);
        serveBoard(cpu, board);
        break;
      }
      case 'exit':
        cpu?.offline();
        port.close();
        break;
    }
  } catch (e) {
    cpu?.offline();
    port.postMessage({ type: 'fail', cpu: cpu?.cpu ?? -1, message: e instanceof Error ? e.message : String(e) } satisfies FromCpu);
  }
});
