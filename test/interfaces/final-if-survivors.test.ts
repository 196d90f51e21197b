// Behaviour of interfaces/ that the quick Stryker run of main at 2180250
// (dist/interfaces/**, 923 mutants) left untested; the review of its
// survivors is test/mutation-review/interfaces-final.md.
//
// - randomKeyBytes draws again only when the two halves are equal (OpenSSL
//   refuses such an XTS key), and takes any other draw as it is. The test
//   makes node:crypto's randomFillSync give chosen bytes through
//   module.syncBuiltinESMExports, the documented way to update the live
//   bindings of a built-in ES module.
// - A leak scan with several seeds (the workloads scan every round's seed)
//   finds a page even when another seed has a page that starts with the
//   same bytes.
// - A frame without a KeyID is plaintext, whatever bytes it holds.
// - The base guestRam (every design but guest-memfd) registers the RAM of an
//   SEV-ES guest with KVM_MEMORY_ENCRYPT_REG_REGION as it does for SEV, and
//   reports no guest_memfd (-1).
// - The guest-memfd helper on a host without /dev/kvm (the kvm module not
//   loaded), and its line in `list`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Machine } from '../../hardware/machine.js';
import { observeFrames, patternPage, scanLeaks, writePattern } from '../../interfaces/conformance.js';
import { CPU_KEY, DESIGN_NAMES, randomKeyBytes } from '../../interfaces/contract.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, type SpawnOptions } from '../../kernel/kernel.js';
import { KVM_CREATE_VM, KVM_MEMORY_ENCRYPT_OP, KVM_PATH, KVM_SEV_INIT2, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM } from '../../kernel/kvm.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';

const P = 4096;
const RW = PROT_READ | PROT_WRITE;

describe('randomKeyBytes and what the CSPRNG gives', () => {
  /** Run body with randomFillSync answering its first calls from `draws` (then the real source); the number of calls made. */
  function withDraws(draws: Uint8Array[], body: () => void): number {
    const cjs = createRequire(import.meta.url)('node:crypto') as { randomFillSync: (b: Uint8Array) => Uint8Array };
    const real = cjs.randomFillSync;
    let calls = 0;
    cjs.randomFillSync = (b: Uint8Array): Uint8Array => {
      const d = draws[calls++];
      if (d === undefined) return real(b);
      b.set(d);
      return b;
    };
    syncBuiltinESMExports();
    try {
      body();
    } finally {
      cjs.randomFillSync = real;
      syncBuiltinESMExports();
    }
    return calls;
  }
  const halves = (a: number[], b: number[]) => Uint8Array.from([...a, ...b]);
  const oneTo16 = Array.from({ length: 16 }, (_, i) => i + 1); // 1..16: not a palindrome

  it('a draw with equal halves is drawn again: OpenSSL refuses an XTS key whose halves are equal', () => {
    // OpenSSL 3 refuses it: providers/implementations/ciphers/cipher_aes_xts.c
    // aes_xts_check_keys, "xts duplicated keys". On the openssl backend a
    // user key with equal halves makes add_key fail with EINVAL (kernel/keys.ts:
    // PCONFIG refused the key), and a DAX cell would have no key
    const second = halves(oneTo16, oneTo16.map((x) => x + 100));
    let k: Uint8Array = new Uint8Array(0);
    const calls = withDraws([halves(oneTo16, oneTo16), second], () => {
      k = randomKeyBytes();
    });
    assert.equal(calls, 2);
    assert.deepEqual(k, second);
  });

  it('a draw whose halves differ is taken as it is, even when some bytes agree at the same place', () => {
    // byte 0 of both halves is 1, the rest differ: a valid key, no reason to draw again
    const draw = halves(oneTo16, [1, ...oneTo16.slice(1).map((x) => x + 100)]);
    let k: Uint8Array = new Uint8Array(0);
    const calls = withDraws([draw], () => {
      k = randomKeyBytes();
    });
    assert.equal(calls, 1);
    assert.deepEqual(k, draw);
  });
});

