// The designs and their helpers where the other tests did not look: what a
// careful or naive helper reports when a later step fails, what release()
// asks of the kernel, errors the kernel side must pass on (max_map_count,
// OOM under a memory limit), page-cache sharing of the designs' own files,
// and the names and labels that reach the user (/proc/pid/maps, keys, `list`).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { overPlain } from '../../bench/runner.js';
import type { Row } from '../../bench/schema.js';
import { Machine } from '../../hardware/machine.js';
import { CPU_KEY, DESIGN_NAMES, userKey, type AllocResult, type Allocation, type UserEnv } from '../../interfaces/contract.js';
import { DEV_MKTME, MKTME_IOC_SET_KEY } from '../../interfaces/dev-mktme.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, NO_FEATURES, type KernelFeatures } from '../../kernel/kernel.js';
import { PG_SECRET, PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MADV_ENCRYPT, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, MMAP_BASE } from '../../kernel/uapi.js';

const P = 4096;
const RW = 3;
const HUGE = 2 ** 47; // more than the address space: mmap answers ENOMEM

interface BootOpts {
  profile?: string;
  features?: KernelFeatures;
  maxMapCount?: number;
  memLimit?: number;
}

function boot(o: BootOpts = {}) {
  const m = Machine.create({ profile: o.profile ?? 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 4 }, nrCpus: 1 });
  const k = new Kernel(m, { features: o.features ?? ALL_FEATURES, pgtableSlots: 256, maxMapCount: o.maxMapCount });
  for (const d of allDesigns()) d.install(k);
  const t = k.spawn({ memLimit: o.memLimit });
  const env: UserEnv = { sys: (nr, ...a) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
  const syscalls = () => k.counters.get('syscalls');
  return { m, k, t, env, syscalls };
}

function allocation(r: AllocResult, what: string): Allocation {
  assert.ok(!('failed' in r), `${what}: gave up with ${JSON.stringify(r)}`);
  return r as Allocation;
}

