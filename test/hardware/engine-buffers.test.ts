// The engine and the caller's buffers, on every backend: a buffer that does
// not hold the page (or part page) asked for is refused before anything is
// stored; a view of a resizable ArrayBuffer that grew is read from its new
// bytes, also when it was the second of the two buffers the engine keeps
// views of; a loop that stores from one buffer and loads into another hands
// the backend the same two views every time (no view made per page); and a
// KeyID's generation counter may take any int32 value, -1
// included, without a CPU taking the KeyID for unkeyed. The review of the
// quick mutation run at 8248cc3 (test/mutation-review/hardware-final.md) found
// the three: a short source was stored in part, with the rest of the frame
// taken from the scratch page (another page's plaintext).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, it, mock } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends } from '../../hardware/xts.js';

const P = asPfn;
const mk = (backend: string, nrCpus = 1) => Machine.create({ profile: 'mktme', backend, memory: { nodeFrames: [8, 8], daxFrames: 0 }, nrCpus });
const frame = (m: Machine, pfn: number): Uint8Array => m.memory.buf.u8.slice(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
const rnd = (n: number) => Uint8Array.from(randomBytes(n));

/** An ArrayBuffer that can grow (ES2024; node 20 has it, this project's TS lib does not declare it). */
interface Resizable extends ArrayBuffer {
  resize(n: number): void;
}
const resizable = (n: number, max: number) => new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Resizable)(n, { maxByteLength: max });
/** A SharedArrayBuffer that can grow (ES2024, likewise). */
interface Growable extends SharedArrayBuffer {
  grow(n: number): void;
}
const growable = (n: number, max: number) => new (SharedArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => Growable)(n, { maxByteLength: max });

