// Per-CPU event counters in shared memory, like the kernel's percpu counters:
// each simulated CPU (worker thread) adds only to its own row, with plain
// stores, so the hot path needs no atomics. A reader sums the rows. A reader
// on another thread must first synchronise with the writers through an atomic
// operation (the workers' completion word, see workloads/); seq-cst atomics
// order every earlier plain store of the writing agent before it.
//
// Each row has cache lines of its own (the kernel's percpu areas and
// ____cacheline_aligned_in_smp), so that two CPUs adding to their rows do
// not take a line from each other on every event. A SharedArrayBuffer's
// bytes are only 16-byte aligned (V8 gets them from malloc: seen here at 16,
// 528, 1088, 1520 mod 4096), so rounding a row up to 64 bytes is not enough:
// rows are ROW_GAP Float64s further apart than their counters need, which
// keeps a 64-byte line between the last counter of one row and the first of
// the next wherever the buffer begins. With the engine's 7 counters in rows
// of 56 bytes, two worker CPUs wrote a shared line on every page they
// encrypted or decrypted: fault madvise-encrypt at 2 worker CPUs, each
// CPU's work per round, medians of 4 alternated pairs of processes on the
// 2-vCPU development VM, 41.0-41.5 us with rows apart against 41.8-45.5 us.
// Whether two rows shared a line depended on where malloc put the buffer,
// so it differed from cell to cell and process to process: ab against the
// build before, 13 processes, fault encrypt-mprotect at 2 worker CPUs
// -6.3% (p_holm 0.029): the build before was 1.27-1.28x slower in 2 of
// the processes, 1.07-1.10x in 6 and within 4% in 5; none of the other 23
// timed cells of fault, migration, dax-stacking and qemu-guest changed
// significantly (-1.8..+0.8%).

/** Float64s between two rows' counters, at the least: a 64-byte line, with 8-byte aligned counters (see above). */
export const ROW_GAP = 8;

/** Float64s from one CPU's row to the next: the counters, rounded up to a 64-byte line, and ROW_GAP. */
export function rowStride(names: number): number {
  return Math.ceil(names / 8) * 8 + ROW_GAP;
}

export interface CountersDescriptor {
  readonly names: readonly string[];
  readonly nrCpus: number;
  readonly sab: SharedArrayBuffer;
}

export class PerCpuCounters<N extends string> {
  readonly names: readonly N[];
  readonly nrCpus: number;
  readonly index: Readonly<Record<N, number>>;
  private readonly sab: SharedArrayBuffer;
  private readonly all: Float64Array;
  private readonly stride: number;

  private constructor(names: readonly N[], nrCpus: number, sab: SharedArrayBuffer) {
    if (new Set(names).size !== names.length) throw new Error('counter names must be unique');
    this.names = names;
    this.nrCpus = nrCpus;
    this.sab = sab;
    this.all = new Float64Array(sab);
    this.stride = rowStride(names.length);
    const index = {} as Record<N, number>;
    names.forEach((n, i) => (index[n] = i));
    this.index = index;
  }

  static create<N extends string>(names: readonly N[], nrCpus: number): PerCpuCounters<N> {
    if (!Number.isInteger(nrCpus) || nrCpus < 1) throw new RangeError(`nrCpus: expected >= 1, got ${nrCpus}`);
    return new PerCpuCounters(names, nrCpus, new SharedArrayBuffer(rowStride(names.length) * nrCpus * 8));
  }

  static attach<N extends string>(d: CountersDescriptor): PerCpuCounters<N> {
    return new PerCpuCounters(d.names as readonly N[], d.nrCpus, d.sab);
  }

  descriptor(): CountersDescriptor {
    return { names: this.names, nrCpus: this.nrCpus, sab: this.sab };
  }

  /** The row one CPU adds to: `row[index.name] += n`. Made once per CPU, not per event. */
  row(cpu: number): Float64Array {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= this.nrCpus)
      throw new RangeError(`cpu: expected an integer in [0, ${this.nrCpus - 1}], got ${cpu}`);
    const at = cpu * this.stride;
    return this.all.subarray(at, at + this.names.length);
  }

  get(name: N): number {
    const i = this.index[name];
    let s = 0;
    for (let c = 0; c < this.nrCpus; c++) s += this.all[c * this.stride + i];
    return s;
  }

  snapshot(): Record<N, number> {
    const out = {} as Record<N, number>;
    for (const name of this.names) out[name] = this.get(name);
    return out;
  }

  reset(): void {
    this.all.fill(0);
  }
}