describe('install: only into a kernel configured with the feature', () => {
  it('a kernel without any design feature answers as a kernel without the designs', () => {
    const { env } = boot({ features: NO_FEATURES });
    assert.equal(env.sys(NR.memfd_secret, 0), -E.ENOSYS);
    assert.equal(env.sys(NR.encrypt_mprotect, 0, P, RW, 1), -E.ENOSYS);
    assert.equal(env.sys(NR.openat, AT_FDCWD, DEV_MKTME, 2), -E.ENOENT);
    const a = env.sys(NR.mmap, 0, P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const serial = env.sys(NR.add_key, 'mktme', 'a', CPU_KEY.payload);
    assert.equal(env.sys(NR.madvise, a, P, MADV_ENCRYPT, serial), -E.EINVAL);
  });
});

describe('careful helpers when even the plain fallback memory cannot be had', () => {
  it('give up with mmap\'s errno instead of handing out MAP_FAILED as memory', () => {
    const cases: [design: string, o: BootOpts][] = [
      ['dev-mktme', { features: NO_FEATURES }], // open: ENOENT, then the fallback mmap fails
      ['memfd-secret', { features: NO_FEATURES }], // memfd_secret: ENOSYS, then the fallback mmap fails
      ['encrypt-mprotect', { profile: 'none' }], // add_key: ENODEV, then the fallback mmap fails
    ];
    for (const [d, o] of cases) {
      const { t, env } = boot(o);
      const r = getDesign(d).allocate(env, HUGE, CPU_KEY, true);
      assert.deepEqual(r, { failed: -E.ENOMEM }, d);
      assert.equal(t.mm.vmas.mapCount, 0, d);
    }
  });
});

describe('anonymous memory is reported as fd -1', () => {
  it('in every path that hands out anonymous memory, and release closes no file for it', () => {
    // [what, design, kernel, careful, fallback, errno, serial, release syscalls]
    const paths: [string, string, BootOpts, boolean, boolean, number, 'key' | number, number][] = [
      // open failed before add_key: the serial field carries the open's -errno; munmap only
      ['dev-mktme fallback (no driver)', 'dev-mktme', { features: NO_FEATURES }, true, true, -E.ENOENT, -E.ENOENT, 1],
      ['encrypt-mprotect success', 'encrypt-mprotect', {}, true, false, 0, 'key', 2],
      ['encrypt-mprotect fallback (ENOSYS)', 'encrypt-mprotect', { features: NO_FEATURES }, true, true, -E.ENOSYS, 'key', 2],
      ['encrypt-mprotect naive (ENOSYS, left PROT_NONE)', 'encrypt-mprotect', { features: NO_FEATURES }, false, false, -E.ENOSYS, 'key', 2],
      ['madvise-encrypt success', 'madvise-encrypt', {}, true, false, 0, 'key', 2],
    ];
    for (const [what, d, o, careful, fallback, errno, serial, calls] of paths) {
      const { k, t, env, syscalls } = boot(o);
      const a = allocation(getDesign(d).allocate(env, 2 * P, CPU_KEY, careful), what);
      assert.deepEqual([a.fd, a.fallback, a.errno], [-1, fallback, errno], what);
      assert.ok(a.addr > 0, what);
      if (serial === 'key') assert.ok(a.serial > 0, what);
      else assert.equal(a.serial, serial, what);
      const before = syscalls();
      getDesign(d).release(env, a);
      assert.equal(syscalls() - before, calls, `${what}: munmap (and keyctl for a key), no close`);
      assert.equal(t.mm.vmas.mapCount, 0, what);
      assert.equal(k.keys.keyidsInUse, 0, what);
    }
  });
});

describe('release enters the kernel only for what the allocation holds', () => {
  it('plain-mmap: munmap only (no fd, no key serial)', () => {
    const { t, env, syscalls } = boot();
    const a = allocation(getDesign('plain-mmap').allocate(env, 2 * P, CPU_KEY, true), 'plain-mmap');
    const before = syscalls();
    getDesign('plain-mmap').release(env, a);
    assert.equal(syscalls() - before, 1);
    assert.equal(t.mm.vmas.mapCount, 0);
  });

  it('memfd-secret: munmap and close, no keyctl for serial 0', () => {
    const { k, t, env, syscalls } = boot();
    const a = allocation(getDesign('memfd-secret').allocate(env, 2 * P, CPU_KEY, true), 'memfd-secret');
    assert.deepEqual([a.serial, a.fallback, a.errno], [0, false, 0]);
    assert.ok(a.fd >= 3);
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(1)), 0);
    const before = syscalls();
    getDesign('memfd-secret').release(env, a);
    assert.equal(syscalls() - before, 2);
    assert.equal(t.files.size, 0);
    assert.equal(k.alloc.nrPinned, 0);
  });

  it('a naive program\'s failed allocation: nothing mapped, nothing open, only a live key to drop', () => {
    // naive dev-mktme without the driver: open ENOENT, ioctl and mmap EBADF, but add_key worked
    const { k, env, syscalls } = boot({ features: NO_FEATURES });
    const a = allocation(getDesign('dev-mktme').allocate(env, 2 * P, CPU_KEY, false), 'dev-mktme naive');
    assert.ok(a.addr < 0 && a.fd < 0 && a.serial > 0);
    assert.equal(k.keys.keyidsInUse, 1);
    const before = syscalls();
    getDesign('dev-mktme').release(env, a);
    assert.equal(syscalls() - before, 1, 'keyctl only: no munmap of MAP_FAILED, no close of -ENOENT');
    assert.equal(k.keys.keyidsInUse, 0);
    // naive memfd-secret without the call: no fd, no mapping, no key: nothing to do at all
    const n = boot({ features: NO_FEATURES });
    const b = allocation(getDesign('memfd-secret').allocate(n.env, 2 * P, CPU_KEY, false), 'memfd-secret naive');
    assert.deepEqual([b.fd, b.serial, b.errno], [-E.ENOSYS, 0, -E.ENOSYS]);
    assert.ok(b.addr < 0);
    const start = n.syscalls();
    getDesign('memfd-secret').release(n.env, b);
    assert.equal(n.syscalls() - start, 0);
  });
});

