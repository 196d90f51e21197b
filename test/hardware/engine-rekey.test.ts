// A KeyID that PCONFIG reprograms keeps one key object per engine (the
// native backend takes each new key into it in place), and SET_KEY_RANDOM's
// bytes come from the CSPRNG through a pool that keeps none it gave away.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { dataBuf, type XtsBackend, type XtsKey } from '../../hardware/backend.js';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { _poolView, randomKeyFill } from '../../hardware/random.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends, backendNote, getBackend } from '../../hardware/xts.js';
import { nativeEvpBackend } from '../../hardware/xts-native.js';

const key = (): Uint8Array => Uint8Array.from(randomBytes(32));
const mk = (backend: string) => Machine.create({ profile: 'mktme', backend, memory: { nodeFrames: [8, 8], daxFrames: 0 }, nrCpus: 1 });

/** What `be` stores for pt under `k` at frame pfn (the tweak is the physical address). */
function cipherOf(be: XtsBackend, k: Uint8Array, pt: Uint8Array, pfn: number): Uint8Array {
  const out = dataBuf(new Uint8Array(PAGE_SIZE));
  be.encrypt(be.importKey(k), dataBuf(pt.slice()), 0, out, 0, PAGE_SIZE, pfn * PAGE_SIZE);
  return out.u8;
}

for (const backend of availableBackends()) {
  describe(`engine key reprogramming (${backend})`, () => {
    it('stores under the KeyID key of the moment, through clears and reprograms', () => {
      const m = mk(backend);
      const be = getBackend(backend);
      const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
      const frame = (pfn: number) => m.memory.buf.u8.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
      const out = new Uint8Array(PAGE_SIZE);
      let prev: { k: Uint8Array; raw: Uint8Array } | null = null;
      for (let i = 0; i < 5; i++) {
        const k = key();
        m.engine.program(1, KeyProgram.SET_KEY_DIRECT, k);
        m.engine.write(asPfn(2), 1, pt);
        assert.deepEqual(frame(2), cipherOf(be, k, pt, 2), `program ${i}`);
        assert.equal(m.engine.read(asPfn(2), 1, out), true);
        assert.deepEqual(out, pt);
        if (prev !== null) {
          // the frame the last key wrote, read through the new one: the new key's decryption of it
          m.memory.buf.u8.set(prev.raw, 5 * PAGE_SIZE);
          m.engine.read(asPfn(5), 1, out);
          const want = dataBuf(prev.raw.slice());
          be.decrypt(be.importKey(k), want, 0, want, 0, PAGE_SIZE, 5 * PAGE_SIZE);
          assert.deepEqual(out, want.u8);
          assert.notDeepEqual(out, pt);
        }
        prev = { k, raw: cipherOf(be, k, pt, 5) };
        if (i % 2 === 1) {
          m.engine.program(1, KeyProgram.CLEAR_KEY);
          m.engine.write(asPfn(3), 1, pt);
          assert.deepEqual(frame(3), pt, 'a cleared KeyID stores plaintext');
        }
      }
      assert.equal(m.engine.counters.snapshot().key_programs, 7);
    });
  });
}

