// When two errors combine, which errno wins. Each case pairs two faults that
// each have their own errno, and the expected answer is the check that comes
// first in the code the design follows (cited per case). Also: a KeyID change
// by MADV_ENCRYPT drops the range's pages, every time the key changes and only then.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { allDesigns } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MADV_ENCRYPT, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED } from '../../kernel/uapi.js';

const P = 4096;
const BASE = 0x2_0000_0000;
const RW = 3;
const CPU_KEY = 'type=cpu algorithm=aes-xts-128';

function boot() {
  const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 4 }, nrCpus: 1 });
  const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256 });
  for (const d of allDesigns()) d.install(k);
  const t = k.spawn();
  const nobody = k.spawn({ uid: 1000, caps: [] });
  const sys = (nr: number, ...a: (number | string | number[])[]) => k.syscall(t, nr, ...a);
  const sysAs = (task: typeof t, nr: number, ...a: (number | string | number[])[]) => k.syscall(task, nr, ...a);
  return { k, t, nobody, sys, sysAs, cpu: k.localCpu(t) };
}

describe('errno order when two errors combine', () => {
  it('add_key: the key type, then the capability, then the payload (mktme_preparse_payload checks capable() first)', () => {
    const { nobody, sysAs } = boot();
    assert.equal(sysAs(nobody, NR.add_key, 'mktme', 'a', 'type=bogus'), -E.EACCES);
    assert.equal(sysAs(nobody, NR.add_key, 'no-such-type', 'a', 'type=bogus'), -E.ENODEV);
    const { sys } = boot();
    assert.equal(sys(NR.add_key, 'mktme', 'a', 'type=bogus'), -E.EINVAL);
  });

  it('mmap: an unaligned offset, then a bad fd, then len 0 (sys_mmap, ksys_mmap_pgoff, do_mmap)', () => {
    const { sys } = boot();
    assert.equal(sys(NR.mmap, 0, 0, RW, MAP_PRIVATE, 1234, 1), -E.EINVAL); // offset & ~PAGE_MASK
    assert.equal(sys(NR.mmap, 0, 0, RW, MAP_PRIVATE, 1234, 0), -E.EBADF); // fget before !len
    assert.equal(sys(NR.mmap, 0, 0, RW, MAP_PRIVATE, -1, 0), -E.EBADF);
    assert.equal(sys(NR.mmap, 0, 0, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), -E.EINVAL);
    // a bad fd with MAP_FIXED over a mapping: refused before anything is unmapped
    assert.equal(sys(NR.mmap, BASE, P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    assert.equal(sys(NR.mmap, BASE, P, RW, MAP_SHARED | MAP_FIXED, 999, 0), -E.EBADF);
    assert.equal(sys(NR.munmap, BASE, P), 0);
  });

  it('encrypt_mprotect: len alignment, then the key (ENOKEY, EACCES), then anonymity (MKTME RFC patch 45)', () => {
    const { sys, sysAs, nobody } = boot();
    assert.equal(sys(NR.mmap, BASE, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    const shm = sys(NR.mmap, BASE + 8 * P, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    const serial = sys(NR.add_key, 'mktme', 'a', CPU_KEY);
    assert.equal(sys(NR.encrypt_mprotect, BASE, P + 1, RW, 424242), -E.EINVAL); // unaligned len and a bad serial
    assert.equal(sysAs(nobody, NR.encrypt_mprotect, BASE, P + 1, RW, serial), -E.EINVAL); // unaligned len and no permission
    assert.equal(sys(NR.encrypt_mprotect, shm, P, RW, 424242), -E.ENOKEY); // bad serial and a shared mapping
    assert.equal(sysAs(nobody, NR.encrypt_mprotect, shm, P, RW, serial), -E.EACCES); // no permission and a shared mapping
    assert.equal(sys(NR.encrypt_mprotect, shm, P, RW, serial), -E.EINVAL);
    assert.equal(sys(NR.encrypt_mprotect, BASE, 2 * P, RW, serial), 0);
  });

  it('madvise(MADV_ENCRYPT): an unmapped range, then the key, then the mapping kind', () => {
    const { sys } = boot();
    const dax = sys(NR.openat, AT_FDCWD, '/dev/dax0.0', 2);
    assert.ok(dax >= 0);
    const shm = sys(NR.mmap, BASE + 8 * P, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    // nothing mapped there, and a bad serial: madvise finds the hole first (ENOMEM)
    assert.equal(sys(NR.madvise, BASE + 32 * P, P, MADV_ENCRYPT, 424242), -E.ENOMEM);
    // a bad serial on a mapping that cannot take it: the key is looked up first
    assert.equal(sys(NR.madvise, shm, P, MADV_ENCRYPT, 424242), -E.ENOKEY);
  });
});

describe('MADV_ENCRYPT and KeyID changes', () => {
  it('drops the pages of the range on every KeyID change, and only then', () => {
    const { k, sys, cpu } = boot();
    assert.equal(sys(NR.mmap, BASE, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    const data = new Uint8Array(P).fill(0x5a);
    for (let i = 0; i < 4; i++) assert.equal(cpu.store(BASE + i * P, data), 0);
    const a = sys(NR.add_key, 'mktme', 'a', CPU_KEY);
    const b = sys(NR.add_key, 'mktme', 'b', CPU_KEY);
    const zapped = () => k.counters.get('pages_zapped');
    const before = zapped();
    assert.equal(sys(NR.madvise, BASE, 4 * P, MADV_ENCRYPT, a), 0);
    assert.equal(zapped() - before, 4); // the old KeyID's pages are gone
    const out = new Uint8Array(P);
    cpu.load(BASE + 3 * P, out);
    assert.ok(out.every((x) => x === 0), 'data is not preserved across a KeyID change');
    for (let i = 0; i < 4; i++) assert.equal(cpu.store(BASE + i * P, data), 0);
    const mid = zapped();
    assert.equal(sys(NR.madvise, BASE, 4 * P, MADV_ENCRYPT, a), 0); // the same key: nothing changes
    assert.equal(zapped(), mid);
    cpu.load(BASE, out);
    assert.ok(out.every((x) => x === 0x5a));
    assert.equal(sys(NR.madvise, BASE + P, 2 * P, MADV_ENCRYPT, b), 0); // another key on part of it
    assert.equal(zapped() - mid, 2);
    cpu.load(BASE + P, out);
    assert.ok(out.every((x) => x === 0));
    cpu.load(BASE, out);
    assert.ok(out.every((x) => x === 0x5a), 'pages outside the range keep their data');
  });
});
