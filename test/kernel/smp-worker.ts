// A worker CPU for smp.test.ts: writes and verifies its own pages in a loop
// while the kernel moves them around.
import { parentPort, workerData } from 'node:worker_threads';
import { WorkerCpu, type CpuDescriptor } from '../../kernel/trap.js';

interface Job {
  desc: CpuDescriptor;
  base: number;
  pages: number[];
  iters: number;
  /** Int32Array word counting the CPUs that have touched all their pages once */
  gate: SharedArrayBuffer;
  cpus: number;
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
  if (it === 0) {
    // Every CPU touches all its pages before any goes on, so the pages that
    // reclaim swaps out to fit the others' are touched again, whichever CPU
    // started first. Idle (offline) while waiting: the kernel's shootdowns
    // do not wait for a CPU between bursts.
    cpu.offline();
    const gate = new Int32Array(job.gate);
    Atomics.add(gate, 0, 1);
    Atomics.notify(gate, 0);
    for (let n; (n = Atomics.load(gate, 0)) < job.cpus; ) Atomics.wait(gate, 0, n, 50);
    cpu.online();
  }
}
cpu.offline();
parentPort!.postMessage({ errors, faults });
