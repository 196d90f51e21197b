// A worker CPU for fastfault.test.ts: first-touches its pages (a store each,
// then a load that checks the store), and reports how its faults went.
import { parentPort, workerData } from 'node:worker_threads';
import { WorkerCpu, type CpuDescriptor } from '../../kernel/trap.js';

interface Job {
  desc: CpuDescriptor;
  base: number;
  pages: number[];
  /** the byte a page is filled with: a function of the page only, so racing CPUs agree */
  verify: boolean;
  /** a start line: every CPU waits for word 0 to turn 1, so that they race */
  start: SharedArrayBuffer;
}
const job = workerData as Job;
const cpu = new WorkerCpu(job.desc);
cpu.online();
const start = new Int32Array(job.start);
Atomics.add(start, 1, 1);
Atomics.wait(start, 0, 0);
const buf = new Uint8Array(4096);
const out = new Uint8Array(4096);
let errors = 0;
let faults = 0;
for (const p of job.pages) {
  buf.fill((p * 37 + 11) & 0xff);
  const va = job.base + p * 4096;
  if (cpu.user.store(va, buf) < 0) faults++;
}
if (job.verify)
  for (const p of job.pages) {
    const va = job.base + p * 4096;
    if (cpu.user.load(va, out) < 0) faults++;
    if (out.some((b) => b !== ((p * 37 + 11) & 0xff))) errors++;
  }
cpu.offline();
parentPort!.postMessage({ errors, faults, handled: cpu.fast?.handled ?? 0, passed: cpu.fast?.passed ?? 0 });
