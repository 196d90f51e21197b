// The hardware layer's contracts at its edges: bad arguments are refused
// naming the argument, key material never prints, the profiles say what
// MODEL-FACTS.md says, and the DAX region's power cycle leaks neither keys
// nor file descriptors.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { COST_MEANING, COST_NAMES, DEFAULT_COSTS, checkCostTable } from '../../hardware/costs.js';
import { PerCpuCounters, rowStride } from '../../hardware/counters.js';
import { KeyProgram, type KeyProgramCmd } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { PhysicalMemory } from '../../hardware/memory.js';
import { PROFILE_NAMES, getProfile } from '../../hardware/profiles.js';
import { PAGE_SIZE, asPfn, checkUint } from '../../hardware/types.js';
import { checkBackendName, checkKey, checkUnit, dataBuf, getBackend, redact } from '../../hardware/xts.js';

const dir = mkdtempSync(join(tmpdir(), 'memcrypt-hwc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const buf = (n: number) => dataBuf(new Uint8Array(n));

describe('backend argument checks', () => {
  it('dataBuf wants 4-aligned views', () => {
    const ab = new ArrayBuffer(64);
    assert.throws(() => dataBuf(new Uint8Array(ab, 2, 32)), /buf: byteOffset and length must be multiples of 4/);
    assert.throws(() => dataBuf(new Uint8Array(ab, 0, 30)), /multiples of 4/);
    assert.equal(dataBuf(new Uint8Array(ab, 4, 32)).u32.length, 8);
  });

  it('keys: a Uint8Array of 32 bytes; backend names known', () => {
    assert.throws(() => checkKey([1, 2] as unknown as Uint8Array), (e: Error) => e instanceof TypeError && e.message === 'key: expected a Uint8Array');
    assert.throws(() => checkKey(new Uint8Array(16)), /key: XTS-AES-128 needs 32 bytes \(Key1 \|\| Key2\), got 16/);
    assert.throws(() => checkBackendName('aesni'), /^RangeError: backend: unknown crypto backend 'aesni' \(expected one of: /);
    for (const name of ['openssl', 'noble'] as const) assert.equal(getBackend(name).importKey(Uint8Array.from({ length: 32 }, (_, i) => i)).backend, name);
  });

  it('data units: len a positive multiple of 16, offsets non-negative multiples of 16 inside the buffers', () => {
    const b = buf(4096);
    for (const len of [0, 8, 15, 17, 4.5, NaN]) assert.throws(() => checkUnit(b, 0, b, 0, len, 0), /^RangeError: len: expected a positive multiple of 16, got /, String(len));
    for (const off of [-16, 8, 1.5]) {
      assert.throws(() => checkUnit(b, off, b, 0, 16, 0), /^RangeError: srcOff: expected a non-negative multiple of 16, got /, String(off));
      assert.throws(() => checkUnit(b, 0, b, off, 16, 0), /^RangeError: dstOff: expected a non-negative multiple of 16/, String(off));
    }
    assert.throws(() => checkUnit(b, 4096 - 16, b, 0, 32, 0), /srcOff: 4080\+32 runs past the buffer \(4096 bytes\)/);
    assert.throws(() => checkUnit(b, 0, b, 0, 16, -1), /unit: expected a non-negative safe integer, got -1/);
    assert.doesNotThrow(() => checkUnit(b, 4080, b, 0, 16, 2 ** 40));
  });

  it('an object holding a key prints as its label, in inspect and in JSON, and hides how', () => {
    const o = redact({ secret: 'k' }, '[label]');
    assert.equal(inspect(o), '[label]');
    assert.equal(JSON.stringify({ o }), '{"o":"[label]"}');
    assert.deepEqual(Object.keys(o), ['secret']);
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [4] }, nrCpus: 2 });
    assert.equal(inspect(m.engine), 'MemoryEncryptionEngine<mktme, openssl, cpu 0>');
    assert.equal(inspect(m.engine.descriptor()), '[EngineDescriptor]');
  });
});

