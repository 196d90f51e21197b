// One of the threads hostScaling (hostref.ts) times side by side: it warms
// the reference up, says so, waits for the start word, times one window and
// sends its median ns a pass.
import { parentPort, workerData } from 'node:worker_threads';
import { hostReferenceWindow } from './hostref.js';
import { median } from './stats.js';

const { go, ms, warmupMs } = workerData as { go: SharedArrayBuffer; ms: number; warmupMs: number };
const port = parentPort;
if (port === null) throw new Error('hostref-worker: must run in a worker thread');
const word = new Int32Array(go);
hostReferenceWindow(0, warmupMs);
port.postMessage('ready');
Atomics.wait(word, 0, 0);
port.postMessage(median(hostReferenceWindow(ms, 0)));
