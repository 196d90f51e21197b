// What decides a cell: outcome precedence as a table, the verifier on
// corrupted frames (first and last page), counter identities, gauges across a
// power cycle, and timed rounds that neither look at nor scan the media.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NO_LEAK, type LeakScan, type Outcome } from '../../interfaces/conformance.js';
import { E } from '../../kernel/errno.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { shareStart } from '../../workloads/board.js';
import { startCell, timedRound, type CellStart } from '../../workloads/cell.js';
import { getWorkload } from '../../workloads/registry.js';
import { outcomeOf, roundSeed, sumDone, type RoundReport } from '../../workloads/workload.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

async function open(workload: string, design: string, o: { threads?: number; hardware?: string; encryptedSwap?: boolean } = {}): Promise<CellStart> {
  const workdir = mkdtempSync(join(tmpdir(), 'memcrypt-oc-'));
  dirs.push(workdir);
  return startCell({
    design,
    hardware: o.hardware ?? 'mktme',
    kernel: 'patched',
    workload: getWorkload(workload),
    threads: o.threads ?? 1,
    seed: 9,
    backend: 'openssl',
    workdir,
    encryptedSwap: o.encryptedSwap ?? false,
  });
}

const SWAP: LeakScan = { media: ['swap'], bytes: 4096 };
const base: RoundReport = { ops: 1, errors: 0, fault: 0, errno: 0, refused: false, fallback: false, observed: 'encrypted', leaks: NO_LEAK, detail: '' };

describe('outcome precedence', () => {
  const cases: [Partial<RoundReport>, Outcome, string | null][] = [
    [{}, 'encrypted', null],
    [{ observed: 'secret' }, 'secret', null],
    [{ observed: null }, 'plaintext', null],
    [{ leaks: SWAP }, 'leaked', null],
    [{ observed: 'secret', leaks: SWAP }, 'leaked', null],
    [{ observed: 'plaintext', leaks: SWAP }, 'plaintext', null],
    // a fallback is a fallback whatever the frames look like, and whatever leaked
    [{ fallback: true, errno: -E.ENOSYS, leaks: SWAP }, 'plaintext-fallback', 'ENOSYS'],
    // a refusal outranks a fallback; data loss outranks both; a fault outranks everything
    [{ refused: true, fallback: true, errno: -E.EBUSY }, 'unsupported', 'EBUSY'],
    [{ errors: 1, fallback: true, errno: -E.ENOSYS }, 'data-loss', 'ENOSYS'],
    [{ errors: 3, refused: true, errno: -E.EBUSY, leaks: SWAP }, 'data-loss', 'EBUSY'],
    [{ fault: -E.ENOMEM, errors: 2, fallback: true }, 'unsupported', 'ENOMEM'],
    [{ fault: -E.EFAULT, errors: 2, errno: -E.ENOSYS }, 'crashed', 'ENOSYS'],
    [{ fault: -E.EFAULT }, 'crashed', 'EFAULT'],
  ];
  for (const [over, outcome, errno] of cases)
    it(`${JSON.stringify(over)} -> ${outcome}${errno ? '/' + errno : ''}`, () => {
      const o = outcomeOf({ ...base, ...over });
      assert.equal(o.outcome, outcome);
      assert.equal(o.errno, errno);
    });
});

describe('the verifier on corrupted frames', () => {
  for (const threads of [1, 2])
    it(`${threads} CPU(s): a changed byte in the first or the last page is one bad page`, async () => {
      const c = await open('migration', 'plain-mmap', { threads });
      try {
        const s = c.session;
        const a = s.region!;
        const seed = roundSeed(s.cfg.seed, 0); // what the counting round wrote last
        const verify = async () => sumDone(await s.runCpus({ round: 100, addr: a.addr, seed, passes: 1, verifyOnly: true, writeOnly: false })).errors;
        assert.equal(await verify(), 0);
        const raw = s.machine.memory.buf.u8;
        for (const page of [s.pages - 1, 0]) {
          const pfn = ptePfn(s.k.pool.get(s.task.mm.pgd, a.addr + page * 4096));
          raw[pfn * 4096 + 4095] ^= 1;
          assert.equal(await verify(), 1, `page ${page}`);
          raw[pfn * 4096 + 4095] ^= 1;
          assert.equal(await verify(), 0);
        }
      } finally {
        await c.session.close();
      }
    });
});