describe('dev-mktme helper: what it reports', () => {
  it('careful success: the driver\'s memory, not a fallback, errno 0', () => {
    const { env } = boot();
    const a = allocation(getDesign('dev-mktme').allocate(env, 2 * P, CPU_KEY, true), 'dev-mktme');
    assert.ok(a.fd >= 3 && a.addr > 0 && a.serial > 0);
    assert.equal(a.fallback, false);
    assert.equal(a.errno, 0);
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(2)), 0);
  });

  it('naive: the errno of the first failing call it made, mmap\'s when only mmap failed', () => {
    // the key was set, mmap found no room: ENOMEM
    const { env } = boot();
    const a = allocation(getDesign('dev-mktme').allocate(env, HUGE, CPU_KEY, false), 'naive, no room');
    assert.deepEqual([a.addr, a.fallback, a.errno], [-E.ENOMEM, false, -E.ENOMEM]);
    assert.ok(a.fd >= 3 && a.serial > 0);
    // no KeyIDs: the ioctl failed (no such key) before mmap failed (no room)
    const none = boot({ profile: 'none' });
    const b = allocation(getDesign('dev-mktme').allocate(none.env, HUGE, CPU_KEY, false), 'naive, no KeyIDs');
    assert.deepEqual([b.addr, b.serial, b.fallback, b.errno], [-E.ENOMEM, -E.ENODEV, false, -E.ENOKEY]);
  });
});

describe('memfd-secret helper: what it reports', () => {
  it('careful: an ftruncate failure makes it give up with that errno', () => {
    const { env } = boot();
    assert.deepEqual(getDesign('memfd-secret').allocate(env, -P, CPU_KEY, true), { failed: -E.EINVAL });
  });

  it('naive: the first failing call\'s errno (ftruncate before mmap; mmap when only mmap failed)', () => {
    const { env } = boot();
    const a = allocation(getDesign('memfd-secret').allocate(env, -P, CPU_KEY, false), 'bad size');
    assert.equal(a.errno, -E.EINVAL);
    const b = boot();
    const c = allocation(getDesign('memfd-secret').allocate(b.env, HUGE, CPU_KEY, false), 'no room');
    assert.deepEqual([c.addr, c.fallback, c.errno], [-E.ENOMEM, false, -E.ENOMEM]);
    assert.ok(c.fd >= 3);
  });
});

describe('encrypt-mprotect helper at max_map_count', () => {
  it('careful: when even the plain mprotect fallback fails, it gives up with that errno', () => {
    // A PROT_NONE mapping right where the helper's goes (top-down below MMAP_BASE):
    // the helper's mmap merges with it, so making its part RW needs a split,
    // which the limit of one VMA refuses.
    const { t, env } = boot({ features: NO_FEATURES, maxMapCount: 1 });
    assert.equal(env.sys(NR.mmap, MMAP_BASE - P, P, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), MMAP_BASE - P);
    const r = getDesign('encrypt-mprotect').allocate(env, 2 * P, CPU_KEY, true);
    assert.deepEqual(r, { failed: -E.ENOMEM });
    assert.equal(t.mm.vmas.mapCount, 1);
  });
});

