// The capability matrix of DESIGN.md, produced by running every design on
// every profile and kernel, and checked against what the thread argued.
import { getProfile } from '../../hardware/profiles.js';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PROFILE_NAMES } from '../../hardware/profiles.js';
import { Machine } from '../../hardware/machine.js';
import { NO_LEAK, SCENARIOS, observeFrames, runCell, scanLeaks, verifyPattern, withLeaks, writePattern, type CellResult, type CellSpec, type Scenario } from '../../interfaces/conformance.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';
import { allDesigns } from '../../interfaces/registry.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_PRIVATE } from '../../kernel/uapi.js';
import { DESIGN_NAMES, type DesignName } from '../../interfaces/contract.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function cell(design: DesignName, profile: string, patched: boolean, scenario: Scenario, careful = true, encryptedSwap = false): CellResult {
  const workdir = mkdtempSync(join(tmpdir(), 'memcrypt-conf-'));
  dirs.push(workdir);
  const spec: CellSpec = { design, profile, patched, scenario, careful, pages: 12, seed: 7, backend: 'openssl', workdir, encryptedSwap };
  return runCell(spec);
}
const show = (r: CellResult) => `${r.outcome}${r.errno ? '/' + r.errno : ''}`;

// DESIGN.md, "expected capability matrix, MKTME hardware"
const MKTME: Record<string, Record<DesignName, string>> = {
  'unpatched careful': {
    'plain-mmap': 'plaintext',
    'encrypt-mprotect': 'plaintext-fallback/ENOSYS',
    'dev-mktme': 'plaintext-fallback/ENOENT',
    'madvise-encrypt': 'plaintext-fallback/EINVAL',
    'memfd-secret': 'plaintext-fallback/ENOSYS',
    'guest-memfd': 'plaintext-fallback/ENOTTY',
  },
  'unpatched naive': {
    'plain-mmap': 'plaintext',
    'encrypt-mprotect': 'crashed/ENOSYS',
    'dev-mktme': 'crashed/ENOENT',
    'madvise-encrypt': 'plaintext-fallback/EINVAL',
    'memfd-secret': 'crashed/ENOSYS',
    'guest-memfd': 'crashed/ENOTTY',
  },
  // plain swap: the kernel reads encrypted pages through their keyed alias
  // and writes the plaintext to the swap file
  swap: {
    'plain-mmap': 'plaintext',
    'encrypt-mprotect': 'leaked',
    'dev-mktme': 'unsupported/ENOMEM',
    'madvise-encrypt': 'leaked',
    'memfd-secret': 'unsupported/ENOMEM',
    'guest-memfd': 'unsupported/ENOMEM',
  },
  migration: {
    'plain-mmap': 'plaintext',
    'encrypt-mprotect': 'encrypted',
    'dev-mktme': 'unsupported/EBUSY',
    'madvise-encrypt': 'encrypted',
    'memfd-secret': 'unsupported/EBUSY',
    'guest-memfd': 'unsupported/EINVAL',
  },
  dax: {
    'plain-mmap': 'plaintext',
    'encrypt-mprotect': 'unsupported/EINVAL',
    'dev-mktme': 'unsupported/ENOTTY',
    'madvise-encrypt': 'encrypted',
    'memfd-secret': 'unsupported',
    'guest-memfd': 'unsupported',
  },
};