describe('the CPUs\' shares of a round', () => {
  it('shares are contiguous, cover every page once, and differ in size by at most one page', () => {
    for (const [pages, cpus] of [[64, 1], [64, 2], [64, 3], [5, 4], [3, 4]]) {
      const starts = Array.from({ length: cpus + 1 }, (_, i) => shareStart(pages, cpus, i));
      assert.equal(starts[0], 0);
      assert.equal(starts[cpus], pages);
      const sizes = starts.slice(1).map((e, i) => e - starts[i]);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1 && Math.min(...sizes) >= 0, `${pages} pages, ${cpus} CPUs: ${sizes}`);
    }
    assert.deepEqual([0, 1, 2, 3].map((i) => shareStart(64, 3, i)), [0, 21, 42, 64]);
  });

  it('3 CPUs: each first-touches its own contiguous share of the region (the frame of page p comes from its CPU)', async () => {
    const c = await open('migration', 'plain-mmap', { threads: 3 });
    try {
      const s = c.session;
      const a = s.allocate();
      assert.ok(!('failed' in a));
      const done = sumDone(await s.runCpus({ round: 100, addr: a.addr, seed: roundSeed(s.cfg.seed, 100), passes: 1, verifyOnly: false, writeOnly: true }));
      assert.deepEqual([done.errors, done.fault], [0, 0]);
      const owners = Array.from({ length: s.pages }, (_, p) => s.k.alloc.map.cpu[ptePfn(s.k.pool.get(s.task.mm.pgd, a.addr + p * 4096))]);
      const want = Array.from({ length: s.pages }, (_, p) => (p < 21 ? 1 : p < 42 ? 2 : 3));
      assert.deepEqual(owners, want);
      s.design.release(s.env, a);
    } finally {
      await c.session.close();
    }
  });
});

describe('counter identities', () => {
  it('plain swap: every page swapped out of an unkeyed region is 4096 plaintext bytes in the swap file', async () => {
    const c = await open('swap', 'plain-mmap');
    await c.session.close();
    assert.ok(c.counters.swap_out > 0);
    assert.equal(c.counters.plaintext_exposed_bytes, 4096 * c.counters.swap_out);
    assert.equal(c.counters.swap_sealed, 0);
  });

  it('swap over dm-crypt: the same swap traffic, no plaintext bytes', async () => {
    const plain = await open('swap', 'encrypt-mprotect');
    await plain.session.close();
    const enc = await open('swap', 'encrypt-mprotect', { encryptedSwap: true });
    await enc.session.close();
    assert.equal(enc.counters.swap_out, plain.counters.swap_out);
    assert.equal(enc.counters.swap_in, plain.counters.swap_in);
    assert.equal(plain.counters.plaintext_exposed_bytes, 4096 * plain.counters.swap_out);
    assert.equal(enc.counters.plaintext_exposed_bytes, 0);
  });

  it('SGX: every swap I/O of an encrypted page is an EWB or ELDU, and none of it is plaintext', async () => {
    const c = await open('swap', 'encrypt-mprotect', { hardware: 'sgx' });
    await c.session.close();
    assert.equal(c.outcome, 'encrypted');
    assert.ok(c.counters.swap_out > 0);
    assert.equal(c.counters.swap_sealed, c.counters.swap_out + c.counters.swap_in);
    assert.equal(c.counters.plaintext_exposed_bytes, 0);
  });

  it('a power cycle: events add up over both kernels, high-water marks do not', async () => {
    const c = await open('dax-stacking', 'madvise-encrypt');
    await c.session.close();
    assert.equal(c.outcome, 'encrypted');
    // one DAX mapping per boot: the most VMAs at once is 1, not 2
    assert.equal(c.counters.vma_count_max, 1);
    // both boots: add_key + openat + mmap + madvise each
    assert.equal(c.counters.syscalls, 8);
    assert.equal(c.counters.key_programs, 2);
  });
});

describe('timed rounds do the counting round\'s work and nothing more', () => {
  for (const [wl, design] of [
    ['fault', 'encrypt-mprotect'],
    ['enosys-fallback', 'madvise-encrypt'],
    ['fault', 'memfd-secret'],
  ] as const)
    it(`${wl} ${design}: the same events per round, no look at the frames or the media`, async () => {
      const c = await open(wl, design);
      try {
        const before = c.session.counters(0);
        const rep = await c.session.cfg.workload.round(c.session, 1, false);
        assert.equal(rep.observed, null);
        assert.deepEqual(rep.leaks, NO_LEAK);
        await timedRound(c, 2);
        const after2 = c.session.counters(0);
        for (const k of ['syscalls', 'faults', 'pages_zapped', 'key_programs', 'clflush_lines', 'direct_map_removed', 'tlb_shootdowns'] as const)
          assert.equal(after2[k] - before[k], 2 * c.counters[k], `${k}: two timed rounds vs the counting round`);
      } finally {
        await c.session.close();
      }
    });
});
