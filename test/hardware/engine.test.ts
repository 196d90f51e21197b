import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { Worker } from 'node:worker_threads';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { COST_MEANING, COST_NAMES, DEFAULT_COSTS, checkCostTable } from '../../hardware/costs.js';
import { PROFILE_NAMES, getProfile } from '../../hardware/profiles.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';
import { availableBackends } from '../../hardware/xts.js';

const page = () => Uint8Array.from(randomBytes(PAGE_SIZE));
const mk = (backend: string, profile = 'mktme', daxFrames = 0, nrCpus = 1) =>
  Machine.create({ profile, backend, memory: { nodeFrames: [8, 8], daxFrames }, nrCpus });
const P = asPfn;

for (const backend of availableBackends()) {
  describe(`engine (${backend})`, () => {
    it('reads back what it wrote through the same KeyID, stores ciphertext', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      m.engine.write(P(3), 1, pt);
      const out = new Uint8Array(PAGE_SIZE);
      assert.equal(m.engine.read(P(3), 1, out), true);
      assert.deepEqual(out, pt);
      const stored = m.memory.buf.u8.subarray(3 * PAGE_SIZE, 4 * PAGE_SIZE);
      assert.notDeepEqual(stored, pt);
      const c = m.engine.counters.snapshot();
      assert.equal(c.pages_encrypted, 1);
      assert.equal(c.pages_decrypted, 1);
      assert.equal(c.crypto_bytes, 2 * PAGE_SIZE);
      assert.equal(c.key_programs, 1);
    });

    it('yields garbage through the wrong KeyID or KeyID 0', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      m.engine.write(P(0), 1, pt);
      const out = new Uint8Array(PAGE_SIZE);
      m.engine.read(P(0), 2, out);
      assert.notDeepEqual(out, pt);
      m.engine.read(P(0), 0, out);
      assert.notDeepEqual(out, pt);
      assert.deepEqual(out, m.memory.buf.u8.subarray(0, PAGE_SIZE)); // KeyID 0 sees the stored bytes
    });

    it('yields garbage for ciphertext moved to another frame without re-encryption', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      m.engine.write(P(1), 1, pt);
      m.engine.copyRaw(P(1), P(9));
      const out = new Uint8Array(PAGE_SIZE);
      m.engine.read(P(9), 1, out);
      assert.notDeepEqual(out, pt);
      // the kernel's way: decrypt at the old address, encrypt at the new one
      m.engine.copy(P(1), 1, P(10), 1);
      m.engine.read(P(10), 1, out);
      assert.deepEqual(out, pt);
    });

    it('copies a page through KeyIDs that do not encrypt frame to frame: the bytes, both frames cached under their KeyIDs, no crypto', () => {
      const m = mk(backend);
      m.engine.program(2, KeyProgram.NO_ENCRYPT);
      const pt = page();
      m.engine.write(P(3), 0, pt);
      m.engine.read(P(6), 1, new Uint8Array(PAGE_SIZE)); // frame 6 last cached under KeyID 1
      const before = m.engine.counters.snapshot();
      assert.equal(m.engine.copy(P(3), 0, P(6), 2), true);
      const u8 = m.memory.buf.u8;
      assert.deepEqual(u8.subarray(6 * PAGE_SIZE, 7 * PAGE_SIZE), pt);
      assert.deepEqual(u8.subarray(3 * PAGE_SIZE, 4 * PAGE_SIZE), pt, 'the source is left as it was');
      assert.deepEqual([m.engine.cachedAlias(P(3)), m.engine.cachedAlias(P(6))], [0, 2]);
      const after = m.engine.counters.snapshot();
      assert.deepEqual(
        [after.pages_encrypted, after.pages_decrypted, after.crypto_bytes, after.alias_conflicts],
        [before.pages_encrypted, before.pages_decrypted, before.crypto_bytes, before.alias_conflicts + 1],
        'no crypto; the destination changed alias',
      );
    });

    it('copies between a KeyID that encrypts and one that does not through the keyed alias: plaintext out, ciphertext in', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      const out = new Uint8Array(PAGE_SIZE);
      const u8 = m.memory.buf.u8;
      m.engine.write(P(1), 1, pt);
      assert.equal(m.engine.copy(P(1), 1, P(7), 0), true);
      assert.deepEqual(u8.subarray(7 * PAGE_SIZE, 8 * PAGE_SIZE), pt, 'decrypted on the way out');
      assert.equal(m.engine.copy(P(7), 0, P(4), 1), true);
      assert.notDeepEqual(u8.subarray(4 * PAGE_SIZE, 5 * PAGE_SIZE), pt, 'encrypted on the way in');
      m.engine.read(P(4), 1, out);
      assert.deepEqual(out, pt);
    });

    it('on hardware with integrity, a plain copy still checks the source owner', () => {
      const m = mk(backend, 'tdx');
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      m.engine.write(P(2), 1, page()); // owned by KeyID 1
      assert.equal(m.engine.copy(P(2), 0, P(5), 0), false, 'KeyID 0 reading a KeyID-1 frame: poison');
      assert.deepEqual(m.memory.buf.u8.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE), new Uint8Array(PAGE_SIZE), 'zeros went in');
    });

    it('gives the same plaintext different ciphertext at different addresses', () => {
      const m = mk(backend);
      m.engine.program(5, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      m.engine.write(P(2), 5, pt);
      m.engine.write(P(4), 5, pt);
      const u8 = m.memory.buf.u8;
      assert.notDeepEqual(u8.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE), u8.subarray(4 * PAGE_SIZE, 5 * PAGE_SIZE));
    });

    it('does part-page writes as read-modify-write and zeroes through an alias', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      m.engine.write(P(0), 1, pt);
      m.engine.write(P(0), 1, Uint8Array.of(1, 2, 3), 0, 100, 3);
      pt.set([1, 2, 3], 100);
      const out = new Uint8Array(PAGE_SIZE);
      m.engine.read(P(0), 1, out);
      assert.deepEqual(out, pt);
      const part = new Uint8Array(10);
      m.engine.read(P(0), 1, part, 2, 99, 5);
      assert.deepEqual([...part.subarray(2, 7)], [pt[99], 1, 2, 3, pt[103]]);
      m.engine.zero(P(0), 1);
      m.engine.read(P(0), 1, out);
      assert.ok(out.every((b) => b === 0));
      assert.ok(!m.memory.buf.u8.subarray(0, PAGE_SIZE).every((b) => b === 0)); // zeros, encrypted
    });

    it('CLEAR_KEY makes the alias platform-like and NO_ENCRYPT stores plaintext', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      const pt = page();
      m.engine.write(P(0), 1, pt);
      m.engine.program(1, KeyProgram.CLEAR_KEY);
      assert.equal(m.engine.isProgrammed(1), false);
      const out = new Uint8Array(PAGE_SIZE);
      m.engine.read(P(0), 1, out);
      assert.notDeepEqual(out, pt);
      m.engine.program(2, KeyProgram.NO_ENCRYPT);
      m.engine.write(P(1), 2, pt);
      assert.deepEqual(m.memory.buf.u8.subarray(PAGE_SIZE, 2 * PAGE_SIZE), pt);
    });

    it('counts alias conflicts unless the kernel flushes, and clflush lines', () => {
      const m = mk(backend);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      m.engine.zero(P(0), 0);
      m.engine.zero(P(0), 1); // KeyID 0 lines still cached: a bug the counter shows
      assert.equal(m.engine.counters.get('alias_conflicts'), 1);
      m.engine.flush(P(0));
      assert.equal(m.engine.cachedAlias(P(0)), -1);
      m.engine.zero(P(0), 0);
      assert.equal(m.engine.counters.get('alias_conflicts'), 1);
      assert.equal(m.engine.counters.get('clflush_lines'), 64);
      // the same KeyID again changes nothing; another one is a conflict, and is then the cached one
      m.engine.zero(P(0), 0);
      assert.deepEqual([m.engine.counters.get('alias_conflicts'), m.engine.cachedAlias(P(0))], [1, 0]);
      m.engine.zero(P(0), 1);
      assert.deepEqual([m.engine.counters.get('alias_conflicts'), m.engine.cachedAlias(P(0))], [2, 1]);
      m.engine.zero(P(0), 1);
      assert.deepEqual([m.engine.counters.get('alias_conflicts'), m.engine.cachedAlias(P(0))], [2, 1]);
      // KeyID 0's lines, then KeyID 2 (two apart, in case the check looked at the wrong neighbour)
      m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
      m.engine.zero(P(0), 0);
      m.engine.zero(P(0), 2);
      assert.deepEqual([m.engine.counters.get('alias_conflicts'), m.engine.cachedAlias(P(0))], [4, 2]);
    });

    it('DAX contents persist encrypted across power-off and power-on', () => {
      const dir = mkdtempSync(join(tmpdir(), 'memcrypt-dax-'));
      try {
        const path = join(dir, 'dax.img');
        const m = mk(backend, 'mktme', 4);
        const key = Uint8Array.from(randomBytes(32));
        m.engine.program(3, KeyProgram.SET_KEY_DIRECT, key);
        const pt = page();
        const f = P(m.memory.daxStart + 2);
        assert.equal(m.memory.isDax(f), true);
        m.engine.write(f, 3, pt);
        m.powerOff(path);
        const img = readFileSync(path);
        assert.equal(img.length, 4 * PAGE_SIZE);
        assert.ok(!img.includes(Buffer.from(pt.subarray(0, 64))), 'plaintext reached the DAX file');
        assert.ok(m.memory.daxBytes().every((b) => b === 0));
        assert.equal(m.engine.isProgrammed(3), false);
        assert.equal(m.powerOn(path), true);
        const out = new Uint8Array(PAGE_SIZE);
        m.engine.read(f, 3, out);
        assert.notDeepEqual(out, pt); // the key did not survive the power cycle
        m.engine.program(3, KeyProgram.SET_KEY_DIRECT, key);
        m.engine.read(f, 3, out);
        assert.deepEqual(out, pt);
        assert.equal(m.powerOn(join(dir, 'absent.img')), false);
        assert.throws(() => mk(backend, 'mktme', 2).powerOn(path), /dax: .* holds 16384 bytes, the region has 8192/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('engine: profiles, integrity and errors', () => {
  it('MAC hardware (tdx) faults a read through a KeyID that does not own the lines', () => {
    const m = mk('openssl', 'tdx');
    m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
    m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
    m.engine.write(P(0), 1, page());
    const out = page();
    assert.equal(m.engine.read(P(0), 2, out), false);
    assert.ok(out.every((b) => b === 0));
    assert.equal(m.engine.counters.get('integrity_faults'), 1);
  });

  it('profiles are data with the fields the kernel needs', () => {
    assert.deepEqual([...PROFILE_NAMES].sort(), ['mktme', 'none', 'sev', 'sgx', 'tdx']);
    assert.equal(getProfile('mktme').nrKeyids, 63);
    assert.equal(getProfile('sev').kernelCanReadEncrypted, false);
    assert.equal(getProfile('sev').swap, 'pinned');
    assert.equal(getProfile('sgx').swap, 'ewb-eldu');
    assert.equal(getProfile('tdx').integrity, 'mac');
  });

  it('the default cost table: every entry a number >= 0 with its provenance and source', () => {
    assert.equal(checkCostTable(DEFAULT_COSTS as unknown as Record<string, unknown>), null);
    assert.deepEqual(Object.keys(DEFAULT_COSTS), [...COST_NAMES]);
    for (const n of COST_NAMES) assert.ok(COST_MEANING[n].length <= 28, n);
    assert.equal(checkCostTable({ ...DEFAULT_COSTS, fault: { ns: NaN, provenance: 'measured', source: 'x' } }), 'fault.ns: expected a number >= 0');
    assert.equal(checkCostTable({ ...DEFAULT_COSTS, pconfig: { ns: 1, provenance: 'guess', source: 'x' } }), "pconfig.provenance: expected 'measured' or 'literature'");
    const { zap_page: _, ...short } = DEFAULT_COSTS;
    assert.equal(checkCostTable(short), 'zap_page: missing');
  });

  it('rejects bad arguments with errors naming them', () => {
    assert.throws(() => mk('openssl', 'mktme-v2'), /hardware: unknown profile 'mktme-v2'/);
    assert.throws(() => mk('gcm'), /backend: unknown crypto backend 'gcm'/);
    assert.throws(() => Machine.create({ profile: 'none', backend: 'noble', memory: { nodeFrames: [1.5] }, nrCpus: 1 }), /nodeFrames\[0\]/);
    const m = mk('openssl');
    assert.throws(() => m.engine.program(0, KeyProgram.SET_KEY_RANDOM), /keyid: KeyID 0/);
    assert.throws(() => m.engine.program(64, KeyProgram.SET_KEY_RANDOM), /keyid: expected an integer in \[0, 63\]/);
    assert.throws(() => m.engine.program(1, KeyProgram.SET_KEY_DIRECT, new Uint8Array(16)), /key: SET_KEY_DIRECT needs 32 bytes/);
    assert.throws(() => m.engine.program(1, KeyProgram.SET_KEY_DIRECT, new Uint8Array(32)), /key: the two XTS key halves are equal/);
    assert.throws(() => m.engine.write(P(16), 0, page()), /pfn: expected an integer in \[0, 15\]/);
    assert.throws(() => m.engine.write(P(1.5), 0, page()), /pfn/);
    assert.throws(() => m.engine.write(P(0), 0, page(), 0, 4000, 200), /len: expected an integer in \[0, 96\]/);
    assert.throws(() => mk('openssl', 'none').engine.program(1, KeyProgram.SET_KEY_RANDOM), /keyid: profile 'none' has no KeyIDs/);
    assert.throws(() => Machine.attach(m.descriptor(), 1), /cpu: expected an integer in \[0, 0\]/);
  });

  it('never shows key material in inspect or JSON output', () => {
    const m = mk('openssl');
    const key = Uint8Array.from(randomBytes(32));
    m.engine.program(1, KeyProgram.SET_KEY_DIRECT, key);
    m.engine.read(P(0), 1, new Uint8Array(PAGE_SIZE)); // imports the key into the CPU's cache
    const khex = Buffer.from(key).toString('hex').slice(0, 12);
    const shown = [inspect(m, { depth: 20 }), inspect(m.engine, { depth: 20, showHidden: true }), inspect(m.descriptor(), { depth: 20 }), JSON.stringify(m.descriptor())];
    for (const s of shown) assert.ok(!s.replace(/[\s,]/g, '').includes(khex), s.slice(0, 200));
  });

  it('is shared with worker threads: a worker CPU writes, CPU 0 reads, counters add up', async () => {
    const m = mk('openssl', 'mktme', 0, 2);
    m.engine.program(7, KeyProgram.SET_KEY_RANDOM);
    const w = new Worker(new URL('./engine-worker.js', import.meta.url), { workerData: m.descriptor() });
    const [seed] = (await new Promise((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
    })) as [number];
    await w.terminate();
    const out = new Uint8Array(PAGE_SIZE);
    m.engine.read(P(5), 7, out);
    assert.ok(out.every((b) => b === seed));
    const c = m.engine.counters.snapshot();
    assert.equal(c.pages_encrypted, 1);
    assert.equal(c.pages_decrypted, 1);
  });
});
