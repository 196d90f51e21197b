// Whole pages go straight between a frame and the caller's buffer (no copy
// through the scratch page); parts of pages and unaligned buffers go through
// the scratch page. Both paths must give the same bytes, the same counters,
// and touch nothing of the caller's buffer outside the page.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends } from '../../hardware/xts.js';

const mk = (backend: string, profile = 'mktme') => Machine.create({ profile, backend, memory: { nodeFrames: [8, 8], daxFrames: 0 }, nrCpus: 1 });

for (const backend of availableBackends()) {
  describe(`engine whole-page path (${backend})`, () => {
    it('a page written from inside a larger buffer (aligned and not) reads back the same through both paths', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const big = Uint8Array.from(randomBytes(3 * PAGE_SIZE));
      for (const [pfn, off] of [[1, 16], [2, 4], [3, 0], [4, PAGE_SIZE + 48]] as const) {
        m.engine.write(asPfn(pfn), 1, big, off); // 16-aligned: direct; 4: through the scratch page
        const want = big.subarray(off, off + PAGE_SIZE);
        // into a larger buffer at an aligned and an unaligned offset, and into an exact page
        for (const at of [32, 8]) {
          const out = new Uint8Array(2 * PAGE_SIZE).fill(0xa5);
          assert.equal(m.engine.read(asPfn(pfn), 1, out, at), true);
          assert.deepEqual(out.subarray(at, at + PAGE_SIZE), want, `pfn ${pfn} written at ${off}, read at ${at}`);
          assert.ok(out.subarray(0, at).every((b) => b === 0xa5), 'nothing before the page is touched');
          assert.ok(out.subarray(at + PAGE_SIZE).every((b) => b === 0xa5), 'nothing after the page is touched');
        }
        const part = new Uint8Array(100);
        m.engine.read(asPfn(pfn), 1, part, 0, 200, 100);
        assert.deepEqual(part, want.subarray(200, 300));
        // the frame holds ciphertext, not the page
        const stored = m.memory.buf.u8.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
        assert.notDeepEqual(stored, want);
      }
      const c = m.engine.counters.snapshot();
      assert.equal(c.pages_encrypted, 4);
      assert.equal(c.pages_decrypted, 4 * 2 + 4);
    });

    it('the buffer a page went to last can change under the engine: the next access uses the new one', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const a = Uint8Array.from(randomBytes(PAGE_SIZE));
      const b = Uint8Array.from(randomBytes(PAGE_SIZE));
      m.engine.write(asPfn(0), 1, a);
      m.engine.write(asPfn(1), 1, b);
      const out1 = new Uint8Array(PAGE_SIZE), out2 = new Uint8Array(PAGE_SIZE);
      m.engine.read(asPfn(0), 1, out1);
      m.engine.read(asPfn(1), 1, out2);
      m.engine.read(asPfn(1), 1, out1);
      assert.deepEqual(out1, b);
      assert.deepEqual(out2, b);
    });

    it('plain frames (KeyID 0) store the caller\'s page as is, from inside a larger buffer', () => {
      const m = mk(backend);
      const big = Uint8Array.from(randomBytes(2 * PAGE_SIZE));
      m.engine.write(asPfn(5), 0, big, 64);
      assert.deepEqual(m.memory.buf.u8.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE), big.subarray(64, 64 + PAGE_SIZE));
      m.engine.zero(asPfn(5), 0);
      assert.ok(m.memory.buf.u8.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE).every((x) => x === 0));
      // and read back into a larger buffer, at an aligned offset (straight: the addon's copy where it is there) and not
      m.engine.write(asPfn(6), 0, big, PAGE_SIZE - 32);
      m.engine.write(asPfn(7), 0, big, 4);
      for (const [pfn, from] of [[6, PAGE_SIZE - 32], [7, 4]] as const)
        for (const at of [48, 8]) {
          const out = new Uint8Array(2 * PAGE_SIZE).fill(0x5a);
          assert.equal(m.engine.read(asPfn(pfn), 0, out, at), true);
          assert.deepEqual(out.subarray(at, at + PAGE_SIZE), big.subarray(from, from + PAGE_SIZE), `pfn ${pfn} read at ${at}`);
          assert.ok(out.subarray(0, at).every((b) => b === 0x5a) && out.subarray(at + PAGE_SIZE).every((b) => b === 0x5a), 'nothing else touched');
        }
      assert.ok(m.memory.buf.u8.subarray(4 * PAGE_SIZE, 5 * PAGE_SIZE).every((x) => x === 0), 'the frame before untouched');
      assert.ok(m.memory.buf.u8.subarray(8 * PAGE_SIZE, 9 * PAGE_SIZE).every((x) => x === 0), 'the frame after untouched');
      const c = m.engine.counters.snapshot();
      assert.deepEqual([c.pages_encrypted, c.pages_decrypted], [0, 0], 'plain frames: no crypto');
    });

    it('a load that fails the integrity check gives zeros for the page only, straight into the caller\'s buffer too', () => {
      const m = mk(backend, 'tdx');
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
      m.engine.write(asPfn(2), 1, Uint8Array.from(randomBytes(PAGE_SIZE)));
      for (const at of [16, 8]) {
        const out = new Uint8Array(PAGE_SIZE + 64).fill(0x77);
        assert.equal(m.engine.read(asPfn(2), 2, out, at), false);
        assert.ok(out.subarray(at, at + PAGE_SIZE).every((x) => x === 0));
        assert.ok(out.subarray(0, at).every((x) => x === 0x77));
        assert.ok(out.subarray(at + PAGE_SIZE).every((x) => x === 0x77));
      }
    });
  });
}
