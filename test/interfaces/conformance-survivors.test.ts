// The conformance runner at its edges: how each way a cell can end is
// reported (outcome, errno, detail, counters), what "encrypted" and "secret"
// mean frame by frame, and the small shared pieces (patterns, leak scans, the
// DAX key). Where no real design reaches a path (a helper that leaves its DAX
// mapping inaccessible, a half-movable region, aliased memory), a registered
// design is stubbed for the length of one cell and restored afterwards.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import {
  OUTCOMES,
  SCENARIOS,
  observeFrames,
  patternInto,
  patternPage,
  runCell,
  scanLeaks,
  verifyPattern,
  writePattern,
  type CellResult,
  type CellSpec,
  type Scenario,
} from '../../interfaces/conformance.js';
import { type AllocResult, type DesignName, type EncryptionDesign, type KeySpec, type UserEnv } from '../../interfaces/contract.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_NONE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';

const P = 4096;
const RW = PROT_READ | PROT_WRITE;

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const workdir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'memcrypt-conf-surv-'));
  dirs.push(d);
  return d;
};

interface Opts {
  profile?: string;
  patched?: boolean;
  careful?: boolean;
  pages?: number;
  dir?: string;
  /** leave encryptedSwap out of the spec (its default) */
  noSwapOption?: boolean;
}

function cell(design: DesignName, scenario: Scenario, o: Opts = {}): CellResult {
  const base = {
    design,
    profile: o.profile ?? 'mktme',
    patched: o.patched ?? true,
    scenario,
    careful: o.careful ?? true,
    pages: o.pages ?? 12,
    seed: 7,
    backend: 'openssl',
    workdir: o.dir ?? workdir(),
  };
  const spec: CellSpec = o.noSwapOption ? base : { ...base, encryptedSwap: false };
  const r = runCell(spec);
  assert.ok((OUTCOMES as readonly string[]).includes(r.outcome), `${r.outcome} is one of OUTCOMES`);
  return r;
}

type Patch = { allocate?: EncryptionDesign['allocate']; encryptMapping?: EncryptionDesign['encryptMapping'] };

/** Run body with a registered design's helper replaced by a stub; the design is restored afterwards. */
function withStub<T>(name: DesignName, patch: Patch, body: () => T): T {
  const d = getDesign(name);
  Object.assign(d, patch);
  try {
    return body();
  } finally {
    for (const key of Object.keys(patch)) delete (d as unknown as Record<string, unknown>)[key];
  }
}

/** A stub encryptMapping: step(call, ...) answers call number `call` (1-based); where it returns null, the real design answers. */
function encryptSteps(name: DesignName, step: (call: number, env: UserEnv, addr: number, len: number, fd: number, key: KeySpec) => number | null) {
  const real = getDesign(name);
  const proto = Object.getPrototypeOf(real) as EncryptionDesign;
  let call = 0;
  return (env: UserEnv, addr: number, len: number, fd: number, key: KeySpec): number | null =>
    step(++call, env, addr, len, fd, key) ?? proto.encryptMapping.call(real, env, addr, len, fd, key);
}

describe('the vocabulary', () => {
  it('the four scenarios and eight outcomes are the ones DESIGN.md names, and each scenario runs as itself', () => {
    assert.deepEqual([...SCENARIOS], ['basic', 'swap', 'migration', 'dax']);
    assert.deepEqual([...OUTCOMES], ['encrypted', 'secret', 'leaked', 'plaintext', 'plaintext-fallback', 'unsupported', 'crashed', 'data-loss']);
    // the control, scenario by scenario: each one leaves its own traces
    const [basic, swap, migration, dax] = SCENARIOS.map((sc) => cell('plain-mmap', sc));
    assert.deepEqual([basic.counters.swap_out, basic.counters.migrated, basic.leaks.media], [0, 0, []]);
    assert.ok(swap.counters.swap_out > 0 && swap.leaks.media.includes('swap'));
    assert.equal(migration.counters.migrated, 12);
    assert.deepEqual(dax.leaks.media, ['dax']);
  });
});