describe('checkUint', () => {
  it('non-negative safe integers up to max, naming the argument', () => {
    for (const bad of [-1, 1.5, '3', NaN, 2 ** 53, 11]) assert.throws(() => checkUint('x', bad, 10), new RegExp(`^RangeError: x: expected an integer in \\[0, 10\\], got ${String(bad).replace('.', '\\.')}$`));
    assert.equal(checkUint('x', 10, 10), 10);
    assert.equal(checkUint('x', 0, 10), 0);
  });
});

describe('cost table checks', () => {
  const bad = (name: string, entry: unknown) => checkCostTable({ ...DEFAULT_COSTS, [name]: entry });
  it('each entry an object with ns >= 0, a provenance and a source', () => {
    assert.equal(bad('fault', undefined), 'fault: missing');
    assert.equal(bad('fault', null), 'fault: missing');
    assert.equal(bad('fault', 7), 'fault: missing');
    assert.equal(bad('enosys', { ns: '80', provenance: 'literature', source: 'x' }), 'enosys.ns: expected a number >= 0');
    assert.equal(bad('enosys', { ns: Infinity, provenance: 'literature', source: 'x' }), 'enosys.ns: expected a number >= 0');
    assert.equal(bad('enosys', { ns: -0.5, provenance: 'literature', source: 'x' }), 'enosys.ns: expected a number >= 0');
    assert.equal(bad('enosys', { ns: 0, provenance: 'literature', source: 'x' }), null);
    assert.equal(bad('syscall', { ns: 1, provenance: 'literature', source: '' }), 'syscall.source: expected a non-empty string');
    assert.equal(bad('syscall', { ns: 1, provenance: 'literature', source: 5 }), 'syscall.source: expected a non-empty string');
    assert.equal(bad('syscall', { ns: 1, provenance: 'literature' }), 'syscall.source: expected a non-empty string');
  });

  it('every entry says what it is the cost of, and the host figures cite their source', () => {
    const meanings = COST_NAMES.map((n) => COST_MEANING[n]);
    assert.ok(meanings.every((m) => m.length >= 10), 'a meaning for every entry');
    assert.equal(new Set(meanings).size, COST_NAMES.length, 'no two entries mean the same');
    for (const n of ['syscall', 'enosys', 'fault', 'clflush_line', 'vma_split'] as const)
      assert.match(DEFAULT_COSTS[n].source, /MODEL-FACTS\.md, 2-vCPU AMD EPYC VM, Linux 6\.18, 2026-11-25/, n);
  });
});

describe('per-CPU counters', () => {
  it('names unique, at least one CPU, each CPU its own row', () => {
    assert.throws(() => PerCpuCounters.create(['a', 'a'], 1), /counter names must be unique/);
    for (const n of [0, -1, 1.5]) assert.throws(() => PerCpuCounters.create(['a'], n), new RegExp(`nrCpus: expected >= 1, got ${n}`));
    const c = PerCpuCounters.create(['a', 'b'], 3);
    for (const cpu of [-1, 3, 1.5]) assert.throws(() => c.row(cpu), new RegExp(`^RangeError: cpu: expected an integer in \\[0, 2\\], got ${cpu}$`));
    c.row(2)[1] += 5;
    c.row(1)[0] += 2;
    c.row(0)[1] += 1;
    assert.deepEqual([...c.row(2)], [0, 5]);
    assert.deepEqual(c.snapshot(), { a: 2, b: 6 });
    c.reset();
    assert.deepEqual(c.snapshot(), { a: 0, b: 0 });
  });

  it('no two rows share a 64-byte line, wherever the 16-byte aligned buffer begins', () => {
    for (const names of [1, 2, 7, 8, 9, 25]) {
      const c = PerCpuCounters.create(Array.from({ length: names }, (_, i) => `c${i}`), 3);
      const rows = [0, 1, 2].map((cpu) => c.row(cpu));
      for (const r of rows) assert.equal(r.length, names);
      assert.equal(rows[1].byteOffset - rows[0].byteOffset, rowStride(names) * 8);
      assert.equal(rows[0].buffer.byteLength, 3 * rowStride(names) * 8);
      for (const base of [0, 16, 32, 48])
        for (let cpu = 0; cpu + 1 < rows.length; cpu++) {
          const lastLine = Math.floor((base + rows[cpu].byteOffset + names * 8 - 1) / 64);
          const nextLine = Math.floor((base + rows[cpu + 1].byteOffset) / 64);
          assert.ok(lastLine < nextLine, `${names} counters, base ${base}: rows ${cpu} and ${cpu + 1} share line ${lastLine}`);
        }
      // each row adds to its own counters only, the last CPU's too
      rows[2][names - 1] += 3;
      rows[0][0] += 1;
      assert.equal(c.get(`c${names - 1}`), 3 + (names === 1 ? 1 : 0));
      assert.equal(c.get('c0'), 1 + (names === 1 ? 3 : 0));
    }
    assert.deepEqual([1, 7, 8, 9, 25].map(rowStride), [16, 16, 16, 24, 40]);
  });
});

