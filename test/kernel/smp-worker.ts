// A worker CPU for smp.test.ts: writes and verifies its own pages in a loop
// while the kernel moves them around.
import { parentPort, workerData } from 'node:worker_threads';
import { WorkerCpu, type CpuDescriptor } from '../../kernel/trap.js';

interface Job {
  desc: CpuDescriptor;
  base: number;
  pages: number[];
  iters: number;
}
const job = workerData as Job;
const cpu = new WorkerCpu(job.desc);
const buf = new Uint8Array(4096);
const out = new Uint8Array(4096);
let errors = 0;
let faults = 0;
for (let it = 0; it < job.iters; it++) {
  for (const p of job.pages) {
    const v = (it * 7 + p * 13 + job.desc.cpu) & 0xff;
    buf.fill(v);
    const va = job.base + p * 4096;
    if (cpu.user.store(va, buf) < 0) faults++;
    if (cpu.user.load(va, out) < 0) faults++;
    for (let i = 0; i < 4096; i += 64) if (out[i] !== v) {
      errors++;
      break;
    }
  }
}
cpu.offline();
parentPort!.postMessage({ errors, faults });