describe('MADV_ENCRYPT at max_map_count', () => {
  it('a split it cannot make is ENOMEM, and the range keeps its key and its data', () => {
    const { t, env } = boot({ maxMapCount: 1 });
    const base = env.sys(NR.mmap, 0, 3 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert.equal(env.cpu.store(base + P, new Uint8Array(P).fill(0x77)), 0);
    const serial = env.sys(NR.add_key, 'mktme', 'a', CPU_KEY.payload);
    assert.equal(env.sys(NR.madvise, base + P, P, MADV_ENCRYPT, serial), -E.ENOMEM);
    assert.deepEqual(t.mm.vmas.vmas.map((v) => v.keyid), [0]);
    const out = new Uint8Array(P);
    assert.equal(env.cpu.load(base + P, out), 0);
    assert.ok(out.every((x) => x === 0x77), 'the failed advice dropped the pages');
  });
});

describe('encryptMapping when add_key fails', () => {
  it('returns add_key\'s errno, not that of a call made with the -errno as a serial', () => {
    const { env } = boot({ profile: 'none' }); // no KeyIDs: add_key ENODEV
    const dax = env.sys(NR.openat, AT_FDCWD, DAX_PATH, 2);
    assert.ok(dax >= 3);
    const d = env.sys(NR.mmap, 0, 4 * P, RW, MAP_SHARED, dax, 0);
    assert.ok(d > 0);
    const anon = env.sys(NR.mmap, 0, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const key = userKey(new Uint8Array(32).map((_, i) => i + 1));
    assert.equal(getDesign('dev-mktme').encryptMapping(env, d, 4 * P, dax, key), -E.ENODEV);
    assert.equal(getDesign('madvise-encrypt').encryptMapping(env, d, 4 * P, dax, key), -E.ENODEV);
    assert.equal(getDesign('encrypt-mprotect').encryptMapping(env, anon, 4 * P, -1, key), -E.ENODEV);
  });
});

describe('the designs\' own files: one page cache per file', () => {
  it('two mappings of one /dev/mktme fd share the pinned pages', () => {
    const { k, env } = boot();
    const fd = env.sys(NR.openat, AT_FDCWD, DEV_MKTME, 2);
    const serial = env.sys(NR.add_key, 'mktme', 'a', CPU_KEY.payload);
    assert.equal(env.sys(NR.ioctl, fd, MKTME_IOC_SET_KEY, serial), 0);
    const a = env.sys(NR.mmap, 0, P, RW, MAP_SHARED, fd, 0);
    const b = env.sys(NR.mmap, 0, P, RW, MAP_SHARED, fd, 0);
    assert.ok(a > 0 && b > 0 && a !== b);
    assert.equal(env.cpu.store(a, new Uint8Array(P).fill(0x3c)), 0);
    const out = new Uint8Array(P);
    assert.equal(env.cpu.load(b, out), 0);
    assert.ok(out.every((x) => x === 0x3c), 'the second mapping sees the first one\'s data');
    assert.equal(k.alloc.nrPinned, 1);
  });

  it('two mappings of one memfd_secret fd share the secret pages', () => {
    const { k, env } = boot();
    const fd = env.sys(NR.memfd_secret, 0);
    assert.equal(env.sys(NR.ftruncate, fd, P), 0);
    const a = env.sys(NR.mmap, 0, P, RW, MAP_SHARED, fd, 0);
    const b = env.sys(NR.mmap, 0, P, RW, MAP_SHARED, fd, 0);
    assert.ok(a > 0 && b > 0 && a !== b);
    assert.equal(env.cpu.store(a, new Uint8Array(P).fill(0xc3)), 0);
    const out = new Uint8Array(P);
    assert.equal(env.cpu.load(b, out), 0);
    assert.ok(out.every((x) => x === 0xc3), 'the second mapping sees the first one\'s data');
    assert.equal(k.alloc.nrPinned, 1);
    assert.equal(k.counters.get('direct_map_removed'), 1);
  });
});

describe('the designs\' own files under a memory limit', () => {
  it('/dev/mktme: a page past the limit is ENOMEM, and nothing is pinned for it', () => {
    const { k, env } = boot({ memLimit: 1 });
    const a = allocation(getDesign('dev-mktme').allocate(env, 2 * P, CPU_KEY, true), 'dev-mktme');
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(1)), 0);
    assert.equal(env.cpu.store(a.addr + P, new Uint8Array(P).fill(1)), -E.ENOMEM);
    assert.equal(k.alloc.nrPinned, 1);
    assert.equal(k.counters.get('pinned_pages'), 1);
  });

  it('memfd_secret: a page past the limit is ENOMEM, nothing pinned or removed from the direct map for it', () => {
    const { k, env } = boot({ memLimit: 1 });
    const a = allocation(getDesign('memfd-secret').allocate(env, 2 * P, CPU_KEY, true), 'memfd-secret');
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(1)), 0);
    assert.equal(env.cpu.store(a.addr + P, new Uint8Array(P).fill(1)), -E.ENOMEM);
    assert.equal(k.alloc.nrPinned, 1);
    assert.equal(k.counters.get('pinned_pages'), 1);
    assert.equal(k.counters.get('direct_map_removed'), 1);
  });
});