describe('engine key objects', () => {
  it('a native engine imports a KeyID once and rekeys it at every later program; keyed stores stay right', { skip: backendNote() ?? false }, () => {
    const be = getBackend('native');
    const calls = { importKey: 0, rekey: 0 };
    const { importKey, rekey } = be;
    const spied = be as { importKey: (k: Uint8Array) => XtsKey; rekey?: (k: XtsKey, b: Uint8Array) => void };
    spied.importKey = (k) => (calls.importKey++, importKey.call(be, k));
    spied.rekey = (h, b) => (calls.rekey++, rekey!.call(be, h, b));
    try {
      const m = mk('native');
      const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
      for (let i = 0; i < 6; i++) {
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
        m.engine.write(asPfn(1), 1, pt);
        m.engine.write(asPfn(4), 2, pt);
        if (i === 2) m.engine.program(1, KeyProgram.CLEAR_KEY);
      }
      // two KeyIDs: one import each, then a rekey at each of the 5 later programs
      assert.deepEqual(calls, { importKey: 2, rekey: 10 });
      const out = new Uint8Array(PAGE_SIZE);
      m.engine.read(asPfn(1), 1, out);
      assert.deepEqual(out, pt);
      m.engine.read(asPfn(4), 1, out);
      assert.notDeepEqual(out, pt, 'KeyID 1 does not read what KeyID 2 wrote');
    } finally {
      spied.importKey = importKey;
      spied.rekey = rekey;
    }
  });

  it('a backend without rekey gets a fresh import at every program', () => {
    const be = getBackend('noble');
    assert.equal(be.rekey, undefined);
    let imports = 0;
    const { importKey } = be;
    (be as { importKey: (k: Uint8Array) => XtsKey }).importKey = (k) => (imports++, importKey.call(be, k));
    try {
      const m = mk('noble');
      const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
      for (let i = 0; i < 4; i++) {
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        m.engine.write(asPfn(1), 1, pt);
      }
      assert.equal(imports, 4);
    } finally {
      (be as { importKey: (k: Uint8Array) => XtsKey }).importKey = importKey;
    }
  });
});

describe('native rekey', { skip: backendNote() ?? false }, () => {
  for (const [name, be] of [['vaes or evp', getBackend('native')], ['evp', nativeEvpBackend]] as const) {
    it(`(${name}) encrypts as a fresh import of the new key, and a refused key leaves the old one`, () => {
      const pt = dataBuf(Uint8Array.from(randomBytes(PAGE_SIZE)));
      const h = be.importKey(key());
      for (let i = 0; i < 4; i++) {
        const k = key();
        be.rekey!(h, k);
        const a = dataBuf(new Uint8Array(PAGE_SIZE));
        const b = dataBuf(new Uint8Array(PAGE_SIZE));
        be.encrypt(h, pt, 0, a, 0, PAGE_SIZE, 0x7000 * (i + 1));
        be.encrypt(be.importKey(k), pt, 0, b, 0, PAGE_SIZE, 0x7000 * (i + 1));
        assert.deepEqual(a.u8, b.u8);
        be.decrypt(h, a, 0, a, 0, PAGE_SIZE, 0x7000 * (i + 1));
        assert.deepEqual(a.u8, pt.u8);
      }
      const k = key();
      be.rekey!(h, k);
      const same = new Uint8Array(32).fill(7);
      assert.throws(() => be.rekey!(h, same), /halves are equal/);
      const a = dataBuf(new Uint8Array(PAGE_SIZE));
      be.encrypt(h, pt, 0, a, 0, PAGE_SIZE, 0);
      assert.deepEqual(a.u8, cipherOf(be, k, pt.u8, 0));
      assert.throws(() => be.rekey!(h, new Uint8Array(16)), /32 bytes/);
    });
  }
});

describe('randomKeyFill', () => {
  it('hands out CSPRNG bytes across pool refills and keeps none it gave away', () => {
    const seen = new Set<string>();
    // 37 bytes at a time: every request but the first few straddles a refill of the 1 KiB pool at some point
    for (let i = 0; i < 100; i++) {
      const b = new Uint8Array(37);
      const before = _poolView().at;
      randomKeyFill(b);
      // the pool is drawn again only when used up: 32 keys to a draw
      if (before + 37 <= _poolView().pool.length) assert.equal(_poolView().at, before + 37);
      else assert.equal(_poolView().at, before + 37 - _poolView().pool.length);
      assert.ok(b.some((x) => x !== 0));
      const hex = Buffer.from(b).toString('hex');
      assert.ok(!seen.has(hex));
      seen.add(hex);
      const { pool, at } = _poolView();
      assert.ok(pool.subarray(0, at).every((x) => x === 0), 'the bytes handed out are zeroed in the pool');
      // the bytes not yet handed out are the CSPRNG's (not all zero: 1 in 2^(8n) for n left)
      if (pool.length - at >= 16) assert.ok(pool.subarray(at).some((x) => x !== 0));
    }
    const big = new Uint8Array(3000); // more than a pool
    randomKeyFill(big);
    assert.ok(big.subarray(0, 1000).some((x) => x !== 0) && big.subarray(2000).some((x) => x !== 0));
  });
});