for (const backend of availableBackends()) {
  describe(`engine buffers (${backend})`, () => {
    it('a source without the bytes asked for after srcOff is refused with a RangeError naming it, and the frame keeps its bytes', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      for (const keyid of [0, 1]) {
        const old = rnd(PAGE_SIZE);
        m.engine.write(P(2), keyid, old);
        // another page's plaintext in the engine's scratch page
        m.engine.write(P(3), keyid, rnd(PAGE_SIZE + 4), 4); // unaligned: through the scratch page
        assert.equal(m.engine.read(P(3), keyid, new Uint8Array(PAGE_SIZE + 4), 4), true);
        const before = frame(m, 2);
        const cases: [src: Uint8Array, srcOff: number, pageOff: number, len: number][] = [
          [rnd(100), 0, 0, PAGE_SIZE], // whole page from 100 bytes
          [rnd(PAGE_SIZE), 4, 0, PAGE_SIZE], // a page at an unaligned offset: 4 bytes short
          [rnd(PAGE_SIZE + 8), 16, 0, PAGE_SIZE], // aligned: 8 bytes short
          [rnd(50), 0, 8, 100], // part page
          [rnd(200), 150, 0, 100], // part page, at an offset
          [rnd(PAGE_SIZE), -1, 0, 8],
          [rnd(PAGE_SIZE), 0.5, 0, 8],
        ];
        for (const [src, off, pageOff, len] of cases) {
          assert.throws(
            () => m.engine.write(P(2), keyid, src, off, pageOff, len),
            (e: Error) => e instanceof RangeError && e.message === `src: ${len} bytes at offset ${off} do not fit its ${src.length} bytes`,
            `KeyID ${keyid}, ${src.length}-byte source at ${off}, ${len} bytes`,
          );
          assert.deepEqual(frame(m, 2), before, `KeyID ${keyid}: the frame is unchanged`);
        }
        const out = new Uint8Array(PAGE_SIZE);
        assert.equal(m.engine.read(P(2), keyid, out), true);
        assert.deepEqual(out, old);
      }
    });

    it('a destination without room for the bytes asked for is refused with a RangeError naming it, and keeps its bytes', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      for (const keyid of [0, 1]) {
        m.engine.write(P(2), keyid, rnd(PAGE_SIZE));
        for (const [n, off, len] of [[100, 0, PAGE_SIZE], [PAGE_SIZE, 16, PAGE_SIZE], [PAGE_SIZE, 4, PAGE_SIZE], [50, 0, 100]] as const) {
          const dst = new Uint8Array(n).fill(0xee);
          assert.throws(
            () => m.engine.read(P(2), keyid, dst, off, 0, len),
            (e: Error) => e instanceof RangeError && e.message === `dst: ${len} bytes at offset ${off} do not fit its ${n} bytes`,
          );
          assert.ok(dst.every((b) => b === 0xee), `KeyID ${keyid}: nothing written to dst`);
        }
      }
    });

    // a buffer whose length can change: a resizable ArrayBuffer, and (the CPUs' pages live on SharedArrayBuffers) a growable one
    for (const [kind, make] of [
      ['resizable ArrayBuffer', (n: number, max: number): { buf: ArrayBufferLike; grow(n: number): void } => { const b = resizable(n, max); return { buf: b, grow: (m) => b.resize(m) }; }],
      ['growable SharedArrayBuffer', (n: number, max: number): { buf: ArrayBufferLike; grow(n: number): void } => { const b = growable(n, max); return { buf: b, grow: (m) => b.grow(m) }; }],
    ] as const) {
      it(`a view of a ${kind} that grew: the page written from its new part is the page read back`, () => {
        const m = mk(backend);
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        for (const keyid of [0, 1]) {
          const b = make(PAGE_SIZE, 2 * PAGE_SIZE);
          const u8 = new Uint8Array(b.buf); // tracks the buffer's length
          u8.set(rnd(PAGE_SIZE));
          m.engine.write(P(2), keyid, u8, 0); // the engine keeps this buffer's view
          b.grow(2 * PAGE_SIZE);
          const second = rnd(PAGE_SIZE);
          u8.set(second, PAGE_SIZE);
          m.engine.write(P(3), keyid, u8, PAGE_SIZE);
          const out = new Uint8Array(PAGE_SIZE);
          assert.equal(m.engine.read(P(3), keyid, out), true);
          assert.deepEqual(out, second, `KeyID ${keyid}: written from the grown part`);
          // and read into the grown part
          const backBuf = make(PAGE_SIZE, 2 * PAGE_SIZE);
          const back = new Uint8Array(backBuf.buf);
          m.engine.read(P(2), keyid, back, 0);
          backBuf.grow(2 * PAGE_SIZE);
          assert.equal(m.engine.read(P(3), keyid, back, PAGE_SIZE), true);
          assert.deepEqual(back.subarray(PAGE_SIZE), second, `KeyID ${keyid}: read into the grown part`);
        }
      });

      it(`a ${kind} that grew while it was the older of the two kept views is read from its new bytes`, () => {
        const m = mk(backend);
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        for (const keyid of [0, 1]) {
          const b = make(PAGE_SIZE, 2 * PAGE_SIZE);
          const u8 = new Uint8Array(b.buf);
          u8.set(rnd(PAGE_SIZE));
          m.engine.write(P(2), keyid, u8, 0);
          const other = new Uint8Array(PAGE_SIZE);
          assert.equal(m.engine.read(P(2), keyid, other), true); // u8's view is now the older one
          b.grow(2 * PAGE_SIZE);
          const second = rnd(PAGE_SIZE);
          u8.set(second, PAGE_SIZE);
          m.engine.write(P(3), keyid, u8, PAGE_SIZE);
          assert.equal(m.engine.read(P(3), keyid, other), true);
          assert.deepEqual(other, second, `KeyID ${keyid}: written from the grown part`);
        }
      });
    }

    describe('the views handed to the backend', () => {
      afterEach(() => mock.restoreAll());

      it('storing from one buffer and loading into another, page after page, reuses one view of each; a third buffer replaces the view used less recently', () => {
        const m = mk(backend);
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        const seen: { op: string; u8: Uint8Array; view: object }[] = [];
        const b = m.engine.backend;
        const enc = b.encrypt.bind(b), dec = b.decrypt.bind(b);
        mock.method(b, 'encrypt', ((...a: Parameters<typeof b.encrypt>) => (seen.push({ op: 'enc', u8: a[1].u8, view: a[1] }), enc(...a))) as typeof b.encrypt);
        mock.method(b, 'decrypt', ((...a: Parameters<typeof b.decrypt>) => (seen.push({ op: 'dec', u8: a[3].u8, view: a[3] }), dec(...a))) as typeof b.decrypt);
        const src = rnd(PAGE_SIZE), dst = new Uint8Array(PAGE_SIZE), third = rnd(PAGE_SIZE);
        for (let p = 0; p < 4; p++) {
          m.engine.write(P(p), 1, src);
          assert.equal(m.engine.read(P(p), 1, dst), true);
          assert.deepEqual(dst, src);
        }
        const views = (u8: Uint8Array) => new Set(seen.filter((e) => e.u8 === u8).map((e) => e.view));
        assert.equal(seen.length, 8);
        assert.equal(views(src).size, 1, 'one view of the source for 4 stores');
        assert.equal(views(dst).size, 1, 'one view of the destination for 4 loads');
        const [srcView] = views(src), [dstView] = views(dst);
        m.engine.write(P(4), 1, third); // replaces src's view (used less recently than dst's)
        assert.equal(m.engine.read(P(4), 1, dst), true);
        assert.deepEqual(dst, third);
        assert.equal(seen.at(-1)!.view, dstView, 'dst kept its view');
        m.engine.write(P(5), 1, src);
        assert.notEqual(seen.at(-1)!.view, srcView, 'src got a new view');
        assert.equal(m.engine.read(P(5), 1, dst), true);
        assert.deepEqual(dst, src);
        // the older view serves a page at any 16-aligned offset of its buffer, straight
        const big = rnd(3 * PAGE_SIZE);
        m.engine.write(P(6), 1, big, 16);
        assert.equal(m.engine.read(P(6), 1, dst), true); // big's view is now the older one
        m.engine.write(P(7), 1, big, 32);
        assert.equal(seen.at(-1)!.u8, big, 'a page at offset 32 goes straight from big');
        assert.equal(m.engine.read(P(7), 1, dst), true);
        assert.deepEqual(dst, big.subarray(32, 32 + PAGE_SIZE));
      });
    });

    it('a whole page from and into buffers whose length is not a multiple of 4 (a page and 2 bytes, at offset 0)', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      for (const keyid of [0, 1]) {
        const src = rnd(PAGE_SIZE + 2);
        m.engine.write(P(2), keyid, src, 0);
        const dst = new Uint8Array(PAGE_SIZE + 2).fill(0xee);
        assert.equal(m.engine.read(P(2), keyid, dst, 0), true);
        assert.deepEqual(dst.subarray(0, PAGE_SIZE), src.subarray(0, PAGE_SIZE), `KeyID ${keyid}`);
        assert.deepEqual([...dst.subarray(PAGE_SIZE)], [0xee, 0xee], 'the bytes after the page are untouched');
      }
    });

    it("a KeyID whose generation counter has wrapped to -1 is still keyed on a CPU that touches it first", () => {
      const m = mk(backend, 2);
      // the shared generation word of KeyID 1, as 2^32 - 2 programmings would leave it
      // (internal state: there is no faster way to wrap a 32-bit counter)
      const meta = (m.engine as unknown as { keyMeta: Int32Array }).keyMeta;
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      Atomics.store(meta, 1 * 2 + 1, -2);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM); // generation -1
      assert.equal(Atomics.load(meta, 3), -1);
      const cpu1 = Machine.attach(m.descriptor(), 1);
      const pt = rnd(PAGE_SIZE);
      cpu1.engine.write(P(2), 1, pt);
      assert.notDeepEqual(frame(m, 2), pt, 'stored encrypted, not as plaintext');
      const out = new Uint8Array(PAGE_SIZE);
      assert.equal(m.engine.read(P(2), 1, out), true);
      assert.deepEqual(out, pt, 'CPU 0 reads what CPU 1 wrote');
    });
  });
}