describe('memfd_secret pages', () => {
  it('are pinned unmovable, like the driver\'s: move_pages answers EBUSY', () => {
    const { k, t, env } = boot();
    const a = allocation(getDesign('memfd-secret').allocate(env, P, CPU_KEY, true), 'memfd-secret');
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(5)), 0);
    const pfn = ptePfn(k.pool.get(t.mm.pgd, a.addr));
    assert.ok(k.alloc.flags[pfn] & PG_SECRET);
    assert.ok(k.alloc.flags[pfn] & PG_UNMOVABLE, 'struct page: unmovable');
    const status = [0];
    assert.equal(env.sys(NR.move_pages, 0, [a.addr], [1], status), 0);
    assert.deepEqual(status, [-E.EBUSY]);
  });
});

describe('names that reach the user', () => {
  it('/proc/pid/maps names the designs\' files: /dev/mktme (10:237), /secretmem (deleted) (00:0f)', () => {
    const { t, env } = boot();
    const m = allocation(getDesign('dev-mktme').allocate(env, P, CPU_KEY, true), 'dev-mktme');
    const s = allocation(getDesign('memfd-secret').allocate(env, P, CPU_KEY, true), 'memfd-secret');
    const line = (addr: number) => t.mm.vmas.vmas.find((v) => v.start === addr)!.mapsLine().split(/ +/);
    const [, mPerm, , mDev, , mPath] = line(m.addr);
    assert.deepEqual([mPerm, mDev, mPath], ['rw-s', '0a:ed', DEV_MKTME]);
    assert.deepEqual(line(s.addr).slice(3), ['00:0f', String(t.files.get(s.fd)!.ino), '/secretmem', '(deleted)']);
  });

  it('the keys the helpers add are named: "bench" for the CPU key, "persistent" for a user key', () => {
    const { k, env } = boot();
    const a = allocation(getDesign('madvise-encrypt').allocate(env, P, CPU_KEY, true), 'madvise-encrypt');
    assert.equal(a.errno, 0);
    assert.equal(k.keys.keyOf(1)!.description, 'bench');
    const uk = userKey(new Uint8Array(32).map((_, i) => 2 * i + 1));
    const serial = env.sys(NR.add_key, 'mktme', uk.description, uk.payload);
    assert.ok(serial > 0);
    assert.equal(k.keys.keyOf(2)!.description, 'persistent');
  });

  it('an unknown design name: the message lists every design', () => {
    assert.throws(
      () => getDesign('sys-encrypt'),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message === `interface: unknown design 'sys-encrypt' (expected one of: ${DESIGN_NAMES.join(', ')})` &&
        e.message.endsWith('(expected one of: plain-mmap, encrypt-mprotect, dev-mktme, madvise-encrypt, memfd-secret, guest-memfd)'),
    );
  });

  it('`list` prints each design with its one-line summary', () => {
    const cli = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
    const r = spawnSync(process.execPath, [cli, 'list'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const want = [
      'plain-mmap         control: plain anonymous memory, no encryption',
      'encrypt-mprotect   mprotect-style syscall taking a key serial (MKTME RFC)',
      'dev-mktme          character device: open, ioctl(SET_KEY), mmap',
      'madvise-encrypt    madvise(ptr, len, MADV_ENCRYPT, key) on any supporting mapping',
      'memfd-secret       memfd_secret(2), as merged in Linux 5.14',
    ];
    const lines = r.stdout.split('\n').map((l) => l.trim());
    for (const w of want) assert.ok(lines.includes(w), `missing: ${w}`);
  });

  it('model_over_plain_ns_per_op is read against the plain-mmap cell of the same kind', () => {
    const cell = { crypto_backend: 'openssl', hardware: 'mktme', kernel: 'patched', swap: 'none', workload: 'fault', threads: 1 };
    const rows = [
      { ...cell, interface: 'plain-mmap', modelled_ns_per_op: 100 },
      { ...cell, interface: 'dev-mktme', modelled_ns_per_op: 250 },
      { ...cell, threads: 2, interface: 'dev-mktme', modelled_ns_per_op: 300 }, // no control cell with 2 threads
    ] as unknown as Row[];
    overPlain(rows);
    assert.equal(rows[0].model_over_plain_ns_per_op, 0);
    assert.equal(rows[1].model_over_plain_ns_per_op, 150);
    assert.ok(Number.isNaN(rows[2].model_over_plain_ns_per_op));
  });
});
