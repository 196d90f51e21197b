// The QEMU cells against their sources (../../../shared/research-qemu-guestmemfd.md,
// Kai Huang's points in the 2019 thread): who can give a guest an encrypted
// NVDIMM, guest_memfd's unswappable and unmovable memory, SEV's pins, bounce
// traffic exactly where the host cannot read guest memory, and keys that run
// out at the hardware's count.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { getProfile } from '../../hardware/profiles.js';
import { DESIGN_NAMES } from '../../interfaces/contract.js';
import { getDesign } from '../../interfaces/registry.js';
import { isConfidential } from '../../kernel/kvm.js';
import { PG_INACCESSIBLE } from '../../kernel/page_alloc.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { startCell, type CellStart } from '../../workloads/cell.js';
import { EXTRA_PROCS } from '../../workloads/key-exhaustion.js';
import { K, POOL_SLABS, REQS, guestOf, virtioRequest } from '../../workloads/qemu.js';
import { getWorkload } from '../../workloads/registry.js';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE, Swiotlb, swiotlbPoolBytes } from '../../workloads/swiotlb.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const P = 4096;

async function open(workload: string, design: string, hardware: string): Promise<CellStart> {
  const workdir = mkdtempSync(join(tmpdir(), 'memcrypt-guest-'));
  dirs.push(workdir);
  return startCell({ design, hardware, kernel: 'patched', workload: getWorkload(workload), threads: 1, seed: 5, backend: 'openssl', workdir });
}
async function cell(workload: string, design: string, hardware: string): Promise<CellStart> {
  const c = await open(workload, design, hardware);
  await c.session.close();
  return c;
}
const show = (c: CellStart) => `${c.outcome}${c.errno ? '/' + c.errno : ''}`;

describe('the guest NVDIMM (QEMU maps /dev/dax0.0 from its own fd)', () => {
  it('dev-mktme cannot encrypt it (its key ioctl exists only on its own files); madvise-encrypt can', async () => {
    assert.equal(show(await cell('qemu-nvdimm', 'dev-mktme', 'mktme')), 'unsupported/ENOTTY');
    const m = await cell('qemu-nvdimm', 'madvise-encrypt', 'mktme');
    assert.equal(show(m), 'encrypted');
    assert.deepEqual(m.leaks, { media: [], bytes: 0 }, 'the DAX frames hold ciphertext');
    // the control's NVDIMM holds the guest's data in the clear, on the medium
    assert.deepEqual((await cell('qemu-nvdimm', 'plain-mmap', 'mktme')).leaks.media, ['dax']);
  });

  it('guest_memfd has no file or DAX backing, so it has no NVDIMM to offer', async () => {
    for (const hw of ['mktme', 'sev', 'tdx']) assert.equal(show(await cell('qemu-nvdimm', 'guest-memfd', hw)), 'unsupported', hw);
  });
});

describe('guest_memfd', () => {
  it('is unswappable (charged, never reclaimed: ENOMEM, nothing in swap) and unmovable (EINVAL)', async () => {
    const sw = await cell('swap', 'guest-memfd', 'mktme');
    assert.equal(show(sw), 'unsupported/ENOMEM');
    assert.equal(sw.counters.swap_out, 0);
    assert.equal(show(await cell('migration', 'guest-memfd', 'mktme')), 'unsupported/EINVAL');
  });

  it("an SNP guest's private pages are guest_memfd's: inaccessible to the host, under the VM's key", async () => {
    const c = await open('qemu-guest', 'guest-memfd', 'sev');
    try {
      assert.equal(show(c), 'encrypted');
      const { vm } = guestOf(c.session)!;
      for (let i = 0; i < c.session.pages; i++) {
        const pte = vm.guestPte(i * P);
        assert.ok(c.session.k.alloc.flags[ptePfn(pte)] & PG_INACCESSIBLE, `page ${i}`);
      }
      assert.equal(c.counters.pinned_pages, 0, 'KVM pins nothing: guest_memfd holds the pages');
      assert.ok(c.counters.conversions > 0, 'RAM made private, then the swiotlb pool shared');
    } finally {
      await c.session.close();
    }
  });
});

describe('SEV', () => {
  it('pins all guest RAM (KVM_MEMORY_ENCRYPT_REG_REGION); an SNP guest with guest_memfd pins none', async () => {
    const ramPages = 32 + K + (POOL_SLABS * IO_TLB_SIZE) / P;
    for (const design of ['plain-mmap', 'encrypt-mprotect', 'madvise-encrypt']) {
      const c = await cell('qemu-guest', design, 'sev');
      assert.equal(show(c), 'encrypted', design);
      assert.equal(c.counters.pinned_pages, ramPages, design);
    }
    // GUP refuses memfd_secret pages: the pin fails, and SEV says ENOMEM
    const s = await cell('qemu-guest', 'memfd-secret', 'sev');
    assert.equal(show(s), 'unsupported/ENOMEM');
    assert.ok(s.counters.gup_failures >= 1);
  });
});

