// Per-CPU event counters in shared memory, like the kernel's percpu counters:
// each simulated CPU (worker thread) adds only to its own row, with plain
// stores, so the hot path needs no atomics. A reader sums the rows. A reader
// on another thread must first synchronise with the writers through an atomic
// operation (the workers' completion word, see workloads/); seq-cst atomics
// order every earlier plain store of the writing agent before it.

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

  private constructor(names: readonly N[], nrCpus: number, sab: SharedArrayBuffer) {
    if (new Set(names).size !== names.length) throw new Error('counter names must be unique');
    this.names = names;
    this.nrCpus = nrCpus;
    this.sab = sab;
    this.all = new Float64Array(sab);
    const index = {} as Record<N, number>;
    names.forEach((n, i) => (index[n] = i));
    this.index = index;
  }

  static create<N extends string>(names: readonly N[], nrCpus: number): PerCpuCounters<N> {
    if (!Number.isInteger(nrCpus) || nrCpus < 1) throw new RangeError(`nrCpus: expected >= 1, got ${nrCpus}`);
    return new PerCpuCounters(names, nrCpus, new SharedArrayBuffer(names.length * nrCpus * 8));
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
    const n = this.names.length;
    return this.all.subarray(cpu * n, cpu * n + n);
  }

  get(name: N): number {
    const n = this.names.length;
    const i = this.index[name];
    let s = 0;
    for (let c = 0; c < this.nrCpus; c++) s += this.all[c * n + i];
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
