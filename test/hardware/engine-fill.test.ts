// engine.fillFresh and unfill: a first-touch whole-page store that skips the
// zeroing's encryption must leave the frame, the cache-alias state and every
// counter exactly as zero() then write() would, and its undo exactly as zero() alone.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends } from '../../hardware/xts.js';

// one key for both machines of a test, so that their frames can be compared byte for byte
const KEY1 = Uint8Array.from(randomBytes(32));
const KEY2 = Uint8Array.from(randomBytes(32));
const mk = (backend: string, profile = 'mktme') => {
  const m = Machine.create({ profile, backend, memory: { nodeFrames: [8, 8] }, nrCpus: 1 });
  m.engine.program(1, KeyProgram.SET_KEY_DIRECT, KEY1);
  return m;
};
const frame = (m: Machine, pfn: number) => Uint8Array.from(m.memory.buf.u8.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE));

for (const backend of availableBackends()) {
  describe(`engine fillFresh (${backend})`, () => {
    it('the frame, the alias state and the counters are those of zero() then write()', () => {
      const src = Uint8Array.from(randomBytes(3 * PAGE_SIZE));
      const a = mk(backend);
      const b = mk(backend);
      // both machines: the frame last cached through KeyID 2, so the first touch through 1 counts an alias conflict
      for (const m of [a, b]) {
        m.engine.program(2, KeyProgram.SET_KEY_DIRECT, KEY2);
        m.engine.write(asPfn(5), 2, src, 0);
      }
      assert.equal(a.engine.fillFresh(asPfn(5), 1, src, PAGE_SIZE), true);
      b.engine.zero(asPfn(5), 1);
      b.engine.write(asPfn(5), 1, src, PAGE_SIZE);
      assert.deepEqual(frame(a, 5), frame(b, 5));
      assert.deepEqual(a.engine.counters.snapshot(), b.engine.counters.snapshot());
      assert.deepEqual([a.engine.counters.snapshot().pages_encrypted, a.engine.counters.snapshot().alias_conflicts], [3, 1]);
      assert.equal(a.engine.cachedAlias(asPfn(5)), 1);
      const out = new Uint8Array(PAGE_SIZE);
      assert.equal(a.engine.read(asPfn(5), 1, out), true);
      assert.deepEqual(out, src.subarray(PAGE_SIZE, 2 * PAGE_SIZE));
    });

    it('TDX: the frame is owned by the KeyID it was filled through, as after zero() then write()', () => {
      const m = Machine.create({ profile: 'tdx', backend, memory: { nodeFrames: [8, 8] }, nrCpus: 1 });
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
      const src = Uint8Array.from(randomBytes(PAGE_SIZE));
      m.engine.write(asPfn(4), 2, src);
      assert.equal(m.engine.fillFresh(asPfn(4), 1, src, 0), true);
      const out = new Uint8Array(PAGE_SIZE);
      assert.equal(m.engine.read(asPfn(4), 2, out), false, 'the old owner now fails the MAC check');
      assert.equal(m.engine.read(asPfn(4), 1, out), true);
      assert.deepEqual(out, src);
      const c = m.engine.counters.snapshot();
      assert.deepEqual([c.pages_encrypted, c.pages_decrypted, c.integrity_faults, c.crypto_bytes], [3, 1, 1, 4 * PAGE_SIZE]);
    });

    it('unfill leaves the frame and the counters as zero() alone', () => {
      const src = Uint8Array.from(randomBytes(PAGE_SIZE));
      const a = mk(backend);
      const b = mk(backend);
      assert.equal(a.engine.fillFresh(asPfn(3), 1, src, 0), true);
      a.engine.unfill(asPfn(3), 1);
      b.engine.zero(asPfn(3), 1);
      assert.deepEqual(frame(a, 3), frame(b, 3));
      assert.deepEqual(a.engine.counters.snapshot(), b.engine.counters.snapshot());
      assert.equal(a.engine.counters.snapshot().pages_encrypted, 1);
    });

    it('does nothing and says false where there is no encryption to skip: KeyID 0, an unprogrammed KeyID, a src off 16-byte alignment', () => {
      const m = mk(backend);
      const src = Uint8Array.from(randomBytes(PAGE_SIZE + 16));
      const before = frame(m, 2);
      const counts = m.engine.counters.snapshot();
      assert.equal(m.engine.fillFresh(asPfn(2), 0, src, 0), false);
      assert.equal(m.engine.fillFresh(asPfn(2), 3, src, 0), false);
      assert.equal(m.engine.fillFresh(asPfn(2), 1, src, 8), false);
      assert.deepEqual(frame(m, 2), before);
      assert.deepEqual(m.engine.counters.snapshot(), counts);
      assert.equal(m.engine.cachedAlias(asPfn(2)), -1);
      assert.equal(m.engine.fillFresh(asPfn(2), 1, src, 16), true);
    });

    it('refuses a short src and a bad frame before touching anything', () => {
      const m = mk(backend);
      assert.throws(() => m.engine.fillFresh(asPfn(2), 1, new Uint8Array(PAGE_SIZE), 16), /src/);
      assert.throws(() => m.engine.fillFresh(asPfn(99), 1, new Uint8Array(PAGE_SIZE), 0), /pfn/);
      assert.equal(m.engine.counters.snapshot().pages_encrypted, 0);
    });
  });
}
