// Known answers for the engine as a whole, not just its backends: what lands
// in a frame must be AES-XTS-128 of the plaintext under the programmed key
// with the frame's physical address as the tweak (IEEE 1619 data unit number,
// little-endian), computed here independently with node:crypto. Also: a power
// cycle clears every KeyID, and a part-page write touches only its bytes.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { getProfile } from '../../hardware/profiles.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends } from '../../hardware/xts.js';

const dir = mkdtempSync(join(tmpdir(), 'memcrypt-kat-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The IEEE 1619 tweak of a data unit: its number, little-endian, in 16 bytes. */
function tweak(unit: number): Buffer {
  const t = Buffer.alloc(16);
  t.writeBigUInt64LE(BigInt(unit), 0);
  return t;
}
const xts = (key: Uint8Array, unit: number, data: Uint8Array): Buffer => createCipheriv('aes-128-xts', key, tweak(unit)).update(data);
const unxts = (key: Uint8Array, unit: number, data: Uint8Array): Buffer => createDecipheriv('aes-128-xts', key, tweak(unit)).update(data);

/** A 32-byte key whose halves differ (OpenSSL refuses equal halves). */
function key(): Uint8Array {
  const k = Uint8Array.from(randomBytes(32));
  k[16] = k[0] ^ 0xff;
  return k;
}

for (const backend of availableBackends())
  describe(`engine known answers (${backend})`, () => {
    const mk = () => Machine.create({ profile: 'mktme', backend, memory: { nodeFrames: [8, 8], daxFrames: 4 }, nrCpus: 1 });

    it('a frame holds XTS(key, tweak = its physical address) of what was written, on every node and in DAX', () => {
      const m = mk();
      const k = key();
      m.engine.program(7, KeyProgram.SET_KEY_DIRECT, k);
      // frame 0 of node 0, a frame of node 1, the first DAX frame, the last frame
      for (const pfn of [0, 3, 11, m.memory.daxStart, m.memory.nrFrames - 1]) {
        const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
        m.engine.write(asPfn(pfn), 7, pt);
        const stored = m.memory.buf.u8.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE);
        assert.deepEqual(Buffer.from(stored), xts(k, pfn * PAGE_SIZE, pt), `frame ${pfn}`);
        // and what was encrypted elsewhere for this address reads back through the engine
        const other = Uint8Array.from(randomBytes(PAGE_SIZE));
        m.memory.buf.u8.set(xts(k, pfn * PAGE_SIZE, other), pfn * PAGE_SIZE);
        const out = new Uint8Array(PAGE_SIZE);
        assert.equal(m.engine.read(asPfn(pfn), 7, out), true);
        assert.deepEqual(out, other, `frame ${pfn} read`);
      }
    });

    it('copy re-encrypts for the destination address', () => {
      const m = mk();
      const k = key();
      m.engine.program(1, KeyProgram.SET_KEY_DIRECT, k);
      const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
      m.engine.write(asPfn(2), 1, pt);
      assert.equal(m.engine.copy(asPfn(2), 1, asPfn(12), 1), true);
      assert.deepEqual(Buffer.from(m.memory.buf.u8.subarray(12 * PAGE_SIZE, 13 * PAGE_SIZE)), xts(k, 12 * PAGE_SIZE, pt));
      assert.deepEqual(unxts(k, 12 * PAGE_SIZE, m.memory.buf.u8.subarray(12 * PAGE_SIZE, 13 * PAGE_SIZE)), Buffer.from(pt));
    });

    it('a part-page write changes only its bytes, through a key and through KeyID 0', () => {
      const m = mk();
      const k = key();
      m.engine.program(3, KeyProgram.SET_KEY_DIRECT, k);
      for (const keyid of [3, 0]) {
        const a = Uint8Array.from(randomBytes(PAGE_SIZE));
        const b = Uint8Array.from(randomBytes(PAGE_SIZE));
        m.engine.write(asPfn(4), keyid, a);
        m.engine.write(asPfn(5), keyid, b);
        const patch = Uint8Array.from(randomBytes(300));
        // 96 bytes from offset 50 of patch land at page offset 4000, up to the page end
        m.engine.write(asPfn(4), keyid, patch, 50, 4000, 96);
        const want = Uint8Array.from(a);
        want.set(patch.subarray(50, 146), 4000);
        const out = new Uint8Array(PAGE_SIZE);
        m.engine.read(asPfn(4), keyid, out);
        assert.deepEqual(out, want, `keyid ${keyid}: frame 4`);
        m.engine.read(asPfn(5), keyid, out);
        assert.deepEqual(out, b, `keyid ${keyid}: frame 5 untouched`);
        // a part-page read returns just those bytes, where asked
        const part = new Uint8Array(200).fill(0xee);
        m.engine.read(asPfn(4), keyid, part, 10, 3980, 110);
        assert.deepEqual(part.subarray(10, 120), want.subarray(3980, 4090));
        assert.ok(part.subarray(0, 10).every((x) => x === 0xee) && part.subarray(120).every((x) => x === 0xee));
        if (keyid !== 0) {
          const stored = m.memory.buf.u8.subarray(4 * PAGE_SIZE, 5 * PAGE_SIZE);
          assert.deepEqual(Buffer.from(stored), xts(k, 4 * PAGE_SIZE, want));
        }
      }
    });

    it('a key from software: only where the profile says the hardware takes one', () => {
      for (const profile of ['mktme', 'sev', 'sgx', 'tdx']) {
        const m = Machine.create({ profile, backend, memory: { nodeFrames: [4] }, nrCpus: 1 });
        const set = () => m.engine.program(1, KeyProgram.SET_KEY_DIRECT, key());
        if (getProfile(profile).keyFromSoftware) set();
        else assert.throws(set, new RegExp(`^Error: engine: ${profile} takes no key from software$`));
        assert.equal(m.engine.isProgrammed(1), getProfile(profile).keyFromSoftware, profile);
        m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
        assert.equal(m.engine.isProgrammed(1), true, `${profile}: the CPU's own key`);
      }
    });

    for (const profile of ['mktme', 'tdx'])
      it(`${profile}: a power cycle clears every KeyID, the last one included`, () => {
        const n = getProfile(profile).nrKeyids;
        const m = Machine.create({ profile, backend, memory: { nodeFrames: [n + 1], daxFrames: 1 }, nrCpus: 1 });
        const keys: Uint8Array[] = [];
        for (let id = 1; id <= n; id++) {
          keys[id] = key();
          // (TDX takes no key from software: its KeyIDs get the CPU's own)
          if (getProfile(profile).keyFromSoftware) m.engine.program(id, KeyProgram.SET_KEY_DIRECT, keys[id]);
          else m.engine.program(id, KeyProgram.SET_KEY_RANDOM);
          m.engine.write(asPfn(id), id, new Uint8Array(PAGE_SIZE).fill(id));
          assert.equal(m.engine.isProgrammed(id), true);
        }
        const img = join(dir, `${profile}-${backend}.img`);
        m.powerOff(img);
        m.powerOn(img);
        const out = new Uint8Array(PAGE_SIZE);
        for (let id = 1; id <= n; id++) {
          assert.equal(m.engine.isProgrammed(id), false, `KeyID ${id} survived the power cycle`);
          // a cleared KeyID is the platform alias again: it reads the stored bytes as they are
          const pfn = id;
          m.engine.read(asPfn(pfn), id, out);
          assert.deepEqual(out, m.memory.buf.u8.subarray(pfn * PAGE_SIZE, (pfn + 1) * PAGE_SIZE), `KeyID ${id}`);
        }
      });
  });
