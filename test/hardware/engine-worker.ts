// Worker for engine.test.ts: CPU 1 writes a page through KeyID 7.
import { parentPort, workerData } from 'node:worker_threads';
import { Machine, type MachineDescriptor } from '../../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';

const m = Machine.attach(workerData as MachineDescriptor, 1);
const seed = 0x5a;
m.engine.write(asPfn(5), 7, new Uint8Array(PAGE_SIZE).fill(seed));
Atomics.add(new Int32Array(new SharedArrayBuffer(4)), 0, 1); // publish with a seq-cst op
parentPort?.postMessage([seed]);
