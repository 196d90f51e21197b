// Behaviour the mutation run showed untested: the engine's key cache and
// random keys, copyRaw on distinct frames, MAC hardware on frames nobody has
// written, the memory size limit, the native backend's keys, error texts and
// redaction.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { totalmem } from 'node:os';
import { describe, it } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { MAX_FRAMES, PhysicalMemory } from '../../hardware/memory.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { nativeStatus } from '../../hardware/xts-native.js';
import { availableBackends, checkOpensslKey, getBackend, redact, type XtsKey } from '../../hardware/xts.js';

const P = asPfn;
const mk = (profile = 'mktme', backend = 'openssl', nrCpus = 1) =>
  Machine.create({ profile, backend, memory: { nodeFrames: [4, 4] }, nrCpus });

describe('engine key handling', () => {
  it('imports a key once per programming, not on every access', () => {
    const m = mk('mktme', 'noble');
    const be = m.engine.backend;
    const orig = be.importKey;
    let imports = 0;
    be.importKey = (k: Uint8Array): XtsKey => {
      imports++;
      return orig.call(be, k);
    };
    try {
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
      const out = new Uint8Array(PAGE_SIZE);
      m.engine.write(P(2), 1, pt);
      for (let i = 0; i < 5; i++) assert.equal(m.engine.read(P(2), 1, out), true);
      m.engine.write(P(3), 1, pt, 0, 16, 64); // part page: load + store
      assert.deepEqual(out, pt);
      assert.equal(imports, 1, 'one import for the key, then the CPU\'s cached copy');
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM); // a new key: the next access imports it
      m.engine.read(P(2), 1, out);
      m.engine.read(P(2), 1, out);
      assert.equal(imports, 2);
      assert.notDeepEqual(out, pt);
    } finally {
      be.importKey = orig;
    }
  });

  it('SET_KEY_RANDOM refuses only equal halves: halves that share some bytes are fine', () => {
    // A uniform 32-byte key has some i with key[i] === key[16 + i] about 6% of
    // the time; in 1000 keys that never happening has probability ~1e-27.
    const m = mk();
    const slot = new Uint8Array(m.engine.descriptor().keySab, 32, 32); // KeyID 1's slot
    let sharing = 0;
    for (let n = 0; n < 1000; n++) {
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      assert.doesNotThrow(() => checkOpensslKey(slot));
      for (let i = 0; i < 16; i++)
        if (slot[i] === slot[16 + i]) {
          sharing++;
          break;
        }
    }
    assert.ok(sharing > 0, 'random keys are biased: no key had a byte in common between its halves');
    assert.ok(sharing < 200, `${sharing} of 1000 keys share a byte between halves`);
  });

  it('the native backend names itself in its keys', { skip: nativeStatus() ?? false }, () => {
    const k = getBackend('native').importKey(Uint8Array.from({ length: 32 }, (_, i) => i));
    assert.equal(k.backend, 'native');
  });

  it('availableBackends lists native exactly when its addon loaded', () => {
    assert.deepEqual(availableBackends(), nativeStatus() === null ? ['native', 'openssl', 'noble'] : ['openssl', 'noble']);
  });
});

describe('engine data path edges', () => {
  it('copyRaw copies exactly the source frame\'s stored bytes onto the destination frame', () => {
    const m = mk();
    const raw = m.memory.buf.u8;
    raw.set(randomBytes(raw.length)); // every frame different
    const before = Uint8Array.from(raw);
    m.engine.copyRaw(P(3), P(6));
    assert.deepEqual(raw.subarray(6 * PAGE_SIZE, 7 * PAGE_SIZE), before.subarray(3 * PAGE_SIZE, 4 * PAGE_SIZE));
    assert.deepEqual(raw.subarray(0, 6 * PAGE_SIZE), before.subarray(0, 6 * PAGE_SIZE));
    assert.deepEqual(raw.subarray(7 * PAGE_SIZE), before.subarray(7 * PAGE_SIZE));
    m.engine.copyRaw(P(6), P(1)); // and downwards
    assert.deepEqual(raw.subarray(PAGE_SIZE, 2 * PAGE_SIZE), before.subarray(3 * PAGE_SIZE, 4 * PAGE_SIZE));
    assert.deepEqual(raw.subarray(0, PAGE_SIZE), before.subarray(0, PAGE_SIZE));
  });

  for (const profile of ['tdx', 'sgx']) {
    it(`${profile}: a frame no KeyID has written reads without an integrity fault`, () => {
      const m = mk(profile);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const out = new Uint8Array(PAGE_SIZE).fill(0xee);
      assert.equal(m.engine.read(P(4), 1, out), true);
      assert.ok(out.some((b) => b !== 0) && out.some((b) => b !== 0xee), 'zeros decrypted through KeyID 1: garbage, not poison');
      assert.equal(m.engine.read(P(5), 0, out), true);
      assert.ok(out.every((b) => b === 0), 'KeyID 0 sees the zeroed frame');
      assert.equal(m.engine.counters.get('integrity_faults'), 0);
    });
  }

  it('names nrCpus when a machine asks for too many CPUs', () => {
    for (const n of [1025, 1.5])
      assert.throws(
        () => Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [1] }, nrCpus: n }),
        (e: Error) => e instanceof RangeError && e.message === `nrCpus: expected an integer in [0, 1024], got ${n}`,
      );
  });
});

describe('physical memory edges', () => {
  it('a number below the first frame is in no NUMA node', () => {
    const mem = PhysicalMemory.create({ nodeFrames: [2, 3], daxFrames: 1 });
    assert.equal(mem.nodeOf(asPfn(-1)), -1);
    assert.equal(mem.nodeOf(asPfn(0)), 0);
    assert.equal(mem.nodeOf(asPfn(2)), 1);
  });

  // The limit is 4 GiB of frames. The SharedArrayBuffer is allocated but never
  // touched, so it costs address space, not memory.
  it('takes up to MAX_FRAMES frames in all, no more', { skip: totalmem() < 8 * 2 ** 30 ? 'needs 4 GiB of address space' : false }, () => {
    assert.throws(
      () => PhysicalMemory.create({ nodeFrames: [MAX_FRAMES], daxFrames: 1 }),
      (e: Error) => e instanceof RangeError && e.message === `nodeFrames: total frames must be in [1, ${MAX_FRAMES}], got ${MAX_FRAMES + 1}`,
    );
    assert.throws(() => PhysicalMemory.create({ nodeFrames: [MAX_FRAMES - 1, 2] }), /got 1048577$/);
    const mem = PhysicalMemory.create({ nodeFrames: [MAX_FRAMES - 2], daxFrames: 2 });
    assert.equal(mem.nrFrames, MAX_FRAMES);
    assert.equal(mem.isDax(asPfn(MAX_FRAMES - 1)), true);
  });
});

describe('error texts and redaction', () => {
  it('an unknown backend name lists the known ones, comma-separated', () => {
    assert.throws(
      () => getBackend('aesni'),
      (e: Error) => e instanceof RangeError && e.message === "backend: unknown crypto backend 'aesni' (expected one of: native, openssl, noble)",
    );
  });

  it('redaction adds no enumerable property: a redacted object deep-equals its plain contents', () => {
    const o = redact({ secret: 'k', n: 1 }, '[label]');
    assert.deepEqual(o, { secret: 'k', n: 1 });
    assert.deepEqual({ ...o }, { secret: 'k', n: 1 });
  });
});
