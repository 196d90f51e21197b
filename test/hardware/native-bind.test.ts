// The native addon's bound buffers (xts-native.c bind, cryptBound,
// copyBound): a Uint8Array on a SharedArrayBuffer named once, then found by
// number. The raw functions are tested on a copy of the addon file, loaded as
// a module of its own (its own registers and table), so that nothing here
// changes the registers of the backend the rest of the process uses.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dataBuf, type DataBuf } from '../../hardware/backend.js';
import { getBackend } from '../../hardware/xts.js';
import { boundCount, hostCompare, hostCopy, nativeBackend, nativeEvpBackend, releaseBound } from '../../hardware/xts-native.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADDON = join(ROOT, 'build', 'xts_native.node');

interface Raw {
  importKey(key: Uint8Array, impl?: 'evp'): object;
  setRegs(regs: Float64Array): void;
  crypt(h: object, src: Uint8Array, dst: Uint8Array): void;
  copy(src: Uint8Array, dst: Uint8Array): void;
  bind(u8: unknown): number;
  unbind(id: unknown): void;
  unbindAll(): void;
  cryptBound(h: object): boolean;
  copyBound(): boolean;
  compareBound(): number | null;
}
// the registers (xts-native.c): srcOff, dstOff, len, unit, count, enc, src id, dst id
const NR_BOUND = 256;

/** n bytes on a SharedArrayBuffer (map would make an ArrayBuffer's: its species' constructor) */
const sab = (n: number, fill = (i: number) => (i * 7 + 3) & 255): Uint8Array => {
  const u = new Uint8Array(new SharedArrayBuffer(n));
  for (let i = 0; i < n; i++) u[i] = fill(i);
  return u;
};
const key = Uint8Array.from({ length: 32 }, (_, i) => i + 1);