describe('cells that end early say why', () => {
  it('an empty region: mmap refuses it, the helper gives up, the cell is unsupported (not a vacuous pass)', () => {
    const r = cell('plain-mmap', 'basic', { pages: 0 });
    assert.deepEqual([r.outcome, r.errno, r.detail], ['unsupported', 'EINVAL', 'the helper gave up']);
    const d = cell('plain-mmap', 'dax', { pages: 0 });
    assert.deepEqual([d.outcome, d.errno, d.detail], ['unsupported', 'EBADF', 'mmap of /dev/dax0.0 failed']);
  });

  it('successes carry no errno; the detail says whether the program fell back', () => {
    const ok = cell('encrypt-mprotect', 'basic');
    assert.deepEqual([ok.outcome, ok.errno, ok.detail], ['encrypted', null, 'as designed']);
    const fb = cell('encrypt-mprotect', 'basic', { patched: false });
    assert.deepEqual([fb.outcome, fb.errno, fb.detail], ['plaintext-fallback', 'ENOSYS', 'fell back to plain memory']);
  });

  it('a crash names the access and the unchecked call; a failed access names the access', () => {
    const naive = cell('encrypt-mprotect', 'basic', { patched: false, careful: false });
    assert.deepEqual([naive.outcome, naive.errno, naive.detail], ['crashed', 'ENOSYS', 'SIGSEGV writing the memory']);
    const pinned = cell('dev-mktme', 'swap');
    assert.deepEqual([pinned.outcome, pinned.errno, pinned.detail], ['unsupported', 'ENOMEM', 'writing the memory failed']);
  });

  it('DAX: a design without a call for existing mappings, and one whose call fails, are told apart', () => {
    const none = cell('memfd-secret', 'dax');
    assert.deepEqual([none.outcome, none.errno, none.detail], ['unsupported', null, 'the design has no call that takes an existing mapping']);
    const refused = cell('encrypt-mprotect', 'dax');
    assert.deepEqual([refused.outcome, refused.errno, refused.detail], ['unsupported', 'EINVAL', 'encrypting the DAX mapping failed']);
  });
});

describe('DAX cells through a power cycle', () => {
  it('the plaintext control: every page in the image is plaintext, counted once in the counters and the detail', () => {
    const r = cell('plain-mmap', 'dax');
    assert.equal(r.outcome, 'plaintext');
    assert.equal(r.counters.plaintext_exposed_bytes, 12 * P);
    assert.equal(r.detail, `0 pages lost, ${12 * P} plaintext bytes in the DAX image`);
  });

  it('MADV_ENCRYPT: encrypted after power-on, and the counters cover both boots', () => {
    const r = cell('madvise-encrypt', 'dax');
    assert.deepEqual([r.outcome, r.errno, r.detail], ['encrypted', null, '0 pages lost, 0 plaintext bytes in the DAX image']);
    // each boot faults every page in once: written in the first, read in the second
    assert.equal(r.counters.faults, 2 * 12);
    assert.ok(r.counters.pages_encrypted >= 12, String(r.counters.pages_encrypted));
    assert.ok(r.counters.pages_decrypted >= 12, String(r.counters.pages_decrypted));
    assert.equal(r.counters.integrity_errors, 0);
  });

  it('a helper that leaves the mapping inaccessible: SIGSEGV while writing, reported as EFAULT', () => {
    const r = withStub('plain-mmap', { encryptMapping: (env, addr, len) => env.sys(NR.mprotect, addr, len, PROT_NONE) }, () => cell('plain-mmap', 'dax'));
    assert.deepEqual([r.outcome, r.errno, r.detail], ['crashed', 'EFAULT', 'SIGSEGV writing DAX']);
  });

  it('a call that works before the power cycle but fails after it: unsupported, with its errno', () => {
    const stub = encryptSteps('madvise-encrypt', (call) => (call === 2 ? -E.ENOKEY : null));
    const r = withStub('madvise-encrypt', { encryptMapping: stub }, () => cell('madvise-encrypt', 'dax'));
    assert.deepEqual([r.outcome, r.errno, r.detail], ['unsupported', 'ENOKEY', 'encrypting the DAX mapping after power-on failed']);
  });

  it('a mapping that cannot be read after power-on: SIGSEGV while reading', () => {
    const stub = encryptSteps('plain-mmap', (call, env, addr, len) => (call === 2 ? env.sys(NR.mprotect, addr, len, PROT_NONE) : null));
    const r = withStub('plain-mmap', { encryptMapping: stub }, () => cell('plain-mmap', 'dax'));
    assert.deepEqual([r.outcome, r.errno, r.detail], ['crashed', 'EFAULT', 'SIGSEGV reading DAX after power-on']);
  });

  it('the key not set again after power-on: the ciphertext reads back as garbage, every page is lost', () => {
    const stub = encryptSteps('madvise-encrypt', (call) => (call === 2 ? 0 : null));
    const r = withStub('madvise-encrypt', { encryptMapping: stub }, () => cell('madvise-encrypt', 'dax'));
    assert.deepEqual([r.outcome, r.errno, r.detail], ['data-loss', null, '12 pages lost, 0 plaintext bytes in the DAX image']);
    assert.equal(r.counters.integrity_errors, 12);
    assert.equal(r.counters.plaintext_exposed_bytes, 0);
  });
});