describe('capability matrix on MKTME hardware', () => {
  for (const design of DESIGN_NAMES) {
    it(`${design}: kernel without the feature`, () => {
      assert.equal(show(cell(design, 'mktme', false, 'basic')), MKTME['unpatched careful'][design]);
      assert.equal(show(cell(design, 'mktme', false, 'basic', false)), MKTME['unpatched naive'][design]);
    });
    for (const sc of ['swap', 'migration', 'dax'] as const)
      it(`${design}: ${sc}`, () => assert.equal(show(cell(design, 'mktme', true, sc)), MKTME[sc][design]));
  }

  it('swap over dm-crypt: nothing readable reaches the swap file, so the cells are encrypted', () => {
    for (const design of ['encrypt-mprotect', 'madvise-encrypt'] as const) {
      const r = cell(design, 'mktme', true, 'swap', true, true);
      assert.equal(show(r), 'encrypted', design);
      assert.ok(r.counters.swap_out > 0, design);
      assert.equal(r.counters.plaintext_exposed_bytes, 0, design);
      assert.deepEqual(r.leaks, { media: [], bytes: 0 }, design);
    }
  });

  it('a leak is found on the medium itself, page by page', () => {
    const r = cell('encrypt-mprotect', 'mktme', true, 'swap');
    assert.deepEqual(r.leaks.media, ['swap']);
    // every page swapped out left its plaintext in its slot (freed slots keep their bytes)
    assert.ok(r.leaks.bytes >= 4096 && r.leaks.bytes <= r.counters.swap_out * 4096, String(r.leaks.bytes));
    // the control leaks the same way, but it never claimed anything
    const plain = cell('plain-mmap', 'mktme', true, 'swap');
    assert.equal(plain.outcome, 'plaintext');
    assert.deepEqual(plain.leaks.media, ['swap']);
    // the control on DAX: the image holds every page in plaintext
    const dax = cell('plain-mmap', 'mktme', true, 'dax');
    assert.deepEqual(dax.leaks, { media: ['dax'], bytes: 12 * 4096 });
    // encrypted DAX: the image holds ciphertext only
    assert.deepEqual(cell('madvise-encrypt', 'mktme', true, 'dax').leaks, { media: [], bytes: 0 });
  });

  it('counters explain the cells', () => {
    const swap = cell('encrypt-mprotect', 'mktme', true, 'swap').counters;
    assert.ok(swap.swap_out > 0 && swap.swap_in > 0);
    assert.equal(swap.plaintext_exposed_bytes, swap.swap_out * 4096); // plaintext reaches unencrypted swap
    const mig = cell('madvise-encrypt', 'mktme', true, 'migration').counters;
    assert.equal(mig.migrated, 12);
    assert.equal(mig.migrate_failed, 0);
    const dev = cell('dev-mktme', 'mktme', true, 'migration').counters;
    assert.equal(dev.pinned_pages, 12);
    assert.equal(dev.migrate_failed, 12);
    const secret = cell('memfd-secret', 'mktme', true, 'basic');
    assert.equal(secret.outcome, 'secret');
    assert.equal(secret.counters.direct_map_removed, 12);
    const unpatched = cell('encrypt-mprotect', 'mktme', false, 'basic').counters;
    assert.equal(unpatched.enosys, 1);
    const dax = cell('madvise-encrypt', 'mktme', true, 'dax').counters;
    assert.equal(dax.plaintext_exposed_bytes, 0);
    assert.equal(dax.integrity_errors, 0);
  });
});

describe('other hardware', () => {
  for (const profile of ['sev', 'tdx']) {
    it(`${profile}: encrypted memory is pinned: no swap, no migration`, () => {
      for (const design of ['encrypt-mprotect', 'madvise-encrypt'] as const) {
        assert.equal(show(cell(design, profile, true, 'basic')), 'encrypted');
        assert.equal(show(cell(design, profile, true, 'swap')), 'unsupported/ENOMEM');
        assert.equal(show(cell(design, profile, true, 'migration')), 'unsupported/EBUSY');
      }
    });
  }

  it('DAX on every profile: only hardware that takes a key from software can encrypt persistent memory', () => {
    // the expected outcome comes from the profile's data and the design, never from its name
    for (const profile of PROFILE_NAMES)
      for (const design of DESIGN_NAMES) {
        const r = cell(design, profile, true, 'dax');
        const where = `${design} on ${profile}: ${show(r)} (${r.detail})`;
        if (design === 'madvise-encrypt' && getProfile(profile).keyFromSoftware) assert.equal(r.outcome, 'encrypted', where);
        else assert.notEqual(r.outcome, 'encrypted', where);
        if (design === 'madvise-encrypt' && !getProfile(profile).keyFromSoftware && getProfile(profile).nrKeyids > 0)
          assert.equal(show(r), 'unsupported/EINVAL', `${where}: add_key refuses the user key`);
      }
  });

  it('sgx: swap goes through EWB/ELDU, so no plaintext reaches swap', () => {
    const r = cell('encrypt-mprotect', 'sgx', true, 'swap');
    assert.equal(show(r), 'encrypted');
    assert.ok(r.counters.swap_out > 0);
    assert.equal(r.counters.plaintext_exposed_bytes, 0);
  });

  it('none: no KeyIDs; careful programs fall back, madvise just works', () => {
    // guest_memfd gives a process shared plaintext memory on any hardware: it uses no key
    const want = (d: DesignName) => (d === 'memfd-secret' ? 'secret' : d === 'plain-mmap' || d === 'guest-memfd' ? 'plaintext' : 'plaintext-fallback');
    for (const design of DESIGN_NAMES) {
      const r = cell(design, 'none', true, 'basic');
      assert.equal(r.outcome, want(design), design);
    }
  });
});

describe('every cell of every profile', () => {
  for (const profile of PROFILE_NAMES)
    it(`${profile}: no data loss anywhere, encrypted cells read back intact`, () => {
      for (const design of DESIGN_NAMES)
        for (const patched of [false, true])
          for (const sc of SCENARIOS) {
            const r = cell(design, profile, patched, sc);
            const where = `${design} ${profile} ${patched ? 'patched' : 'unpatched'} ${sc}: ${r.detail}`;
            assert.notEqual(r.outcome, 'data-loss', where);
            assert.notEqual(r.outcome, 'crashed', where); // careful programs never crash
            assert.equal(r.counters.integrity_errors, 0, where);
            assert.equal(r.counters.alias_conflicts, 0, where);
            if (!patched) assert.notEqual(r.outcome, 'encrypted', where);
          }
    });
});

