// The userspace helpers as a program meets them: what each returns when a
// step fails (no KeyIDs, no memory), what release() gives back, and the
// shared pieces: the data patterns, plaintext and leak scans, the DAX key.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { NO_LEAK, patternPage, plaintextPages, scanLeaks } from '../../interfaces/conformance.js';
import { CPU_KEY, DESIGN_NAMES, randomKeyBytes, userKey, type Allocation, type UserEnv } from '../../interfaces/contract.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, NO_FEATURES } from '../../kernel/kernel.js';
import { PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MADV_ENCRYPT, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED } from '../../kernel/uapi.js';
import { MKTME_IOC_SET_KEY } from '../../interfaces/dev-mktme.js';

const P = 4096;

function boot(profile = 'mktme', features = ALL_FEATURES) {
  const m = Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [96, 96], daxFrames: 4 }, nrCpus: 1 });
  const k = new Kernel(m, { features, pgtableSlots: 256 });
  for (const d of allDesigns()) d.install(k);
  const t = k.spawn();
  const env: UserEnv = { sys: (nr, ...a) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
  return { m, k, t, env };
}

describe('helpers when a step fails', () => {
  it('no KeyIDs on this CPU (add_key: ENODEV): careful programs fall back naming it, naive ones go on', () => {
    const want: Record<string, [fallback: boolean, errno: number]> = {
      'plain-mmap': [false, 0],
      'encrypt-mprotect': [true, -E.ENODEV],
      'dev-mktme': [true, -E.ENODEV],
      'madvise-encrypt': [true, -E.ENODEV],
      'memfd-secret': [false, 0],
      // a plain VM's shared guest_memfd: no key involved
      'guest-memfd': [false, 0],
    };
    for (const d of DESIGN_NAMES) {
      const { env } = boot('none');
      const a = getDesign(d).allocate(env, 4 * P, CPU_KEY, true) as Allocation;
      assert.ok(!('failed' in a) && a.addr > 0, d);
      assert.deepEqual([a.fallback, a.errno], want[d], d);
      assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(1)), 0, `${d}: the memory works`);
    }
    // naive encrypt_mprotect: the bad serial leaves the memory PROT_NONE, and says why
    const { env } = boot('none');
    const naive = getDesign('encrypt-mprotect').allocate(env, 4 * P, CPU_KEY, false) as Allocation;
    assert.equal(naive.fallback, false);
    assert.equal(naive.errno, -E.ENOKEY);
    assert.equal(env.cpu.store(naive.addr, new Uint8Array(P)), -E.EFAULT);
  });

  it('no address space for it (mmap: ENOMEM): every helper gives up with the errno', () => {
    for (const d of DESIGN_NAMES) {
      const { env } = boot();
      const r = getDesign(d).allocate(env, 2 ** 47, CPU_KEY, true);
      assert.ok('failed' in r, d);
      assert.equal((r as { failed: number }).failed, -E.ENOMEM, d);
    }
  });

  it('release gives everything back: mappings, files, KeyIDs, frames; 100 times over', () => {
    for (const features of [ALL_FEATURES, NO_FEATURES])
      for (const d of DESIGN_NAMES) {
        const { k, t, env } = boot('mktme', features);
        const free = k.alloc.freeFrames();
        for (let i = 0; i < 100; i++) {
          const a = getDesign(d).allocate(env, 2 * P, CPU_KEY, true) as Allocation;
          assert.ok(!('failed' in a), `${d} round ${i}`);
          assert.equal(env.cpu.store(a.addr + P, new Uint8Array(P).fill(i)), 0, `${d} round ${i}`);
          getDesign(d).release(env, a);
          assert.equal(t.mm.vmas.mapCount, 0, `${d}: a mapping left`);
          assert.equal(t.files.size, 0, `${d}: a file left open`);
          assert.equal(k.keys.keyidsInUse, 0, `${d}: a KeyID left`);
        }
        assert.equal(k.alloc.freeFrames(), free, `${d}: frames left`);
      }
  });
});