describe('engine edges', () => {
  const mk = (profile = 'mktme') => Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [8], daxFrames: 2 }, nrCpus: 2 });

  it('refuses unknown PCONFIG commands, KeyIDs past the table, offsets past the page', () => {
    const m = mk();
    assert.throws(() => m.engine.program(1, 9 as KeyProgramCmd), /^RangeError: cmd: unknown PCONFIG key program command 9$/);
    assert.throws(() => m.engine.read(asPfn(0), 64, new Uint8Array(PAGE_SIZE)), /^RangeError: keyid: expected an integer in \[0, 63\], got 64$/);
    assert.throws(() => m.engine.read(asPfn(0), 0, new Uint8Array(PAGE_SIZE), 0, 4097, 0), /^RangeError: pageOff: /);
    assert.throws(() => m.engine.copyRaw(asPfn(0), asPfn(10)), /^RangeError: dst: expected an integer in \[0, 9\], got 10$/);
    assert.throws(() => m.engine.copyRaw(asPfn(-1), asPfn(1)), /^RangeError: src: /);
    assert.equal(m.engine.isProgrammed(0), false);
  });

  it('copyRaw moves one frame as stored, nothing else', () => {
    const m = mk();
    const raw = m.memory.buf.u8;
    for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) & 0xff;
    const before = Uint8Array.from(raw);
    m.engine.copyRaw(asPfn(2), asPfn(5));
    assert.deepEqual(raw.subarray(5 * PAGE_SIZE, 6 * PAGE_SIZE), before.subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE));
    assert.deepEqual(raw.subarray(0, 5 * PAGE_SIZE), before.subarray(0, 5 * PAGE_SIZE));
    assert.deepEqual(raw.subarray(6 * PAGE_SIZE), before.subarray(6 * PAGE_SIZE));
  });

  it('without a MAC, a wrong KeyID reads garbage, not poison; with one, the owner reads its data', () => {
    const m = mk('mktme');
    m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
    m.engine.program(2, KeyProgram.SET_KEY_RANDOM);
    const pt = new Uint8Array(PAGE_SIZE).fill(0x33);
    m.engine.write(asPfn(1), 1, pt);
    const out = new Uint8Array(PAGE_SIZE);
    assert.equal(m.engine.read(asPfn(1), 2, out), true);
    assert.ok(out.some((x) => x !== 0) && out.some((x) => x !== 0x33));
    assert.equal(m.engine.counters.get('integrity_faults'), 0);
    const t = mk('tdx');
    t.engine.program(1, KeyProgram.SET_KEY_RANDOM);
    t.engine.write(asPfn(1), 1, pt);
    assert.equal(t.engine.read(asPfn(1), 1, out), true);
    assert.deepEqual(out, pt);
    assert.equal(t.engine.counters.get('integrity_faults'), 0);
  });

  it('a power cycle wipes the key slots themselves, not just their state', () => {
    const m = mk();
    const key = Uint8Array.from({ length: 32 }, (_, i) => 0x80 | i);
    for (let id = 1; id <= 63; id++) m.engine.program(id, KeyProgram.SET_KEY_DIRECT, key);
    const slots = new Uint8Array(m.engine.descriptor().keySab, 0, 64 * 32);
    assert.ok(slots.subarray(63 * 32).every((x, i) => x === key[i]));
    const img = join(dir, 'keys.img');
    m.powerOff(img);
    assert.ok(slots.every((x) => x === 0), 'key bytes left in the slots after power-off');
  });

  it('power cycles leave no file descriptor open', () => {
    const m = mk();
    const img = join(dir, 'fd.img');
    const fds = () => readdirSync('/proc/self/fd').length;
    m.powerOff(img);
    m.powerOn(img);
    const n = fds();
    for (let i = 0; i < 20; i++) {
      m.powerOff(img);
      m.powerOn(img);
    }
    assert.equal(fds(), n);
  });
});