describe('native bound buffers', { skip: existsSync(ADDON) ? false : 'build/xts_native.node was not built' }, () => {
  const tmp = mkdtempSync(join(tmpdir(), 'memcrypt-bind-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const copyOf = join(tmp, 'xts_native_copy.node');
  copyFileSync(ADDON, copyOf);
  const raw = createRequire(import.meta.url)(copyOf) as Raw;
  const regs = new Float64Array(new ArrayBuffer(64));
  raw.setRegs(regs);
  const h = raw.importKey(key);
  const set = (soff: number, doff: number, len: number, unit: number, count: number, enc: 0 | 1, src = -1, dst = -1): void => {
    regs.set([soff, doff, len, unit, count, enc, src, dst]);
  };

  it('binds only Uint8Arrays on a SharedArrayBuffer', () => {
    const refuse = { name: 'TypeError', message: 'bind: expected a Uint8Array on a SharedArrayBuffer' };
    assert.throws(() => raw.bind(new Uint8Array(16)), refuse, 'an ArrayBuffer can be transferred away');
    assert.throws(() => raw.bind(new Uint32Array(new SharedArrayBuffer(16))), refuse);
    assert.throws(() => raw.bind(new SharedArrayBuffer(16)), refuse);
    assert.throws(() => raw.bind(undefined), refuse);
  });

  it('crypts bound buffers to the same bytes as the same call on the arrays', () => {
    const src = sab(4 * 4096), a = sab(4 * 4096, () => 0), b = sab(4 * 4096, () => 0);
    const ids = [src, a].map((u) => raw.bind(u));
    assert.ok(ids.every((id) => id >= 0) && ids[0] !== ids[1]);
    set(4096, 512, 4096, 0x5000, 2, 1, ids[0], ids[1]);
    raw.cryptBound(h);
    set(4096, 512, 4096, 0x5000, 2, 1);
    raw.crypt(h, src, b);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a.subarray(512, 512 + 8192), src.subarray(4096, 4096 + 8192));
    assert.equal(a.subarray(0, 512).every((x) => x === 0) && a.subarray(512 + 8192).every((x) => x === 0), true, 'nothing outside the units');
    // and back, in place
    set(512, 512, 4096, 0x5000, 2, 0, ids[1], ids[1]);
    raw.cryptBound(h);
    assert.deepEqual(a.subarray(512, 512 + 8192), src.subarray(4096, 4096 + 8192));
    for (const id of ids) raw.unbind(id);
  });

  it('copies between bound buffers, overlapping too (memmove)', () => {
    const a = sab(16, (i) => i), b = sab(8, () => 0);
    const ia = raw.bind(a), ib = raw.bind(b);
    set(4, 2, 4, 0, 1, 0, ia, ib);
    raw.copyBound();
    assert.deepEqual([...b], [0, 0, 4, 5, 6, 7, 0, 0]);
    set(0, 2, 8, 0, 1, 0, ia, ia);
    raw.copyBound();
    assert.deepEqual([...a], [0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15]);
    raw.unbind(ia);
    raw.unbind(ib);
  });

  it('compares bound ranges as Buffer.compare does', () => {
    const a = sab(64, (i) => i), b = sab(64, (i) => i);
    const ia = raw.bind(a), ib = raw.bind(b);
    const cmpRaw = (aoff: number, boff: number, len: number): number | null => {
      set(aoff, boff, len, 0, 1, 0, ia, ib);
      return raw.compareBound();
    };
    const want = (aoff: number, boff: number, len: number): number => Buffer.from(a.buffer).compare(b, boff, boff + len, aoff, aoff + len);
    b[40] = 200; // after a's 40 in b: a < b from there
    for (const [aoff, boff, len] of [[0, 0, 64], [0, 0, 40], [0, 0, 41], [1, 0, 8], [0, 1, 8], [10, 10, 0], [41, 41, 23], [0, 0, 0]]) {
      const got = cmpRaw(aoff, boff, len);
      assert.equal(got, want(aoff, boff, len), `${aoff} ${boff} ${len}`);
      assert.ok([-1, 0, 1].includes(got));
    }
    assert.equal(cmpRaw(0, 0, 41), -1);
    assert.equal(cmpRaw(1, 0, 8), 1);
    for (const [aoff, boff, len] of [[0, 0, 65], [1, 0, 64], [0, 1, 64], [-1, 0, 1], [0, 0, 0.5]]) {
      set(aoff, boff, len, 0, 1, 0, ia, ib);
      assert.throws(() => raw.compareBound(), { name: 'RangeError', message: 'compare: range out of bounds' }, `${aoff} ${boff} ${len}`);
    }
    raw.unbind(ib);
    set(0, 0, 8, 0, 1, 0, ia, ib);
    assert.equal(raw.compareBound(), null, 'an id let go names nothing');
    raw.unbind(ia);
  });

  it("checks ranges against the bound view's own length, and writes nothing it refuses", () => {
    const whole = sab(256, () => 0);
    const view = whole.subarray(64, 128); // 64 bytes at byte 64
    const src = sab(64);
    const iv = raw.bind(view), is = raw.bind(src);
    for (const [soff, doff, len, count] of [[0, 16, 64, 1], [0, 0, 32, 3], [0, 0, 16, 0], [0, 0, 8, 1], [0, 0, 24, 1], [0, -16, 16, 1], [0, 0.5, 16, 1]]) {
      set(soff, doff, len, 0, count, 1, is, iv);
      assert.throws(() => raw.cryptBound(h), { name: 'RangeError', message: 'crypt: data unit out of range' }, `${soff} ${doff} ${len} ${count}`);
    }
    for (const [soff, doff, len] of [[0, 1, 64], [1, 0, 64], [0, 0, 65], [0, -1, 1]]) {
      set(soff, doff, len, 0, 1, 0, is, iv);
      assert.throws(() => raw.copyBound(), { name: 'RangeError', message: 'copy: range out of bounds' }, `${soff} ${doff} ${len}`);
    }
    assert.ok(whole.every((x) => x === 0), 'nothing written');
    set(0, 0, 64, 0, 1, 0, is, iv);
    raw.copyBound();
    assert.deepEqual(whole.subarray(64, 128), src, "the view's byte 0 is its buffer's byte 64");
    assert.ok(whole.subarray(0, 64).every((x) => x === 0) && whole.subarray(128).every((x) => x === 0));
    raw.unbind(iv);
    raw.unbind(is);
  });

  it('does nothing, and says so, with an id let go or one that was never an id, even once the slot is bound again', () => {
    const a = sab(32), b = sab(32, () => 0);
    const ia = raw.bind(a), ib = raw.bind(b);
    set(0, 0, 32, 0, 1, 1, ia, ib);
    assert.equal(raw.cryptBound(h), true);
    b.fill(0);
    raw.unbind(ib);
    raw.unbind(ib); // again: ignored
    const ib2 = raw.bind(b);
    assert.notEqual(ib2, ib, 'the slot comes back under a new id');
    assert.equal(ib2 % NR_BOUND, ib % NR_BOUND, 'in the same slot');
    for (const bad of [ib, -1, NaN, 0.5, ib2 + NR_BOUND, 2 ** 53, Infinity]) {
      set(0, 0, 32, 0, 1, 1, ia, bad);
      assert.equal(raw.cryptBound(h), false, String(bad));
      set(0, 0, 32, 0, 1, 0, bad, ia);
      assert.equal(raw.copyBound(), false, String(bad));
      set(0, 0, 32, 0, 1, 0, ia, bad);
      assert.equal(raw.compareBound(), null, String(bad));
    }
    assert.ok(b.every((x) => x === 0) && a.some((x) => x !== 0), 'nothing written');
    set(0, 0, 32, 0, 1, 1, ia, ib2);
    assert.equal(raw.cryptBound(h), true, 'the new id names b');
    assert.ok(b.some((x) => x !== 0));
    assert.throws(() => raw.unbind('x'), { name: 'TypeError', message: 'unbind: expected an id' });
    raw.unbind(ia);
    raw.unbind(ib2);
  });

  it('lets every buffer go at once (unbindAll): their ids name nothing, and their slots bind again', () => {
    const bufs = [sab(32), sab(32), sab(32)];
    const ids = bufs.map((u) => raw.bind(u));
    raw.unbindAll();
    for (const id of ids) {
      set(0, 0, 16, 0, 1, 0, id, id);
      assert.equal(raw.copyBound(), false, String(id));
    }
    raw.unbindAll(); // nothing bound: nothing to do
    const again = bufs.map((u) => raw.bind(u));
    assert.ok(again.every((id, i) => id >= 0 && id !== ids[i]));
    set(0, 16, 16, 0, 1, 0, again[0], again[1]);
    assert.equal(raw.copyBound(), true);
    assert.deepEqual(bufs[1].subarray(16), bufs[0].subarray(0, 16));
    raw.unbindAll();
  });

  it(`holds ${NR_BOUND} buffers; the next bind says -1 until one is let go`, () => {
    const bufs = Array.from({ length: NR_BOUND }, () => sab(16));
    const ids = bufs.map((u) => raw.bind(u));
    assert.equal(new Set(ids).size, NR_BOUND);
    assert.ok(ids.every((id) => id >= 0));
    assert.equal(raw.bind(sab(16)), -1);
    raw.unbind(ids[100]);
    const again = raw.bind(sab(16));
    assert.equal(again % NR_BOUND, ids[100] % NR_BOUND);
    for (const id of [...ids, again]) raw.unbind(id);
    // every slot free again
    const more = Array.from({ length: NR_BOUND }, () => raw.bind(sab(16)));
    assert.ok(more.every((id) => id >= 0));
    for (const id of more) raw.unbind(id);
  });
});

describe('native backend on SharedArrayBuffers (bound) and ArrayBuffers (not)', { skip: existsSync(ADDON) ? false : 'build/xts_native.node was not built' }, () => {
  const VECTORS = (JSON.parse(readFileSync(new URL('../../../test/hardware/ieee1619-vectors.json', import.meta.url), 'utf8')) as { name: string; key1: string; key2: string; dataUnit: string; pt: string; ct: string }[]).filter((v) => v.key1 !== v.key2);
  const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
  const onSab = (u: Uint8Array): DataBuf => dataBuf(sab(u.length, (i) => u[i]));

  for (const [name, be] of [['native', nativeBackend], ['native (evp)', nativeEvpBackend]] as const) {
    it(`${name}: the IEEE 1619 vectors, in place on a SharedArrayBuffer`, () => {
      for (const v of VECTORS) {
        const k = be.importKey(hex(v.key1 + v.key2));
        const buf = onSab(hex(v.pt));
        const unit = Number(v.dataUnit);
        be.encrypt(k, buf, 0, buf, 0, buf.u8.length, unit);
        assert.equal(Buffer.from(buf.u8).toString('hex'), v.ct, v.name);
        be.decrypt(k, buf, 0, buf, 0, buf.u8.length, unit);
        assert.equal(Buffer.from(buf.u8).toString('hex'), v.pt, v.name);
      }
    });
  }

  it('gives the bytes openssl gives, whichever side is on which kind of buffer', () => {
    const ossl = getBackend('openssl');
    const kn = nativeBackend.importKey(key), ko = ossl.importKey(key);
    const plain = sab(3 * 4096);
    const want = dataBuf(new Uint8Array(3 * 4096));
    ossl.encrypt(ko, dataBuf(plain.slice()), 4096, want, 4096, 4096, 0x9000);
    for (const [s, d] of [['sab', 'sab'], ['sab', 'ab'], ['ab', 'sab'], ['ab', 'ab']] as const) {
      const src = s === 'sab' ? dataBuf(plain) : dataBuf(plain.slice());
      const dst = d === 'sab' ? dataBuf(new Uint8Array(new SharedArrayBuffer(3 * 4096))) : dataBuf(new Uint8Array(3 * 4096));
      nativeBackend.encrypt(kn, src, 4096, dst, 4096, 4096, 0x9000);
      assert.deepEqual(dst.u8, want.u8, `${s} -> ${d}`);
      nativeBackend.decrypt(kn, dst, 4096, dst, 4096, 4096, 0x9000);
      assert.deepEqual(dst.u8.subarray(4096, 8192), plain.subarray(4096, 8192), `${s} -> ${d} and back`);
    }
  });

  it('copies (hostCopy) between any two kinds of buffer', () => {
    const copy = hostCopy()!;
    for (const [s, d] of [['sab', 'sab'], ['sab', 'ab'], ['ab', 'sab'], ['ab', 'ab']] as const) {
      const bytes = Uint8Array.from({ length: 64 }, (_, i) => i);
      const src = dataBuf(s === 'sab' ? sab(64, (i) => bytes[i]) : bytes);
      const dst = dataBuf(d === 'sab' ? new Uint8Array(new SharedArrayBuffer(32)) : new Uint8Array(32));
      copy(src, 8, dst, 4, 20);
      assert.deepEqual([...dst.u8], [0, 0, 0, 0, ...bytes.subarray(8, 28), 0, 0, 0, 0, 0, 0, 0, 0], `${s} -> ${d}`);
      assert.throws(() => copy(src, 0, dst, 16, 17), { name: 'RangeError', message: 'copy: range out of bounds' }, `${s} -> ${d}`);
    }
  });

  it('compares (hostCompare) any two kinds of buffer', () => {
    const cmp = hostCompare()!;
    for (const [s, d] of [['sab', 'sab'], ['sab', 'ab'], ['ab', 'sab'], ['ab', 'ab']] as const) {
      const mk = (kind: string, f: (i: number) => number): DataBuf => dataBuf(kind === 'sab' ? sab(32, f) : Uint8Array.from({ length: 32 }, (_, i) => f(i)));
      const a = mk(s, (i) => i), b = mk(d, (i) => (i === 20 ? 0 : i));
      assert.equal(cmp(a, 0, b, 0, 20), 0, `${s} ${d}`);
      assert.equal(cmp(a, 0, b, 0, 21), 1, `${s} ${d}`);
      assert.equal(cmp(b, 0, a, 0, 21), -1, `${s} ${d}`);
      assert.equal(cmp(a, 4, b, 0, 4), 1, `${s} ${d}: 4.. against 0..`);
      assert.equal(cmp(a, 21, b, 21, 11), 0, `${s} ${d}`);
      assert.throws(() => cmp(a, 0, b, 1, 32), RangeError, `${s} ${d}`);
    }
  });

  it("works on, unbound, when the thread's table is full", () => {
    const ossl = getBackend('openssl');
    const kn = nativeBackend.importKey(key), ko = ossl.importKey(key);
    const idOf = (b: DataBuf): number => {
      const syms = Object.getOwnPropertySymbols(b);
      assert.equal(syms.length, 1);
      return (b as unknown as Record<symbol, number>)[syms[0]];
    };
    const bufs = Array.from({ length: NR_BOUND + 20 }, (_, n) => dataBuf(sab(64, (i) => (i + n) & 255)));
    const ids: number[] = [];
    for (const [n, b] of bufs.entries()) {
      const want = dataBuf(b.u8.slice());
      ossl.encrypt(ko, want, 0, want, 0, 64, n * 64);
      nativeBackend.encrypt(kn, b, 0, b, 0, 64, n * 64);
      assert.deepEqual(b.u8, want.u8, `buffer ${n}`);
      ids.push(idOf(b));
    }
    assert.ok(ids.filter((id) => id >= 0).length <= NR_BOUND);
    assert.equal(ids.at(-1), -1, 'the last ones found the table full');
    const last = bufs.at(-1)!, first = bufs[0];
    assert.equal(hostCompare()!(last, 0, dataBuf(last.u8.slice()), 0, 64), 0, 'an unbound compare');
    assert.notEqual(hostCompare()!(first, 0, last, 0, 64), 0);
    assert.equal(new Set(ids.filter((id) => id >= 0)).size, ids.filter((id) => id >= 0).length);
  });

  it('after releaseBound, a DataBuf still in use gives the same bytes and binds again; nothing stays bound', () => {
    const ossl = getBackend('openssl');
    const kn = nativeBackend.importKey(key), ko = ossl.importKey(key);
    releaseBound(); // what earlier tests of this file bound
    assert.equal(boundCount(), 0);
    const mem = dataBuf(sab(2 * 4096, () => 0)), page = dataBuf(sab(4096));
    const idOf = (b: DataBuf): number | undefined => (b as unknown as Record<symbol, number | undefined>)[Object.getOwnPropertySymbols(b)[0]];
    const want = dataBuf(new Uint8Array(2 * 4096));
    let before: (number | undefined)[] = [];
    for (const round of [0, 1, 2]) {
      ossl.encrypt(ko, dataBuf(page.u8.slice()), 0, want, 4096, 4096, 4096);
      nativeBackend.encrypt(kn, page, 0, mem, 4096, 4096, 4096);
      assert.deepEqual(mem.u8, want.u8, `round ${round}`);
      if (round === 0) {
        assert.equal(boundCount(), 2);
        before = [idOf(mem), idOf(page)];
        releaseBound();
        assert.equal(boundCount(), 0);
      }
      if (round === 1) {
        assert.ok(idOf(mem)! >= 0 && idOf(page)! >= 0 && idOf(mem) !== before[0] && idOf(page) !== before[1], 'bound again, under new ids');
        assert.equal(boundCount(), 2);
      }
      hostCopy()!(mem, 4096, page, 0, 4096);
      if (round === 0) assert.deepEqual([idOf(mem), idOf(page)], [undefined, undefined], 'the let-go ids forgotten by the call that met them');
      assert.equal(hostCompare()!(mem, 4096, page, 0, 4096), 0);
      nativeBackend.decrypt(kn, page, 0, page, 0, 4096, 4096);
    }
    assert.equal(boundCount(), 2, 'one slot each: none left behind');
    // a call with one buffer let go and one bound just now: both let go, so
    // that the new one's slot is not left behind, and both bound again next time
    releaseBound();
    const fresh = dataBuf(sab(4096, (i) => (i * 13) & 255));
    const orig = fresh.u8.slice();
    nativeBackend.encrypt(kn, fresh, 0, mem, 4096, 4096, 4096);
    assert.deepEqual([idOf(fresh), idOf(mem), boundCount()], [undefined, undefined, 0]);
    fresh.u8.fill(0);
    nativeBackend.decrypt(kn, mem, 4096, fresh, 0, 4096, 4096);
    assert.deepEqual(fresh.u8, orig, 'and the bytes went where they should, both times');
    assert.equal(boundCount(), 2);
    releaseBound();
    // the other way round: the source let go, the destination bound just now
    const fresh2 = dataBuf(sab(4096, () => 0));
    nativeBackend.decrypt(kn, mem, 4096, fresh2, 0, 4096, 4096);
    assert.deepEqual([idOf(mem), idOf(fresh2), boundCount()], [undefined, undefined, 0]);
    assert.deepEqual(fresh2.u8, orig);
    releaseBound();
    // copy and compare meet let-go ids the same way
    hostCopy()!(mem, 0, page, 0, 16);
    assert.equal(hostCompare()!(mem, 0, page, 0, 16), 0);
    releaseBound();
    assert.equal(hostCompare()!(mem, 0, page, 0, 16), 0);
    assert.deepEqual([idOf(mem), idOf(page)], [undefined, undefined], 'compare forgot the let-go ids');
    hostCopy()!(page, 0, mem, 16, 16);
    assert.equal(hostCompare()!(mem, 16, page, 0, 16), 0);
    assert.ok(idOf(mem)! >= 0 && idOf(page)! >= 0);
    // an ArrayBuffer's DataBuf never binds, and keeps saying so
    const plain = dataBuf(mem.u8.slice(0, 64));
    for (const [a, b] of [[plain, mem], [mem, plain]]) {
      assert.equal(hostCompare()!(a, 0, b, 0, 64), 0);
      assert.equal(idOf(plain), -1);
      assert.ok(idOf(mem)! >= 0, 'and the bound one stays bound');
    }
    releaseBound();
  });

  it("keeps a DataBuf's binding to this thread: a structured clone carries none", () => {
    const buf = dataBuf(new Uint8Array(new SharedArrayBuffer(4096)));
    const k = nativeBackend.importKey(key);
    nativeBackend.encrypt(k, buf, 0, buf, 0, 4096, 0);
    assert.equal(Object.getOwnPropertySymbols(buf).length, 1, 'bound on first use');
    const clone = structuredClone(buf);
    assert.equal(Object.getOwnPropertySymbols(clone).length, 0);
    assert.ok(clone.u8.buffer === buf.u8.buffer || clone.u8.buffer instanceof SharedArrayBuffer);
    nativeBackend.decrypt(k, clone, 0, clone, 0, 4096, 0);
    assert.ok(buf.u8.every((x) => x === 0), 'the clone, bound on its own, decrypted the same shared bytes');
  });
});
