// Behaviour that the quick Stryker run of main at 8248cc3 (hardware files
// costs.js, engine.js, xts-noble.js) left untested; the review of its
// survivors is test/mutation-review/hardware-final.md.
//
// - SET_KEY_RANDOM draws again when the CPU's random source gives a key whose
//   two halves are equal (OpenSSL refuses such a key). The test makes
//   node:crypto's randomFillSync give such bytes first, through
//   module.syncBuiltinESMExports, the documented way to update the live
//   bindings of a built-in ES module. The engine draws through a pool
//   (hardware/random.ts): the test empties it first, so that the engine's
//   draw refills it from the replaced source, every key of which has equal
//   halves; the engine draws until the next refill, from the real one.
// - Whole pages that go straight to or from the caller's buffer: the same
//   buffer at a 16-aligned and then an unaligned offset; a view whose
//   byteOffset is not a multiple of 4; a source with less than a page after
//   srcOff (refused, not stored in part).
// - xts-noble on a big-endian host refuses to load and says why (the host is
//   simulated by a Uint32Array that stores words big-endian).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { describe, it } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { _poolView, randomKeyFill } from '../../hardware/random.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends } from '../../hardware/xts.js';

const P = asPfn;
const mk = (backend: string, profile = 'mktme') =>
  Machine.create({ profile, backend, memory: { nodeFrames: [8, 8], daxFrames: 0 }, nrCpus: 1 });
const frame = (m: Machine, pfn: number): Uint8Array => m.memory.buf.u8.slice(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);

describe('SET_KEY_RANDOM and a random source that gives equal halves', () => {
  for (const backend of availableBackends().filter((b) => b !== 'noble')) {
    it(`the random key still works on ${backend} (which refuses equal halves) when the first draw has equal halves`, () => {
      const cjs = createRequire(import.meta.url)('node:crypto') as { randomFillSync: (b: Uint8Array) => Uint8Array };
      const real = cjs.randomFillSync;
      let draws = 0;
      // first draw: Key1 = Key2 = 1..16 (not a palindrome); then the real source
      cjs.randomFillSync = (b: Uint8Array): Uint8Array => {
        if (draws++ > 0) return real(b);
        for (let i = 0; i < b.length; i++) b[i] = (i % 16) + 1;
        return b;
      };
      syncBuiltinESMExports();
      try {
        const m = mk(backend);
        randomKeyFill(new Uint8Array(_poolView().pool.length - _poolView().at)); // the pool, emptied
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        assert.equal(draws, 2, 'the engine drew from the replaced source, then again from the real one');
        cjs.randomFillSync = real;
        syncBuiltinESMExports();
        const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
        m.engine.write(P(2), 1, pt);
        const out = new Uint8Array(PAGE_SIZE);
        assert.equal(m.engine.read(P(2), 1, out), true);
        assert.deepEqual(out, pt);
        assert.notDeepEqual(frame(m, 2), pt, 'the frame holds ciphertext');
      } finally {
        cjs.randomFillSync = real;
        syncBuiltinESMExports();
      }
    });
  }
});

for (const backend of availableBackends()) {
  describe(`engine whole pages and the caller's buffer (${backend})`, () => {
    it('one buffer used at a 16-aligned offset and then at unaligned ones gives the same bytes', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const buf = Uint8Array.from(randomBytes(PAGE_SIZE + 64));
      const a = buf.slice(0, PAGE_SIZE), b = buf.slice(4, 4 + PAGE_SIZE);
      m.engine.write(P(1), 1, buf, 0);
      m.engine.write(P(2), 1, buf, 4);
      assert.equal(m.engine.read(P(1), 1, buf, 0), true);
      assert.deepEqual(buf.subarray(0, PAGE_SIZE), a);
      assert.equal(m.engine.read(P(2), 1, buf, 8), true);
      assert.deepEqual(buf.subarray(8, 8 + PAGE_SIZE), b);
      assert.equal(m.engine.read(P(1), 1, buf, 16), true);
      assert.deepEqual(buf.subarray(16, 16 + PAGE_SIZE), a);
      assert.equal(m.engine.read(P(2), 1, buf, 36), true);
      assert.deepEqual(buf.subarray(36, 36 + PAGE_SIZE), b);
    });

    it('a view whose byteOffset is not a multiple of 4 is read into and written from like any other', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      for (const keyid of [0, 1]) {
        const src = new Uint8Array(new ArrayBuffer(PAGE_SIZE + 8), 2, PAGE_SIZE + 4);
        src.set(randomBytes(src.length));
        const want = src.slice(0, PAGE_SIZE);
        m.engine.write(P(3), keyid, src, 0);
        const dst = new Uint8Array(new ArrayBuffer(PAGE_SIZE + 8), 6, PAGE_SIZE);
        assert.equal(m.engine.read(P(3), keyid, dst, 0), true);
        assert.deepEqual(dst, want, `KeyID ${keyid}`);
      }
    });

    it('a whole-page write through a keyed KeyID from a source with less than a page after srcOff is refused and stores nothing', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const old = Uint8Array.from(randomBytes(PAGE_SIZE));
      m.engine.write(P(2), 1, old);
      const before = frame(m, 2);
      // a buffer shorter than a page; a page-and-8 buffer at 16 (first use, then after a use at 0)
      assert.throws(() => m.engine.write(P(2), 1, new Uint8Array(100).fill(0x11)), RangeError);
      assert.deepEqual(frame(m, 2), before);
      const buf = Uint8Array.from(randomBytes(PAGE_SIZE + 8));
      assert.throws(() => m.engine.write(P(2), 1, buf, 16), RangeError);
      assert.deepEqual(frame(m, 2), before);
      m.engine.write(P(3), 1, buf, 0);
      assert.throws(() => m.engine.write(P(2), 1, buf, 16), RangeError);
      assert.throws(() => m.engine.write(P(2), 1, buf, 32), RangeError);
      assert.deepEqual(frame(m, 2), before);
      const out = new Uint8Array(PAGE_SIZE);
      assert.equal(m.engine.read(P(2), 1, out), true);
      assert.deepEqual(out, old);
    });
  });
}

describe('xts-noble on a big-endian host', () => {
  it('refuses to load and says it needs a little-endian host', async () => {
    const g = globalThis as unknown as { Uint32Array: Uint32ArrayConstructor };
    const Native = g.Uint32Array;
    // words stored most significant byte first, as on a big-endian CPU
    class BigEndianUint32Array extends Native {
      constructor(...args: unknown[]) {
        super(...(args as [number]));
        if (Array.isArray(args[0])) {
          const v = new DataView(this.buffer, this.byteOffset, this.byteLength);
          (args[0] as number[]).forEach((w, i) => v.setUint32(4 * i, w, false));
        }
      }
    }
    g.Uint32Array = BigEndianUint32Array as unknown as Uint32ArrayConstructor;
    try {
      // a fresh instance of the module (the query makes a new module URL)
      const url = new URL('../../hardware/xts-noble.js?big-endian-host', import.meta.url).href;
      await assert.rejects(import(url), (e: unknown) => e instanceof Error && /little-endian/.test(e.message));
    } finally {
      g.Uint32Array = Native;
    }
  });
});
