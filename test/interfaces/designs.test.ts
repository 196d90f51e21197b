// Each design's kernel side on its own: the checks and effects the thread and
// the man pages describe.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { DEV_MKTME, MKTME_IOC_SET_KEY } from '../../interfaces/dev-mktme.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { PG_SECRET } from '../../kernel/page_alloc.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, NO_FEATURES, type Task } from '../../kernel/kernel.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MADV_ENCRYPT, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED } from '../../kernel/uapi.js';

const P = 4096;
const BASE = 0x2_0000_0000;
const RW = 3;
const CPU_KEY = 'type=cpu algorithm=aes-xts-128';

function boot(features = ALL_FEATURES, daxFrames = 0) {
  const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [128, 128], daxFrames }, nrCpus: 1 });
  const k = new Kernel(m, { features, pgtableSlots: 256 });
  for (const d of allDesigns()) d.install(k);
  const t = k.spawn();
  return { m, k, t, cpu: k.localCpu(t), sys: (nr: number, ...a: (number | string | number[])[]) => k.syscall(t, nr, ...a) };
}
const anon = (sys: (nr: number, ...a: number[]) => number, at: number, pages: number, prot = RW) =>
  sys(NR.mmap, at, pages * P, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
const keyids = (t: Task) => t.mm.vmas.vmas.map((v) => `${(v.start - BASE) / P}-${(v.end - BASE) / P}:${v.keyid}`);

describe('encrypt-mprotect', () => {
  it('checks len alignment, the key, anonymity (before any change), in that order', () => {
    const { k, t, sys } = boot();
    anon(sys, BASE, 4);
    const serial = sys(NR.add_key, 'mktme', 'a', CPU_KEY);
    assert.equal(sys(NR.encrypt_mprotect, BASE, P + 1, RW, serial), -E.EINVAL);
    assert.equal(sys(NR.mprotect, BASE, P + 1, RW), 0); // plain mprotect rounds up
    assert.equal(sys(NR.encrypt_mprotect, BASE, P, RW, 424242), -E.ENOKEY);
    const other = k.spawn({ uid: 1000, caps: [] });
    assert.equal(k.syscall(other, NR.encrypt_mprotect, BASE, P, RW, serial), -E.EACCES);
    // a shared (shmem) mapping next to the anonymous one: EINVAL, nothing changed
    sys(NR.mmap, BASE + 4 * P, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    assert.equal(sys(NR.encrypt_mprotect, BASE, 6 * P, RW, serial), -E.EINVAL);
    assert.deepEqual(keyids(t), ['0-4:0', '4-6:0']);
    assert.equal(sys(NR.encrypt_mprotect, BASE + P, P, RW, serial), 0);
    assert.deepEqual(keyids(t), ['0-1:0', '1-2:1', '2-4:0', '4-6:0']);
  });

  it('zaps pages on a KeyID change and never merges VMAs of different KeyIDs', () => {
    const { t, cpu, sys } = boot();
    anon(sys, BASE, 2, 0);
    const k1 = sys(NR.add_key, 'mktme', 'a', CPU_KEY);
    const k2 = sys(NR.add_key, 'mktme', 'b', CPU_KEY);
    assert.equal(sys(NR.encrypt_mprotect, BASE, P, RW, k1), 0);
    assert.equal(sys(NR.encrypt_mprotect, BASE + P, P, RW, k2), 0);
    assert.deepEqual(keyids(t), ['0-1:1', '1-2:2']);
    cpu.store(BASE, new Uint8Array(P).fill(9));
    assert.equal(sys(NR.encrypt_mprotect, BASE, P, RW, k2), 0); // now mergeable: same key, same flags
    assert.deepEqual(keyids(t), ['0-2:2']);
    const out = new Uint8Array(P).fill(1);
    cpu.load(BASE, out);
    assert.ok(out.every((b) => b === 0), 'data is not preserved across KeyID changes');
  });
});

describe('dev-mktme', () => {
  it('needs a key before mmap, pins its pages, refuses other devices', () => {
    const { k, cpu, sys } = boot(ALL_FEATURES, 4);
    const fd = sys(NR.openat, AT_FDCWD, DEV_MKTME, 2);
    assert.ok(fd >= 3);
    assert.equal(sys(NR.mmap, 0, P, RW, MAP_SHARED, fd, 0), -E.ENOKEY);
    const serial = sys(NR.add_key, 'mktme', 'a', CPU_KEY);
    assert.equal(sys(NR.ioctl, fd, MKTME_IOC_SET_KEY, serial), 0);
    assert.equal(sys(NR.ioctl, fd, MKTME_IOC_SET_KEY, serial), -E.EBUSY);
    assert.equal(sys(NR.ioctl, fd, 0x1234, 0), -E.ENOTTY);
    assert.equal(sys(NR.mmap, 0, P, RW, MAP_PRIVATE, fd, 0), -E.EINVAL);
    const a = sys(NR.mmap, 0, 2 * P, RW, MAP_SHARED, fd, 0);
    assert.equal(cpu.store(a, new Uint8Array(P).fill(3)), 0);
    assert.equal(k.alloc.nrPinned, 1);
    const dax = sys(NR.openat, AT_FDCWD, DAX_PATH, 2);
    assert.equal(sys(NR.ioctl, dax, MKTME_IOC_SET_KEY, serial), -E.ENOTTY);
    assert.equal(sys(NR.munmap, a, 2 * P), 0);
    assert.equal(sys(NR.close, fd), 0);
    assert.equal(k.alloc.nrPinned, 0); // the last reference freed the driver's pages
  });
});

describe('madvise-encrypt', () => {
  it('works on anonymous and DAX mappings, EINVAL on other files, EINVAL when absent', () => {
    const { sys, t } = boot(ALL_FEATURES, 4);
    anon(sys, BASE, 2);
    const serial = sys(NR.add_key, 'mktme', 'a', CPU_KEY);
    assert.equal(sys(NR.madvise, BASE, 2 * P, MADV_ENCRYPT, serial), 0);
    assert.deepEqual(keyids(t), ['0-2:1']);
    assert.equal(sys(NR.madvise, BASE, P, MADV_ENCRYPT, 999), -E.ENOKEY);
    const shm = sys(NR.mmap, BASE + 8 * P, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    assert.equal(sys(NR.madvise, shm, P, MADV_ENCRYPT, serial), -E.EINVAL);
    const dax = sys(NR.openat, AT_FDCWD, DAX_PATH, 2);
    const d = sys(NR.mmap, 0, 4 * P, RW, MAP_SHARED, dax, 0);
    assert.equal(sys(NR.madvise, d, 4 * P, MADV_ENCRYPT, serial), 0);
    const off = boot(NO_FEATURES);
    anon(off.sys, BASE, 1);
    assert.equal(off.sys(NR.madvise, BASE, P, MADV_ENCRYPT, 1), -E.EINVAL);
  });
});

describe('memfd-secret', () => {
  it('MAP_SHARED only, unevictable, removed from the direct map; ENOSYS when absent', () => {
    const { k, cpu, sys } = boot();
    const fd = sys(NR.memfd_secret, 0);
    assert.ok(fd >= 3);
    assert.equal(sys(NR.memfd_secret, 1), -E.EINVAL);
    assert.equal(sys(NR.ftruncate, fd, 2 * P), 0);
    assert.equal(sys(NR.mmap, 0, 2 * P, RW, MAP_PRIVATE, fd, 0), -E.EINVAL);
    const a = sys(NR.mmap, 0, 2 * P, RW, MAP_SHARED, fd, 0);
    assert.ok(a > 0);
    assert.equal(cpu.store(a + P, new Uint8Array(P).fill(1)), 0);
    assert.equal(k.counters.get('direct_map_removed'), 1);
    assert.equal(k.alloc.nrPinned, 1);
    assert.equal(boot(NO_FEATURES).sys(NR.memfd_secret, 0), -E.ENOSYS);
  });

  it('frames go back to the free pool cleared (secretmem_free_folio), not holding the secret', () => {
    const { k, m, cpu, sys } = boot();
    const fd = sys(NR.memfd_secret, 0);
    assert.equal(sys(NR.ftruncate, fd, 2 * P), 0);
    const a = sys(NR.mmap, 0, 2 * P, RW, MAP_SHARED, fd, 0);
    assert.equal(cpu.store(a, new Uint8Array(P).fill(0xa5)), 0);
    const pfn = [...k.alloc.flags.keys()].find((p) => k.alloc.flags[p] & PG_SECRET)!;
    assert.equal(m.memory.buf.u8[pfn * P], 0xa5); // plaintext in the frame while it is in use
    assert.equal(sys(NR.munmap, a, 2 * P), 0);
    assert.equal(sys(NR.close, fd), 0);
    assert.equal(k.alloc.isAllocated(pfn), false);
    assert.ok(m.memory.buf.u8.subarray(pfn * P, (pfn + 1) * P).every((x) => x === 0));
  });
});

describe('plain-mmap (the control)', () => {
  it('needs no kernel feature: the same plain anonymous memory on every kernel, nothing to stack on DAX', () => {
    for (const features of [ALL_FEATURES, NO_FEATURES]) {
      const env = boot(features);
      const d = getDesign('plain-mmap');
      const r = d.allocate({ sys: env.sys, cpu: env.cpu }, 4 * P, { description: 'x', payload: CPU_KEY }, false);
      assert.ok(!('failed' in r) && r.addr > 0 && !r.fallback && r.errno === 0 && r.fd === -1);
      assert.equal(env.k.counters.get('syscalls'), 1); // one mmap, no add_key
      assert.equal(d.encryptMapping({ sys: env.sys, cpu: env.cpu }, r.addr, 4 * P, -1, { description: 'x', payload: CPU_KEY }), 0);
    }
  });
});

describe('registry', () => {
  it('names every design and rejects unknown names', () => {
    assert.deepEqual(
      allDesigns().map((d) => d.name),
      ['plain-mmap', 'encrypt-mprotect', 'dev-mktme', 'madvise-encrypt', 'memfd-secret', 'guest-memfd'],
    );
    assert.throws(() => getDesign('sys-encrypt'), /interface: unknown design 'sys-encrypt'/);
  });
});