describe('virtual DMA', () => {
  it('bounces exactly where the host cannot read guest memory: one copy per write, the I/O counted as shared, not leaked', async () => {
    for (const hw of ['mktme', 'sev', 'tdx'])
      for (const design of DESIGN_NAMES) {
        if (design === 'memfd-secret') continue; // its guest never runs (below)
        const c = await cell('qemu-guest', design, hw);
        const where = `${design} on ${hw}: ${c.detail}`;
        const confidential = isConfidential(getDesign(design).vmType(getProfile(hw).confidentialVm));
        assert.ok(c.timeable, where);
        if (confidential) {
          assert.equal(c.counters.bounce_copies, REQS, where);
          assert.equal(c.counters.bounce_bytes, REQS * K * P, where);
          assert.equal(c.counters.io_shared_bytes, REQS * K * P, where);
        } else {
          assert.equal(c.counters.bounce_copies + c.counters.bounce_bytes + c.counters.io_shared_bytes, 0, where);
        }
        assert.deepEqual(c.leaks, { media: [], bytes: 0 }, where);
      }
  });

  it('a read bounces twice (map copies in every direction, unmap copies back), and the guest gets what the device wrote', async () => {
    const c = await open('qemu-guest', 'guest-memfd', 'tdx');
    try {
      const before = c.session.counters(0);
      const r = virtioRequest(c.session, 77, 0, false);
      assert.deepEqual(r, { fault: 0, errors: 0 });
      const after = c.session.counters(0);
      assert.equal(after.bounce_copies - before.bounce_copies, 2);
      assert.equal(after.bounce_bytes - before.bounce_bytes, 2 * K * P);
      assert.equal(after.io_shared_bytes - before.io_shared_bytes, K * P);
    } finally {
      await c.session.close();
    }
  });

  it('KVM cannot map memfd_secret pages: that guest stops at its first access (EFAULT)', async () => {
    const c = await cell('qemu-guest', 'memfd-secret', 'mktme');
    assert.equal(show(c), 'crashed/EFAULT');
    assert.ok(c.counters.gup_failures >= 1);
  });
});

describe('swiotlb', () => {
  it("the pool is 6% of a confidential guest's RAM, clamped to [64 MiB, 1 GiB]", () => {
    assert.equal(swiotlbPoolBytes(512 << 20), 64 << 20);
    assert.equal(swiotlbPoolBytes(4 * 2 ** 30), Math.ceil((4 * 2 ** 30 * 6) / 100 / IO_TLB_SIZE / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE * IO_TLB_SIZE);
    assert.equal(swiotlbPoolBytes(64 * 2 ** 30), 2 ** 30);
  });

  it('maps at most one 128-slot segment (256 KiB), page-aligned from a moving cursor; a full pool fails the mapping', () => {
    const pool = new Swiotlb(0x10_0000, 2 * IO_TLB_SEGSIZE);
    assert.equal(pool.map(256 * 1024 + 1), -1, 'larger than a segment');
    assert.equal(pool.map(100), 0);
    assert.equal(pool.map(P), 2, 'page-aligned: slot 1 is skipped');
    assert.equal(pool.slotGpa(2), 0x10_0000 + 2 * IO_TLB_SIZE);
    // a segment-sized mapping cannot start in the middle of a segment
    assert.equal(pool.map(256 * 1024), 128);
    assert.equal(pool.map(256 * 1024), -1, 'no whole segment left');
    pool.unmap(0, 100);
    pool.unmap(2, P);
    assert.equal(pool.map(256 * 1024), 0, 'the cursor wrapped to the freed segment');
    assert.equal(pool.inUse, 256);
    assert.equal(pool.map(100), -1, 'full');
    pool.unmap(0, 256 * 1024);
    assert.throws(() => pool.unmap(0, P), /unmapped twice/);
  });
});

describe('key exhaustion', () => {
  it("keys run out at the profile's count: ENOKEY for MKTME keys, EBUSY for SEV ASIDs, ENOSPC for TDX HKIDs", async () => {
    for (const [hw, design, want] of [
      ['mktme', 'encrypt-mprotect', 'plaintext-fallback/ENOKEY'],
      ['tdx', 'madvise-encrypt', 'plaintext-fallback/ENOKEY'],
      ['sev', 'guest-memfd', 'unsupported/EBUSY'],
      ['tdx', 'guest-memfd', 'unsupported/ENOSPC'],
    ] as const) {
      const c = await cell('key-exhaustion', design, hw);
      const n = getProfile(hw).nrKeyids;
      assert.equal(show(c), want, `${design} on ${hw}`);
      assert.equal(c.counters.procs, n + EXTRA_PROCS);
      assert.equal(c.counters.procs_encrypted, n, `${design} on ${hw}`);
    }
  });

  it('designs without keys never run out, and protect what they protect', async () => {
    const s = await cell('key-exhaustion', 'memfd-secret', 'mktme');
    assert.equal(show(s), 'secret');
    assert.equal(s.counters.procs_encrypted, 0);
    const g = await cell('key-exhaustion', 'guest-memfd', 'mktme');
    assert.equal(show(g), 'plaintext', 'no confidential VMs on MKTME: no key, no encryption');
  });

  it('key churn: every KeyID is programmed and cleared again each round', async () => {
    const c = await cell('key-exhaustion', 'encrypt-mprotect', 'mktme');
    // 63 keys programmed (PCONFIG SET_KEY_RANDOM) and 63 cleared (CLEAR_KEY)
    assert.equal(c.counters.key_programs, 2 * 63);
    assert.ok(c.counters.clflush_lines > 0, 'keyed pages are flushed when freed');
  });
});