describe('plaintext is found exactly where the outcome says so', () => {
  // every design x profile x kernel x program x scenario: write a marker, force swap,
  // migration or DAX persistence, release; scan free RAM, the swap file and the DAX image
  const EXPOSED = new Set(['plaintext', 'plaintext-fallback', 'leaked']);
  for (const profile of PROFILE_NAMES)
    it(`${profile}: a scan finds the marker in swap, DAX or free RAM iff the outcome is plaintext, plaintext-fallback or leaked`, () => {
      for (const design of DESIGN_NAMES)
        for (const patched of [false, true])
          for (const careful of [true, false])
            for (const sc of SCENARIOS) {
              const r = cell(design, profile, patched, sc, careful);
              const found = r.leaks.bytes > 0 || (r.released?.bytes ?? 0) > 0;
              const where = `${design} ${patched ? 'patched' : 'unpatched'} ${careful ? 'careful' : 'naive'} ${sc}: ${show(r)}, leaks ${JSON.stringify(r.leaks)}, after release ${JSON.stringify(r.released ?? null)}`;
              assert.equal(found, EXPOSED.has(r.outcome), where);
              // secretmem scrubs its frames on free: nothing of it is left in free RAM
              if (design === 'memfd-secret' && r.outcome === 'secret') assert.deepEqual(r.released, NO_LEAK, where);
            }
    });
});

describe('leak scans', () => {
  it('free RAM: frames freed with plaintext in them are found, page by page; a protected outcome becomes leaked', () => {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 0 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
    const t = k.spawn();
    const addr = k.syscall(t, NR.mmap, 0, 5 * 4096, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert.equal(writePattern(k.localCpu(t), addr, 5, 11, new Uint8Array(4096)), 0);
    assert.deepEqual(scanLeaks(k, [11], 5), { media: [], bytes: 0 }); // in use: not a leak
    assert.equal(k.syscall(t, NR.munmap, addr, 5 * 4096), 0);
    assert.deepEqual(scanLeaks(k, [11], 5), { media: ['free-ram'], bytes: 5 * 4096 });
    assert.deepEqual(scanLeaks(k, [12], 5), { media: [], bytes: 0 }); // another seed's pages are not there
    const leak = scanLeaks(k, [11], 5);
    assert.equal(withLeaks('encrypted', leak), 'leaked');
    assert.equal(withLeaks('secret', leak), 'leaked');
    assert.equal(withLeaks('plaintext', leak), 'plaintext');
    assert.equal(withLeaks('unsupported', leak), 'unsupported');
    assert.equal(withLeaks('encrypted', { media: [], bytes: 0 }), 'encrypted');
    k.shutdown();
  });
});

describe('what the frames hold', () => {
  function boot() {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 0 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
    for (const d of allDesigns()) d.install(k);
    const t = k.spawn();
    return { m, k, t, cpu: k.localCpu(t), sys: (nr: number, ...a: (number | string)[]) => k.syscall(t, nr, ...a) };
  }

  it('a half-encrypted region is not encrypted; the whole of it is', () => {
    const { k, t, cpu, sys } = boot();
    const addr = sys(NR.mmap, 0, 4 * 4096, 0, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const serial = sys(NR.add_key, 'mktme', 'a', 'type=cpu algorithm=aes-xts-128');
    assert.equal(sys(NR.encrypt_mprotect, addr, 2 * 4096, 3, serial), 0);
    assert.equal(sys(NR.mprotect, addr + 2 * 4096, 2 * 4096, 3), 0);
    const buf = new Uint8Array(4096);
    assert.equal(writePattern(cpu, addr, 4, 5, buf), 0);
    assert.equal(observeFrames(k, t, addr, 4, 5), 'plaintext');
    assert.equal(observeFrames(k, t, addr, 2, 5), 'encrypted');
    assert.equal(sys(NR.encrypt_mprotect, addr + 2 * 4096, 2 * 4096, 3, serial), 0);
    assert.equal(writePattern(cpu, addr, 4, 5, buf), 0);
    assert.equal(observeFrames(k, t, addr, 4, 5), 'encrypted');
    k.shutdown();
  });

  it('the verifier counts every bad page, the first and the last included', () => {
    const { m, k, t, cpu, sys } = boot();
    const addr = sys(NR.mmap, 0, 6 * 4096, 3, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const buf = new Uint8Array(4096);
    const got = new Uint8Array(4096);
    assert.equal(writePattern(cpu, addr, 6, 8, buf), 0);
    assert.equal(verifyPattern(cpu, addr, 6, 8, buf, got), 0);
    const frame = (i: number) => ptePfn(k.pool.get(t.mm.pgd, addr + i * 4096)) * 4096;
    m.memory.buf.u8[frame(5) + 4095] ^= 0x80;
    assert.equal(verifyPattern(cpu, addr, 6, 8, buf, got), 1);
    m.memory.buf.u8[frame(0)] ^= 0x80;
    assert.equal(verifyPattern(cpu, addr, 6, 8, buf, got), 2);
    assert.equal(verifyPattern(cpu, addr, 6, 9, buf, got), 6); // another seed: every page differs
    k.shutdown();
  });
});
