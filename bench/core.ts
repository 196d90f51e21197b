// Core benchmark: AES-XTS encrypt+decrypt of 4 KiB frames through the engine,
// per backend, beside the node:crypto ceiling measured in the same run (one
// createCipheriv + update call per 4 KiB data unit, the least node:crypto can
// do per page, with none of the engine's work around it).
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Bench, type Task } from 'tinybench';
import { KeyProgram } from '../hardware/engine.js';
import { Machine } from '../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import { BACKEND_NAMES } from '../hardware/xts.js';

export interface CoreResult {
  readonly name: string;
  /** GB/s of crypto work (encrypt + decrypt bytes) */
  readonly gbps: number;
  readonly rmePct: number;
  readonly samples: number;
}

export interface CoreOptions {
  /** Minimum time per task, ms. */
  readonly timeMs: number;
  readonly frames: number;
}

function _gbps(task: Task, bytesPerOp: number): CoreResult {
  const r = task.result;
  if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state === 'errored' ? r.error.message : r.state}`);
  // latency in ms per op
  return {
    name: task.name,
    gbps: bytesPerOp / (r.latency.p50 * 1e6),
    rmePct: r.latency.rme,
    samples: r.latency.samplesCount,
  };
}

export async function runCoreBench(opts: CoreOptions): Promise<CoreResult[]> {
  const bench = new Bench({ time: opts.timeMs, warmupTime: Math.min(200, opts.timeMs), warmupIterations: 32 });
  const page = new Uint8Array(PAGE_SIZE);
  const out = new Uint8Array(PAGE_SIZE);
  for (const backend of BACKEND_NAMES) {
    const m = Machine.create({ profile: 'mktme', backend, memory: { nodeFrames: [opts.frames] }, nrCpus: 1 });
    m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
    page.set(randomBytes(PAGE_SIZE));
    let pfn = 0;
    bench.add(`engine ${backend}`, () => {
      const f = asPfn(pfn);
      m.engine.write(f, 1, page);
      m.engine.read(f, 1, out);
      pfn = (pfn + 1) % opts.frames;
    });
  }
  const key = randomBytes(32);
  const iv = Buffer.alloc(16);
  const data = randomBytes(PAGE_SIZE);
  let unit = 0;
  bench.add('node:crypto ceiling', () => {
    iv.writeUInt32LE(unit++ * PAGE_SIZE, 0);
    const ct = createCipheriv('aes-128-xts', key, iv).update(data);
    createDecipheriv('aes-128-xts', key, iv).update(ct);
    unit %= 1 << 16;
  });
  await bench.run();
  return bench.tasks.map((t) => _gbps(t, 2 * PAGE_SIZE));
}

/** Plain-text table of the core results, 72 columns. */
export function formatCore(results: readonly CoreResult[]): string {
  const ceiling = results.find((r) => r.name === 'node:crypto ceiling');
  const lines = [
    'AES-XTS-128, 4 KiB frames, encrypt+decrypt through KeyID 1',
    `${'task'.padEnd(24)}${'GB/s'.padStart(8)}${'± rme'.padStart(9)}${'samples'.padStart(10)}${'vs ceiling'.padStart(12)}`,
  ];
  for (const r of results) {
    const ratio = ceiling ? (r.gbps / ceiling.gbps).toFixed(2) : '-';
    lines.push(
      `${r.name.padEnd(24)}${r.gbps.toFixed(3).padStart(8)}${(r.rmePct.toFixed(1) + '%').padStart(9)}` +
        `${String(r.samples).padStart(10)}${ratio.padStart(12)}`,
    );
  }
  return lines.join('\n');
}