describe('memory cells after the scenario', () => {
  it('memory that does not read back what was written is data loss, page by page', () => {
    // a helper that maps one secret page at every page of the region: the pages alias
    const aliased = (env: UserEnv, len: number): AllocResult => {
      const addr = env.sys(NR.mmap, 0, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      const fd = env.sys(NR.memfd_secret, 0);
      assert.equal(env.sys(NR.ftruncate, fd, P), 0);
      for (let off = 0; off < len; off += P) assert.equal(env.sys(NR.mmap, addr + off, P, RW, MAP_SHARED | MAP_FIXED, fd, 0), addr + off);
      return { addr, len, fd, serial: 0, fallback: false, errno: 0 };
    };
    const r = withStub('memfd-secret', { allocate: aliased }, () => cell('memfd-secret', 'basic'));
    assert.deepEqual([r.outcome, r.errno, r.detail], ['data-loss', null, '11 of 12 pages read back wrong']);
    assert.equal(r.counters.integrity_errors, 11);
  });

  it('memory that cannot be read back after the scenario: the read fails and the cell says so', () => {
    // first half anonymous, second half secret (pinned, charged to the task's limit): under the swap
    // scenario's pressure the secret pages push the anonymous ones out, and nothing can bring them back
    const mixed = (env: UserEnv, len: number): AllocResult => {
      const addr = env.sys(NR.mmap, 0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      const fd = env.sys(NR.memfd_secret, 0);
      assert.equal(env.sys(NR.ftruncate, fd, len / 2), 0);
      assert.equal(env.sys(NR.mmap, addr + len / 2, len / 2, RW, MAP_SHARED | MAP_FIXED, fd, 0), addr + len / 2);
      return { addr, len, fd, serial: 0, fallback: false, errno: 0 };
    };
    const r = withStub('memfd-secret', { allocate: mixed }, () => cell('memfd-secret', 'swap'));
    assert.equal(r.outcome, 'unsupported');
    assert.equal(r.errno, 'ENOMEM');
    assert.equal(r.detail, 'reading the memory back failed');
    assert.ok(r.counters.swap_out > 0);
  });

  it('migration: only the pages that did not move are counted, and one is enough to make the cell unsupported', () => {
    // SEV moves plain pages but not encrypted ones: a program that encrypts only the second half
    const half = (env: UserEnv, len: number, key: KeySpec): AllocResult => {
      const addr = env.sys(NR.mmap, 0, len, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      const serial = env.sys(NR.add_key, 'mktme', key.description, key.payload);
      assert.equal(env.sys(NR.encrypt_mprotect, addr + len / 2, len / 2, RW, serial), 0);
      return { addr, len, fd: -1, serial, fallback: false, errno: 0 };
    };
    const r = withStub('encrypt-mprotect', { allocate: half }, () => cell('encrypt-mprotect', 'migration', { profile: 'sev' }));
    assert.deepEqual([r.outcome, r.errno, r.detail], ['unsupported', 'EBUSY', '6 of 12 pages did not move']);
    assert.deepEqual([r.counters.migrated, r.counters.migrate_failed], [6, 6]);
    // all of it stuck: all of it counted
    const stuck = cell('dev-mktme', 'migration');
    assert.deepEqual([stuck.outcome, stuck.errno, stuck.detail], ['unsupported', 'EBUSY', '12 of 12 pages did not move']);
  });

  it('a large region fits the machine: every page is written on one node and moves to the other', () => {
    const r = cell('madvise-encrypt', 'migration', { pages: 200 });
    assert.deepEqual([r.outcome, r.errno, r.detail], ['encrypted', null, 'as designed']);
    assert.deepEqual([r.counters.migrated, r.counters.migrate_failed], [200, 0]);
  });
});

describe('the swap scenario', () => {
  it('swap is plain unless the spec asks for dm-crypt: left out, encrypted memory leaks to the swap file', () => {
    const r = cell('encrypt-mprotect', 'swap', { noSwapOption: true });
    assert.equal(r.outcome, 'leaked');
    assert.deepEqual(r.leaks.media, ['swap']);
    assert.ok(r.counters.plaintext_exposed_bytes > 0);
  });

  it('a one-page region fits under the pressure: nothing is swapped, so a protected cell proves nothing and says so', () => {
    const enc = cell('encrypt-mprotect', 'swap', { pages: 1 });
    assert.deepEqual([enc.outcome, enc.errno, enc.detail], ['unsupported', null, 'nothing was swapped']);
    assert.equal(enc.counters.swap_out, 0);
    assert.equal(enc.counters.oom, 0);
    // the control claims nothing: plaintext whether or not anything was swapped
    const plain = cell('plain-mmap', 'swap', { pages: 1 });
    assert.deepEqual([plain.outcome, plain.errno, plain.detail], ['plaintext', null, 'as designed']);
  });

  it('only the swap scenario has a swap device: other cells leave a file named swap in the workdir alone', () => {
    for (const sc of ['basic', 'migration', 'dax'] as const) {
      const dir = workdir();
      writeFileSync(join(dir, 'swap'), 'not a swap file');
      const r = cell('madvise-encrypt', sc, { dir });
      assert.equal(r.outcome, 'encrypted', sc);
      assert.ok(existsSync(join(dir, 'swap')), sc);
      assert.equal(readFileSync(join(dir, 'swap'), 'utf8'), 'not a swap file', sc);
    }
  });

  it('only the DAX scenario has persistent memory: a helper that reaches for /dev/dax0.0 elsewhere gets no mapping', () => {
    const daxHelper = (env: UserEnv, len: number): AllocResult => {
      const fd = env.sys(NR.openat, AT_FDCWD, DAX_PATH, 2);
      const addr = env.sys(NR.mmap, 0, len, RW, MAP_SHARED, fd, 0);
      return addr < 0 ? { failed: addr } : { addr, len, fd, serial: 0, fallback: false, errno: 0 };
    };
    for (const sc of ['basic', 'swap', 'migration'] as const) {
      const r = withStub('plain-mmap', { allocate: daxHelper }, () => cell('plain-mmap', sc));
      assert.deepEqual([r.outcome, r.errno, r.detail], ['unsupported', 'EBADF', 'the helper gave up'], sc);
    }
  });
});

describe('what the frames hold, page by page', () => {
  function boot() {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [64, 64], daxFrames: 0 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
    for (const d of allDesigns()) d.install(k);
    const t = k.spawn();
    return { m, k, t, cpu: k.localCpu(t), sys: (nr: number, ...a: (number | string)[]) => k.syscall(t, nr, ...a) };
  }
  const buf = new Uint8Array(P);

  it('pages never touched are not looked at: a region is as encrypted (or secret) as its resident frames', () => {
    const { k, t, cpu, sys } = boot();
    const addr = sys(NR.mmap, 0, 4 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const serial = sys(NR.add_key, 'mktme', 'a', 'type=cpu algorithm=aes-xts-128');
    assert.equal(sys(NR.encrypt_mprotect, addr, 4 * P, RW, serial), 0);
    assert.equal(observeFrames(k, t, addr, 4, 5), 'plaintext'); // nothing resident: nothing to claim
    assert.equal(writePattern(cpu, addr, 2, 5, buf), 0);
    assert.equal(observeFrames(k, t, addr, 4, 5), 'encrypted');
    const fd = sys(NR.memfd_secret, 0);
    assert.equal(sys(NR.ftruncate, fd, 4 * P), 0);
    const s = sys(NR.mmap, 0, 4 * P, RW, MAP_SHARED, fd, 0);
    assert.equal(observeFrames(k, t, s, 4, 5), 'plaintext');
    assert.equal(writePattern(cpu, s, 2, 5, buf), 0);
    assert.equal(observeFrames(k, t, s, 4, 5), 'secret');
    k.shutdown();
  });

  it('plain frames are plaintext; a KeyID in the PTE is not enough, the frame must hold ciphertext', () => {
    const { m, k, t, cpu, sys } = boot();
    const plain = sys(NR.mmap, 0, 3 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert.equal(writePattern(cpu, plain, 3, 6, buf), 0);
    assert.equal(observeFrames(k, t, plain, 3, 6), 'plaintext');
    const addr = sys(NR.mmap, 0, 3 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const serial = sys(NR.add_key, 'mktme', 'a', 'type=cpu algorithm=aes-xts-128');
    assert.equal(sys(NR.encrypt_mprotect, addr, 3 * P, RW, serial), 0);
    assert.equal(writePattern(cpu, addr, 3, 6, buf), 0);
    assert.equal(observeFrames(k, t, addr, 3, 6), 'encrypted');
    // an engine that stored the plaintext: the frames hold the pattern as is
    for (let i = 0; i < 3; i++) {
      patternPage(6, i, buf);
      m.memory.buf.u8.set(buf, ptePfn(k.pool.get(t.mm.pgd, addr + i * P)) * P);
    }
    assert.equal(observeFrames(k, t, addr, 3, 6), 'plaintext');
    k.shutdown();
  });

  it('the verifier stops at a fault and returns it, not a count of bad pages', () => {
    const { k, cpu, sys } = boot();
    const addr = sys(NR.mmap, 0, 3 * P, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert.equal(verifyPattern(cpu, addr, 3, 5, new Uint8Array(P), new Uint8Array(P)), -E.EFAULT);
    k.shutdown();
  });
});

describe('patterns, scans and keys', () => {
  it('patternInto writes exactly words [at, at + 1024): the next page of a shared view is untouched', () => {
    const words = new Uint32Array(3 * 1024).fill(0xdeadbeef);
    patternInto(3, 0, words, 1024);
    assert.equal(words[1023], 0xdeadbeef);
    assert.equal(words[2048], 0xdeadbeef);
    const page = new Uint8Array(P);
    patternPage(3, 0, page);
    assert.deepEqual(new Uint8Array(words.buffer, 1024 * 4, P), page);
  });

  it('a leak scan looks for the region\'s pages only: the page just past it is not the region\'s plaintext', () => {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [32, 32], daxFrames: 0 }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 64 });
    const img = new Uint8Array(3 * P);
    const page = new Uint8Array(P);
    for (let i = 0; i < 3; i++) {
      patternPage(9, i, page);
      img.set(page, i * P);
    }
    assert.deepEqual(scanLeaks(k, [9], 2, img), { media: ['dax'], bytes: 2 * P });
    assert.deepEqual(scanLeaks(k, [9], 3, img), { media: ['dax'], bytes: 3 * P });
    k.shutdown();
  });

  it('the DAX key comes from the CSPRNG: two runs with one seed write different images and give equal counters', () => {
    const d1 = workdir(), d2 = workdir();
    const r1 = cell('madvise-encrypt', 'dax', { dir: d1 });
    const r2 = cell('madvise-encrypt', 'dax', { dir: d2 });
    assert.equal(r1.outcome, 'encrypted');
    assert.deepEqual(r2, r1, 'outcome, counters and leaks do not depend on key bytes');
    const i1 = readFileSync(join(d1, 'dax.img')), i2 = readFileSync(join(d2, 'dax.img'));
    assert.equal(i1.length, i2.length);
    let same = 0;
    for (let p = 0; p < i1.length; p += 16) if (i1.subarray(p, p + 16).equals(i2.subarray(p, p + 16))) same++;
    assert.equal(same, 0, 'no XTS block of ciphertext repeats: the keys differ');
  });
});