describe('design details', () => {
  it('encrypt_mprotect checks only the VMAs inside the range: a shared mapping right after it is fine', () => {
    const { env } = boot();
    const BASE = 0x2_0000_0000;
    assert.equal(env.sys(NR.mmap, BASE, 2 * P, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    assert.equal(env.sys(NR.mmap, BASE + 2 * P, P, 3, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE + 2 * P);
    const serial = env.sys(NR.add_key, 'mktme', 'a', CPU_KEY.payload);
    assert.equal(env.sys(NR.encrypt_mprotect, BASE, 2 * P, 3, serial), 0);
    assert.equal(env.sys(NR.encrypt_mprotect, BASE, 3 * P, 3, serial), -E.EINVAL);
  });

  it('memfd_secret: the size is set once; past it, a touch is SIGBUS', () => {
    const { env } = boot();
    const fd = env.sys(NR.memfd_secret, 0);
    assert.equal(env.sys(NR.ftruncate, fd, P), 0);
    assert.equal(env.sys(NR.ftruncate, fd, P), 0);
    assert.equal(env.sys(NR.ftruncate, fd, 2 * P), -E.EINVAL);
    const a = env.sys(NR.mmap, 0, 2 * P, 3, MAP_SHARED, fd, 0);
    assert.equal(env.cpu.store(a, new Uint8Array(P)), 0);
    assert.equal(env.cpu.store(a + P, new Uint8Array(P)), -E.EFAULT);
  });

  it('/dev/mktme pages are pinned and unmovable, and fault in once', () => {
    const { k, t, env } = boot();
    const a = getDesign('dev-mktme').allocate(env, 2 * P, CPU_KEY, true) as Allocation;
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(7)), 0);
    const pfn = ptePfn(k.pool.get(t.mm.pgd, a.addr));
    assert.ok(k.alloc.flags[pfn] & PG_UNMOVABLE);
    assert.equal(k.alloc.nrPinned, 1);
    assert.equal(env.cpu.store(a.addr, new Uint8Array(P).fill(8)), 0);
    assert.equal(k.alloc.nrPinned, 1);
  });

  it('MADV_ENCRYPT takes Device DAX, not another device file', () => {
    const { env } = boot();
    const serial = env.sys(NR.add_key, 'mktme', 'a', CPU_KEY.payload);
    const mk = env.sys(NR.openat, AT_FDCWD, '/dev/mktme', 2);
    assert.equal(env.sys(NR.ioctl, mk, MKTME_IOC_SET_KEY, serial), 0);
    const a = env.sys(NR.mmap, 0, P, 3, MAP_SHARED, mk, 0);
    assert.ok(a > 0);
    assert.equal(env.sys(NR.madvise, a, P, MADV_ENCRYPT, serial), -E.EINVAL);
  });
});

describe('patterns and scans', () => {
  it('patterns: deterministic, different for every page and seed, never a zero page', () => {
    const a = new Uint8Array(P), b = new Uint8Array(P);
    patternPage(1, 0, a);
    patternPage(1, 0, b);
    assert.deepEqual(a, b);
    // known answers, pinned once from an independent Python rendering of the
    // definition: word k of seed's stream is murmur3 fmix32(h ^ (k+1)*0x85ebca6b mod 2^32),
    // h = (seed * 0x9e3779b1 + 1) mod 2^32; page i is words 4i .. 4i+1023
    const words = new Uint32Array(a.buffer);
    assert.deepEqual([words[0], words[1], words[1023]], [0xd11ca2ca, 0xdc5e1626, 0x7ba9f34f]);
    patternPage(7, 3, a);
    assert.deepEqual([words[0], words[1023]], [0xbbed0285, 0x3415365f]);
    // page 4 is page 3 one XTS block on: the stream, seen through a window
    const next = new Uint8Array(P);
    patternPage(7, 4, next);
    assert.deepEqual(next.subarray(0, P - 16), a.subarray(16));
    const seen = new Set<string>();
    for (const seed of [1, 2, 1000003]) for (let i = 0; i < 64; i++) {
      patternPage(seed, i, a);
      assert.ok(a.some((x) => x !== 0));
      assert.ok(a.subarray(P - 4).some((x) => x !== 0), 'the last word is written too');
      seen.add(Buffer.from(a).toString('base64'));
    }
    assert.equal(seen.size, 3 * 64);
  });

  it('plaintext pages of an image: exactly those that hold their pattern, the last included', () => {
    const img = new Uint8Array(5 * P).fill(0x5a);
    const page = new Uint8Array(P);
    for (const i of [0, 4]) {
      patternPage(9, i, page);
      img.set(page, i * P);
    }
    patternPage(9, 1, page);
    img.set(page, 2 * P); // page 1's pattern at page 2's place: not page 2's plaintext
    assert.equal(plaintextPages(img, 5, 9), 2);
    assert.equal(plaintextPages(img, 4, 9), 1);
    assert.equal(plaintextPages(img, 5, 8), 0);
    // the leak scan finds any of the region's pages anywhere in the image
    const { k } = boot();
    assert.deepEqual(scanLeaks(k, [9], 5, img), { media: ['dax'], bytes: 3 * P });
    assert.deepEqual(scanLeaks(k, [9], 5, img.subarray(0, 4 * P + 100)), { media: ['dax'], bytes: 2 * P }); // a partial page is no page
    assert.deepEqual(scanLeaks(k, [8], 5, img), NO_LEAK);
    // a page that starts like a pattern page but differs later is not a leak
    patternPage(9, 3, page);
    page[P - 1] ^= 1;
    assert.deepEqual(scanLeaks(k, [9], 5, page), NO_LEAK);
  });

  it('random key bytes: 32 of them, halves that differ, new each time', () => {
    const a = randomKeyBytes(), b = randomKeyBytes();
    assert.equal(a.length, 32);
    assert.ok(!a.subarray(0, 16).every((x, i) => x === a[16 + i]), 'halves differ');
    assert.notDeepEqual(a, b);
    assert.throws(() => userKey(new Uint8Array(16)), /^RangeError: key: expected 32 bytes, got 16$/);
  });
});
