// A worker thread that is one CPU of the simulated machine, running a
// process's user code: stores and loads through its MMU and the engine, and
// traps to the kernel thread on faults.
import { parentPort } from 'node:worker_threads';
import { PAGE_SIZE } from '../hardware/types.js';
import { patternPage } from '../interfaces/conformance.js';
import { WorkerCpu } from '../kernel/trap.js';
import type { DoneMsg, FromCpu, RoundMsg, ToCpu } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('cpu-worker: must run in a worker thread');

let cpu: WorkerCpu | null = null;
const buf = new Uint8Array(PAGE_SIZE);
const got = new Uint8Array(PAGE_SIZE);

function round(m: RoundMsg, c: WorkerCpu): DoneMsg {
  let errors = 0, fault = 0, accesses = 0;
  const u = c.user;
  outer: for (let pass = 0; pass < m.passes; pass++) {
    if (!m.verifyOnly)
      for (const p of m.pages) {
        patternPage(m.seed, p, buf);
        const r = u.store(m.addr + p * PAGE_SIZE, buf);
        accesses++;
        if (r < 0) {
          fault = r;
          break outer;
        }
      }
    if (m.writeOnly) continue;
    for (const p of m.pages) {
      patternPage(m.seed, p, buf);
      const r = u.load(m.addr + p * PAGE_SIZE, got);
      accesses++;
      if (r < 0) {
        fault = r;
        break outer;
      }
      if (Buffer.compare(buf, got) !== 0) errors++;
    }
  }
  return { type: 'done', cpu: c.cpu, round: m.round, errors, fault, accesses };
}

port.on('message', (m: ToCpu) => {
  const send = (msg: FromCpu) => port.postMessage(msg);
  try {
    switch (m.type) {
      case 'attach':
        cpu?.offline();
        cpu = new WorkerCpu(m.desc);
        cpu.offline(); // idle until a round
        send({ type: 'ready', cpu: cpu.cpu });
        break;
      case 'round':
        if (cpu === null) throw new Error('round before attach');
        cpu.online();
        let done: DoneMsg;
        try {
          done = round(m, cpu);
        } finally {
          cpu.offline(); // before reporting: the kernel may unmap as soon as it hears
          cpu.roundDone();
        }
        send(done);
        break;
      case 'exit':
        cpu?.offline();
        port.close();
        break;
    }
  } catch (e) {
    cpu?.offline();
    send({ type: 'fail', cpu: cpu?.cpu ?? -1, message: e instanceof Error ? e.message : String(e) });
  }
});