describe('physical memory and machine checks', () => {
  it('node and DAX layout, and bad configurations named', () => {
    assert.throws(() => PhysicalMemory.create({ nodeFrames: [] }), /^RangeError: nodeFrames: expected a non-empty array of frame counts$/);
    assert.throws(() => PhysicalMemory.create({ nodeFrames: 4 as unknown as number[] }), /non-empty array/);
    assert.throws(() => PhysicalMemory.create({ nodeFrames: [0], daxFrames: 0 }), /^RangeError: nodeFrames: total frames must be in \[1, \d+\], got 0$/);
    assert.throws(() => PhysicalMemory.create({ nodeFrames: [1], daxFrames: -1 }), /^RangeError: daxFrames: /);
    const mem = PhysicalMemory.create({ nodeFrames: [2, 3], daxFrames: 2 });
    assert.deepEqual([0, 1, 2, 4, 5, 6].map((p) => mem.nodeOf(asPfn(p))), [0, 0, 1, 1, -1, -1]);
    assert.deepEqual([4, 5, 6, 7].map((p) => mem.isDax(asPfn(p))), [false, true, true, false]);
  });

  it('a CPU attaches only as one of the machine\'s CPUs', () => {
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [2] }, nrCpus: 3 });
    for (const cpu of [-1, 3, 1.5]) assert.throws(() => Machine.attach(m.descriptor(), cpu), new RegExp(`cpu: expected an integer in \\[0, 2\\], got ${cpu}`));
    assert.equal(Machine.attach(m.descriptor(), 2).cpu, 2);
    assert.equal(Machine.attach(m.descriptor(), 0).cpu, 0);
  });
});

describe('hardware profiles are the facts of MODEL-FACTS.md', () => {
  // kernel can read encrypted pages, swap, migrate, integrity, alias coherence
  const FACTS: Record<string, [boolean, string, string, string, boolean]> = {
    mktme: [true, 'reencrypt', 'reencrypt', 'none', false], // keyed direct maps; no integrity; flush on KeyID change
    sev: [false, 'pinned', 'firmware', 'none', false], // KVM pins; SEND/RECEIVE via the PSP only
    sgx: [false, 'ewb-eldu', 'pinned', 'mac', true], // EPC: EWB/ELDU; MEE integrity
    tdx: [false, 'pinned', 'pinned', 'mac', false], // MKTME + per-line MAC; private memory pinned
    none: [true, 'reencrypt', 'reencrypt', 'none', true],
  };
  for (const name of PROFILE_NAMES)
    it(name, () => {
      const p = getProfile(name);
      assert.deepEqual([p.kernelCanReadEncrypted, p.swap, p.migrate, p.integrity, p.aliasCoherent], FACTS[name]);
      assert.ok(p.description.length > 20);
    });
  it('an unknown profile is named', () => {
    assert.throws(() => getProfile('mktme2'), /^RangeError: hardware: unknown profile 'mktme2' \(expected one of: mktme, sev, sgx, tdx, none\)$/);
  });
});
