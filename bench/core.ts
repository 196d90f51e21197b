// Core benchmark: AES-XTS encrypt+decrypt of 4 KiB frames through the engine,
// per backend, beside the node:crypto ceiling measured in the same run (one
// createCipheriv + update call per 4 KiB data unit, the least node:crypto can
// do per page, with none of the engine's work around it) and, where the
// openssl binary exists, `openssl speed -evp aes-128-xts -bytes 4096` run in
// the same sitting: the ratio to it is what the native backend is judged by.
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Bench, type Task } from 'tinybench';
import { KeyProgram } from '../hardware/engine.js';
import { Machine } from '../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../hardware/types.js';
import { availableBackends, nativeImpl } from '../hardware/xts.js';

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
  for (const backend of availableBackends()) {
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

/**
 * `openssl speed -evp aes-128-xts -bytes 4096` on this machine, GB/s, or why
 * not (no openssl binary, unexpected output). Its figure is in 1000s of bytes
 * per second ("AES-128-XTS  7425245.69k").
 */
export function opensslSpeed(seconds = 2): { gbps: number } | { why: string } {
  let out: string;
  try {
    out = execFileSync('openssl', ['speed', '-evp', 'aes-128-xts', '-bytes', '4096', '-seconds', String(seconds)], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 60_000,
    });
  } catch (e) {
    return { why: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no openssl binary' : 'openssl speed failed' };
  }
  const m = /^AES-128-XTS\s+([\d.]+)k\s*$/im.exec(out);
  return m ? { gbps: (Number(m[1]) * 1000) / 1e9 } : { why: 'openssl speed printed no AES-128-XTS figure' };
}

/** Plain-text table of the core results, 72 columns, ASCII. */
export function formatCore(results: readonly CoreResult[], speed: { gbps: number } | { why: string }): string {
  const ceiling = results.find((r) => r.name === 'node:crypto ceiling');
  const ref = 'gbps' in speed ? speed.gbps : NaN;
  const lines = [
    'AES-XTS-128, 4 KiB frames, encrypt+decrypt through KeyID 1',
    `${'task'.padEnd(22)}${'GB/s'.padStart(8)}${'+- rme'.padStart(9)}${'samples'.padStart(9)}${'/ceiling'.padStart(10)}${'/openssl'.padStart(10)}`,
  ];
  for (const r of results) {
    const ratio = ceiling ? (r.gbps / ceiling.gbps).toFixed(2) : '-';
    const vs = Number.isFinite(ref) ? (r.gbps / ref).toFixed(2) : '-';
    lines.push(
      `${r.name.padEnd(22)}${r.gbps.toFixed(3).padStart(8)}${(r.rmePct.toFixed(1) + '%').padStart(9)}` +
        `${String(r.samples).padStart(9)}${ratio.padStart(10)}${vs.padStart(10)}`,
    );
  }
  const impl = nativeImpl();
  if (impl !== null) lines.push(`native backend: ${impl}`);
  lines.push(
    'gbps' in speed
      ? `openssl speed -evp aes-128-xts -bytes 4096: ${speed.gbps.toFixed(3)} GB/s (same run)`
      : `openssl speed: not measured (${speed.why})`,
  );
  return lines.join('\n');
}
