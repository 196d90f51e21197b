// TLB shootdown across CPUs that are worker threads: the kernel migrates and
// swaps pages while two worker CPUs keep writing and verifying them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { NR } from '../../kernel/syscalls.js';
import { TrapServer, cpuDescriptor } from '../../kernel/trap.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE } from '../../kernel/uapi.js';
import { BASE, PAGE, boot } from './util.js';

const PAGES = 16;

async function run(opts: { swap: boolean }): Promise<void> {
  const { k, done } = boot({ nrCpus: 3, swapSlots: opts.swap ? 64 : 0 });
  const t = k.spawn({ memLimit: opts.swap ? 10 : Infinity });
  assert.equal(k.syscall(t, NR.mmap, BASE, PAGES * PAGE, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
  const serial = k.syscall(t, NR.add_key, 'mktme', 'smp', 'type=cpu algorithm=aes-xts-128');
  assert.equal(doMprotect(k, t, BASE, PAGES * PAGE, 3, k.keys.lookup(serial, t.creds) as MktmeKey), 0);
  const server = new TrapServer(k, t);
  const workers: Worker[] = [];
  const results: Promise<{ errors: number; faults: number }>[] = [];
  const gate = new SharedArrayBuffer(4);
  for (const cpu of [1, 2]) {
    server.serve(cpu);
    const desc = cpuDescriptor(k, t, cpu);
    k.smp.setOnline(cpu, t.mm.id);
    const pages = [...Array(PAGES).keys()].filter((p) => p % 2 === cpu - 1);
    const w = new Worker(new URL('./smp-worker.js', import.meta.url), { workerData: { desc, base: BASE, pages, iters: 60, gate, cpus: 2 } });
    workers.push(w);
    results.push(
      new Promise((res, rej) => {
        w.once('message', res);
        w.once('error', (e) => {
          k.smp.setOffline(cpu);
          rej(e);
        });
      }),
    );
  }
  // The kernel's own work while the CPUs run: move every page back and forth.
  let finished = false;
  void Promise.all(results).finally(() => (finished = true));
  let rounds = 0;
  let moves = 0; // move_pages calls that moved at least one page
  while (!finished) {
    const pages = [...Array(PAGES).keys()].map((p) => BASE + p * PAGE);
    const before = k.counters.get('migrated');
    k.syscall(t, NR.move_pages, 0, pages, pages.map(() => (rounds + 1) % 2), []);
    if (k.counters.get('migrated') > before) moves++;
    rounds++;
    await new Promise((r) => setImmediate(r));
  }
  const res = await Promise.all(results);
  await server.stop();
  await Promise.all(workers.map((w) => w.terminate()));
  const c = k.counters.snapshot();
  assert.deepEqual(
    res.map((r) => r.errors),
    [0, 0],
    'a CPU read back something it did not write',
  );
  assert.deepEqual(
    res.map((r) => r.faults),
    [0, 0],
  );
  assert.ok(rounds > 1, 'the kernel ran concurrently with the CPUs');
  assert.ok(c.migrated > 0);
  // one shootdown per move_pages call that moved pages (the batch), one IPI
  // to each of the two CPUs; and one per page swapped out
  const expectedIpis = 2 * moves + (opts.swap ? 2 * c.swap_out : 0);
  assert.ok(moves > 0);
  assert.ok(c.tlb_shootdowns >= expectedIpis, `${c.tlb_shootdowns} IPIs for ${moves} batches, ${c.swap_out} swap-outs`);
  if (opts.swap) assert.ok(c.swap_out > 0 && c.swap_in > 0, JSON.stringify(c));
  assert.equal(k.machine.engine.counters.get('alias_conflicts'), 0);
  k.exit(t);
  assert.equal(k.alloc.freeFrames(), 128);
  done();
}

describe('SMP: TLB shootdown with worker CPUs', () => {
  it('migration under two writing CPUs loses nothing', () => run({ swap: false }));
  it('migration and swap under two writing CPUs lose nothing', () => run({ swap: true }));
});