describe('leak scans with several seeds', () => {
  it('a leaked page is found when another seed has a page that starts with the same bytes', () => {
    // the seeds of a workload's rounds are all scanned at once (workloads/workload.ts leaksOf).
    // Page 0 of seed 16283 and page 115 of seed 46871 have the same first
    // word and the same bytes 4 and 5 (found by a search), and differ after that.
    const a = new Uint8Array(P), b = new Uint8Array(P);
    patternPage(16283, 0, a);
    patternPage(46871, 115, b);
    assert.deepEqual(a.subarray(0, 4), b.subarray(0, 4));
    assert.equal(a[4] ^ a[5], b[4] ^ b[5]);
    assert.notDeepEqual(a, b);
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [16, 16], daxFrames: 0 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
    for (const [img, seeds] of [
      [a, [16283, 46871]],
      [a, [46871, 16283]],
      [b, [16283, 46871]],
      [b, [46871, 16283]],
    ] as const) {
      assert.deepEqual(scanLeaks(k, seeds, 116, img), { media: ['dax'], bytes: P }, `seeds ${seeds}`);
    }
    k.shutdown();
  });
});

describe('what plain frames hold', () => {
  it('a frame without a KeyID is plaintext, also when it does not hold the pattern looked for', () => {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 0 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    const addr = k.syscall(t, NR.mmap, 0, 3 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert.equal(writePattern(cpu, addr, 3, 6, new Uint8Array(P)), 0);
    // the frames hold seed 6's bytes as written: no engine turned them into ciphertext
    assert.equal(observeFrames(k, t, addr, 3, 7), 'plaintext');
    assert.equal(observeFrames(k, t, addr, 3, 6), 'plaintext');
    k.shutdown();
  });
});

describe('guestRam of an SEV-ES guest', () => {
  function vmm(spawn: SpawnOptions = {}) {
    const m = Machine.create({ profile: 'sev', backend: 'openssl', memory: { nodeFrames: [96, 96] }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256 });
    for (const d of allDesigns()) d.install(k);
    const t = k.spawn(spawn);
    const env = { sys: (nr: number, ...a: never[]) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
    const vm = (type: number): number => {
      const kvm = env.sys(NR.openat, AT_FDCWD as never, KVM_PATH as never, 2 as never);
      const fd = env.sys(NR.ioctl, kvm as never, KVM_CREATE_VM as never, type as never);
      assert.ok(fd >= 0, `KVM_CREATE_VM ${type}: ${fd}`);
      // QEMU's sev-guest object (SEV and SEV-ES alike) makes the key first: sev_kvm_init
      assert.equal(env.sys(NR.ioctl, fd as never, KVM_MEMORY_ENCRYPT_OP as never, [KVM_SEV_INIT2] as never), 0);
      return fd;
    };
    return { k, env, vm };
  }
  // the designs whose guest RAM is the careful helper's memory (guest-memfd makes its own)
  const designs = DESIGN_NAMES.filter((d) => getDesign(d).vmType('sev') === KVM_X86_SEV_VM);

  it('the RAM is registered and pinned as for an SEV guest, and no guest_memfd is reported', () => {
    // QEMU registers every RAM block of an SEV or SEV-ES guest (target/i386/sev.c
    // sev_ram_block_added -> KVM_MEMORY_ENCRYPT_REG_REGION), and KVM pins it
    // (arch/x86/kvm/svm/sev.c sev_mem_enc_register_region, sev_pin_memory).
    // GUP refuses memfd_secret pages (mm/gup.c: secretmem folios are never
    // pinned), so that RAM cannot be registered: ENOMEM (npinned != npages).
    assert.equal(designs.length, 5);
    for (const d of designs) {
      const got: Record<number, string> = {};
      for (const type of [KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM]) {
        const { k, env, vm } = vmm();
        const fd = vm(type);
        const r = getDesign(d).guestRam(env, fd, type, 4 * P, CPU_KEY);
        if ('failed' in r) got[type] = `failed ${r.failed}`;
        else {
          assert.deepEqual([r.vmfd, r.type, r.len, r.gmem, r.hva === r.alloc?.addr], [fd, type, 4 * P, -1, true], `${d} type ${type}`);
          got[type] = `pinned ${k.alloc.nrPinned}`;
        }
        k.shutdown();
      }
      const want = d === 'memfd-secret' ? `failed ${-E.ENOMEM}` : 'pinned 4';
      assert.deepEqual(got, { [KVM_X86_SEV_VM]: want, [KVM_X86_SEV_ES_VM]: want }, d);
    }
  });
});

describe('the guest-memfd helper', () => {
  it('on a host without /dev/kvm: a careful program falls back to plain memory with open\'s ENOENT, a naive one reports ENOENT', () => {
    // open(2) of a device node that does not exist: ENOENT; the kvm module
    // creates /dev/kvm when it loads (virt/kvm/kvm_main.c kvm_init -> misc_register)
    for (const careful of [true, false]) {
      const m = Machine.create({ profile: 'sev', backend: 'openssl', memory: { nodeFrames: [32, 32] }, nrCpus: 1 });
      const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
      for (const d of allDesigns()) d.install(k);
      assert.ok(k.devices.delete(KVM_PATH));
      const t = k.spawn();
      const env = { sys: (nr: number, ...a: never[]) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
      const r = getDesign('guest-memfd').allocate(env, 2 * P, CPU_KEY, careful);
      assert.ok(!('failed' in r), JSON.stringify(r));
      if (careful) {
        assert.deepEqual([r.fd, r.serial, r.fallback, r.errno], [-1, 0, true, -E.ENOENT]);
        assert.equal(env.cpu.store(r.addr, new Uint8Array(P).fill(7)), 0, 'the fallback memory is usable');
      } else {
        assert.equal(r.errno, -E.ENOENT);
        assert.equal(r.fallback, false);
        assert.ok(r.addr < 0, 'MAP_FAILED');
      }
      assert.equal(t.files.size, 0, 'no file left open');
      k.shutdown();
    }
  });

  it('when only its mmap fails (RLIMIT_AS 0): a careful program gives up with mmap\'s ENOMEM, a naive one reports it', () => {
    // mmap beyond RLIMIT_AS: ENOMEM (mm/mmap.c may_expand_vm; getrlimit(2))
    for (const careful of [true, false]) {
      const m = Machine.create({ profile: 'sev', backend: 'openssl', memory: { nodeFrames: [32, 32] }, nrCpus: 1 });
      const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
      for (const d of allDesigns()) d.install(k);
      const t = k.spawn({ rlimits: { as: 0 } });
      const env = { sys: (nr: number, ...a: never[]) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
      const r = getDesign('guest-memfd').allocate(env, 2 * P, CPU_KEY, careful);
      if (careful) {
        assert.deepEqual(r, { failed: -E.ENOMEM });
        assert.equal(t.files.size, 0, 'the guest_memfd is closed');
      } else {
        assert.ok(!('failed' in r), JSON.stringify(r));
        assert.deepEqual([r.addr, r.fallback, r.errno], [-E.ENOMEM, false, -E.ENOMEM]);
        assert.ok(r.fd >= 3, 'the guest_memfd was made');
      }
      k.shutdown();
    }
  });

  it('`list` prints it with its one-line summary', () => {
    const cli = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
    const r = spawnSync(process.execPath, [cli, 'list'], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n').map((l) => l.trim());
    assert.ok(lines.includes('guest-memfd        KVM guest_memfd (6.8; host mmap 6.18), as merged for confidential VMs'), r.stdout);
  });
});
