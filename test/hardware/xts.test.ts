import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { availableBackends, backendNote, dataBuf, defaultBackend, getBackend, nativeImpl, type XtsBackend } from '../../hardware/xts.js';
import { nativeEvpBackend } from '../../hardware/xts-native.js';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface Vector {
  name: string;
  key1: string;
  key2: string;
  dataUnit: string;
  pt: string;
  ct: string;
}
// IEEE 1619-2007 XTS-AES-128 vectors (see the file for the values; sources in the commit message).
const VECTORS: Vector[] = JSON.parse(
  readFileSync(new URL('../../../test/hardware/ieee1619-vectors.json', import.meta.url), 'utf8'),
);
const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const keyOf = (v: Vector) => hex(v.key1 + v.key2);
const equalHalves = (v: Vector) => v.key1 === v.key2;

describe('XTS-AES-128 backends', () => {
  it('has vectors, including one with equal key halves', () => {
    assert.ok(VECTORS.length >= 9);
    assert.ok(VECTORS.some(equalHalves));
  });

  // the native backend twice where it is built: on its best implementation and with every key on OpenSSL's EVP
  const named: [string, XtsBackend][] = availableBackends().map((n) => [n, getBackend(n)]);
  if (backendNote() === null) named.push(['native (evp)', nativeEvpBackend]);
  for (const [name, be] of named) {
    for (const v of VECTORS) {
      if (name !== 'noble' && equalHalves(v)) {
        it(`${name} refuses ${v.name} (equal key halves) with a clear error`, () => {
          assert.throws(() => be.importKey(keyOf(v)), /key: the two XTS key halves are equal/);
        });
        continue;
      }
      it(`${name} passes ${v.name}`, () => {
        const k = be.importKey(keyOf(v));
        const unit = Number(v.dataUnit);
        const buf = dataBuf(hex(v.pt));
        be.encrypt(k, buf, 0, buf, 0, buf.u8.length, unit);
        assert.equal(Buffer.from(buf.u8).toString('hex'), v.ct);
        be.decrypt(k, buf, 0, buf, 0, buf.u8.length, unit);
        assert.equal(Buffer.from(buf.u8).toString('hex'), v.pt);
      });
    }
  }

  it('noble and openssl agree byte for byte on random keys, addresses and pages', () => {
    const n = getBackend('noble');
    const o = getBackend('openssl');
    agree(n, o);
  });

  it('native agrees with noble byte for byte, in place and across buffers, SharedArrayBuffer included', { skip: backendNote() ?? false }, () => {
    agree(getBackend('noble'), getBackend('native'));
    const nat = getBackend('native');
    const key = randomBytes(32);
    key[16] = key[0] ^ 1;
    const sab = dataBuf(new Uint8Array(new SharedArrayBuffer(3 * 4096)));
    sab.u8.set(randomBytes(3 * 4096));
    const pt = Uint8Array.from(sab.u8.subarray(4096, 8192));
    const k = nat.importKey(key);
    nat.encrypt(k, sab, 4096, sab, 4096, 4096, 0x7_0000_1000); // in place on shared memory
    const ref = dataBuf(Uint8Array.from(pt));
    const nob = getBackend('noble');
    nob.encrypt(nob.importKey(key), ref, 0, ref, 0, 4096, 0x7_0000_1000);
    assert.deepEqual(Uint8Array.from(sab.u8.subarray(4096, 8192)), ref.u8);
    nat.decrypt(k, sab, 4096, sab, 4096, 4096, 0x7_0000_1000);
    assert.deepEqual(Uint8Array.from(sab.u8.subarray(4096, 8192)), pt);
    assert.throws(() => nat.encrypt(k, sab, 8192, sab, 8192, 8192, 0), /runs past the buffer/);
  });

  it('native VAES and native EVP agree byte for byte on every length, in place, at odd offsets and over several units', { skip: backendNote() ?? false }, () => {
    const nat = getBackend('native');
    const evp = nativeEvpBackend;
    // every tail of the VAES path: 16-block groups, 4-block groups and single blocks (1..300 blocks)
    for (let blocks = 1; blocks <= 300; blocks += blocks < 40 ? 1 : 37) {
      const len = 16 * blocks;
      const key = randomBytes(32);
      key[16] = key[0] ^ 0x80;
      const kn = nat.importKey(key);
      const ke = evp.importKey(key);
      const unit = randomBytes(6).readUIntLE(0, 6) * 16 + blocks;
      const src = dataBuf(Uint8Array.from(randomBytes(len + 48)));
      const a = dataBuf(new Uint8Array(len + 32));
      const b = dataBuf(new Uint8Array(len + 32));
      nat.encrypt(kn, src, 48, a, 16, len, unit);
      evp.encrypt(ke, src, 48, b, 16, len, unit);
      assert.deepEqual(a.u8, b.u8, `encrypt, ${blocks} blocks`);
      nat.decrypt(kn, a, 16, a, 16, len, unit); // in place
      assert.deepEqual(a.u8.subarray(16, 16 + len), src.u8.subarray(48, 48 + len), `decrypt, ${blocks} blocks`);
      evp.decrypt(ke, src, 0, b, 0, len, unit);
      nat.decrypt(kn, src, 0, a, 0, len, unit);
      assert.deepEqual(a.u8.subarray(0, len), b.u8.subarray(0, len), `decrypt of random data, ${blocks} blocks`);
    }
  });

  it('the addon itself refuses a key with equal halves on either path, as OpenSSL does (the backend checks first)', { skip: backendNote() ?? false }, () => {
    const addon = createRequire(import.meta.url)('../../../build/xts_native.node') as { importKey(k: Uint8Array, impl?: string): object };
    const key = Uint8Array.from(randomBytes(32));
    key.copyWithin(16, 0, 16);
    for (const impl of [undefined, 'evp']) assert.throws(() => addon.importKey(key, impl), (e: Error) => e instanceof RangeError && e.message === 'key: OpenSSL refused the XTS key', String(impl));
    key[31] ^= 1;
    for (const impl of [undefined, 'evp']) assert.equal(typeof addon.importKey(key, impl), 'object');
    assert.throws(() => addon.importKey(key, 'aesni'), /impl: expected "evp" or undefined/);
  });

  it('the addon checks its call registers before it touches memory, and each call that reads them refuses to run before setRegs or without its arguments (in a process of its own: registers are per thread)', { skip: backendNote() ?? false }, () => {
    const addon = fileURLToPath(new URL('../../../build/xts_native.node', import.meta.url));
    const code = `
      const a = require(${JSON.stringify(addon)});
      const k = a.importKey(new Uint8Array(32).map((_, i) => i));
      const src = new Uint8Array(8192), dst = new Uint8Array(8192);
      const out = [];
      const tryIt = (f) => { try { f(); out.push('ok'); } catch (e) { out.push(e.constructor.name + ': ' + e.message); } };
      tryIt(() => a.crypt(k, src, dst));
      tryIt(() => a.copy(src, dst));
      tryIt(() => a.cryptBound(k));
      tryIt(() => a.copyBound());
      tryIt(() => a.compareBound());
      const r = new Float64Array(new ArrayBuffer(64));
      tryIt(() => a.setRegs(new Float64Array(new ArrayBuffer(56))));
      tryIt(() => a.setRegs(new Uint8Array(64)));
      a.setRegs(r);
      const set = (soff, doff, len, unit, count) => { r[0] = soff; r[1] = doff; r[2] = len; r[3] = unit; r[4] = count; r[5] = 1; };
      for (const regs of [[0, 0, 4096, 0, 2], [0, 4096, 4096, 0, 1], [-16, 0, 4096, 0, 1], [0, 0, 4096, NaN, 1], [0.5, 0, 4096, 0, 1],
                          [0, 0, 4095, 0, 1], [0, 0, 4096, 2 ** 53, 1], [0, 0, 4096, 0, 0], [4096, 4096, 4096, 0, 1], [4112, 0, 4096, 0, 1]]) {
        set(...regs);
        tryIt(() => a.crypt(k, src, dst));
      }
      tryIt(() => a.crypt(k, src, new Float64Array(8)));
      tryIt(() => a.crypt(k, src));
      tryIt(() => a.copy(src));
      tryIt(() => a.cryptBound());
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const range = 'RangeError: crypt: data unit out of range';
    assert.deepEqual(JSON.parse(r.stdout), [
      'TypeError: crypt: expected (handle, src, dst) after setRegs',
      'TypeError: copy: expected (src, dst) after setRegs',
      'TypeError: cryptBound: expected (handle) after setRegs',
      'TypeError: copyBound: expected setRegs first',
      'TypeError: compareBound: expected setRegs first',
      'TypeError: regs: expected a Float64Array of at least 8',
      'TypeError: regs: expected a Float64Array of at least 8',
      'ok',
      'ok',
      range,
      range,
      range,
      range,
      range,
      range,
      'ok',
      range,
      'TypeError: crypt: src and dst: expected Uint8Arrays',
      'TypeError: crypt: expected (handle, src, dst) after setRegs',
      'TypeError: copy: expected (src, dst) after setRegs',
      'TypeError: cryptBound: expected (handle) after setRegs',
    ]);
  });

  it('nativeImpl names the VAES path exactly where the CPU has VAES, VPCLMULQDQ and AVX-512', { skip: backendNote() ?? false }, () => {
    let flags: string[] = [];
    try {
      flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].trim().split(/\s+/) ?? [];
    } catch {
      // no /proc/cpuinfo: only the name set is checked
    }
    const vaes = process.arch === 'x64' && ['avx512f', 'vaes', 'vpclmulqdq', 'aes'].every((f) => flags.includes(f));
    if (flags.length > 0) assert.equal(nativeImpl(), vaes ? 'vaes-avx512' : 'openssl-evp');
    assert.ok(['vaes-avx512', 'openssl-evp'].includes(nativeImpl()!));
  });

  it('native is the default where the install step could build it', () => {
    const cc = spawnSync(process.env.CC || 'cc', ['--version']).status === 0;
    if (cc) assert.equal(backendNote(), null, 'a C compiler is here, so npm ci built the native backend');
    assert.equal(defaultBackend(), backendNote() === null ? 'native' : 'openssl');
    if (backendNote() !== null) assert.match(backendNote()!, /^native crypto backend unavailable \(.+\); using node:crypto \(openssl\)$/);
  });
});

function agree(n: XtsBackend, o: XtsBackend): void {
    for (let i = 0; i < 24; i++) {
      const key = randomBytes(32);
      const unit = randomBytes(4).readUInt32LE(0) * 4096 + (i % 3) * 0x1_0000_0000_000;
      const pt = dataBuf(Uint8Array.from(randomBytes(4096)));
      const a = dataBuf(new Uint8Array(4096));
      const b = dataBuf(new Uint8Array(4096));
      n.encrypt(n.importKey(key), pt, 0, a, 0, 4096, unit);
      o.encrypt(o.importKey(key), pt, 0, b, 0, 4096, unit);
      assert.deepEqual(a.u8, b.u8);
      assert.notDeepEqual(a.u8, pt.u8);
      // cross-decrypt
      n.decrypt(n.importKey(key), b, 0, b, 0, 4096, unit);
      o.decrypt(o.importKey(key), a, 0, a, 0, 4096, unit);
      assert.deepEqual(a.u8, pt.u8);
      assert.deepEqual(b.u8, pt.u8);
    }
}

describe('every backend', () => {
  it('works in place at an offset inside a larger buffer', () => {
    for (const name of availableBackends()) {
      const be = getBackend(name);
      const k = be.importKey(Uint8Array.from(randomBytes(32)));
      const big = dataBuf(Uint8Array.from(randomBytes(3 * 4096)));
      const copy = big.u8.slice();
      be.encrypt(k, big, 4096, big, 4096, 4096, 4096);
      assert.deepEqual(big.u8.subarray(0, 4096), copy.subarray(0, 4096));
      assert.deepEqual(big.u8.subarray(8192), copy.subarray(8192));
      assert.notDeepEqual(big.u8.subarray(4096, 8192), copy.subarray(4096, 8192));
      be.decrypt(k, big, 4096, big, 4096, 4096, 4096);
      assert.deepEqual(big.u8, copy);
    }
  });

  it('rejects bad input naming the argument', () => {
    for (const name of availableBackends()) {
      const be = getBackend(name);
      assert.throws(() => be.importKey(new Uint8Array(16)), /key: XTS-AES-128 needs 32 bytes/);
      const k = be.importKey(Uint8Array.from(randomBytes(32)));
      const b = dataBuf(new Uint8Array(4096));
      assert.throws(() => be.encrypt(k, b, 8, b, 8, 4080, 0), /srcOff: expected a non-negative multiple of 16/);
      assert.throws(() => be.encrypt(k, b, 0, b, 0, 100, 0), /len: expected a positive multiple of 16/);
      assert.throws(() => be.encrypt(k, b, 0, b, 16, 4096, 0), /dstOff: 16\+4096 runs past the buffer/);
      assert.throws(() => be.encrypt(k, b, 0, b, 0, 4096, -1), /unit: expected a non-negative safe integer/);
    }
    assert.throws(() => getBackend('aesni'), /backend: unknown crypto backend 'aesni'/);
    assert.throws(() => dataBuf(new Uint8Array(new ArrayBuffer(12), 2, 8)), /buf: byteOffset/);
  });

  it('never prints key material', () => {
    const key = Uint8Array.from(randomBytes(32));
    const khex = Buffer.from(key).toString('hex');
    for (const name of availableBackends()) {
      const k = getBackend(name).importKey(key);
      const shown = inspect(k, { depth: 10, showHidden: false }) + JSON.stringify(k);
      assert.ok(!shown.includes(khex.slice(0, 8)), shown);
      assert.match(shown, /XtsKey/);
    }
  });
});
