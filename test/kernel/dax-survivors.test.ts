// Survivors of the quick mutation run in kernel/dax.ts: the KeyID switch of a
// DAX frame (flush the old alias once, record the new KeyID), the device
// number in /proc/pid/maps, and a fault past the end of the device.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asPfn } from '../../hardware/types.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { E } from '../../kernel/errno.js';
import type { OpenFile } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import { MAP_SHARED } from '../../kernel/uapi.js';
import { PAGE, boot } from './util.js';

const RW = 3;
const fill = (v: number) => new Uint8Array(PAGE).fill(v);

function mapDax(b: ReturnType<typeof boot>, pages: number) {
  const t = b.k.spawn();
  const fd = b.k.syscall(t, NR.openat, AT_FDCWD, DAX_PATH, 2);
  assert.ok(fd >= 3);
  const a = b.k.syscall(t, NR.mmap, 0, pages * PAGE, RW, MAP_SHARED, fd, 0);
  assert.ok(a > 0);
  return { t, fd, a, cpu: b.k.localCpu(t) };
}

describe('Device DAX', () => {
  it('a frame already under the KeyID is not flushed; a KeyID switch flushes it once and records the KeyID', () => {
    const b = boot({ daxFrames: 4 });
    const { k, m } = b;
    const { t, a, cpu } = mapDax(b, 2);
    const flushed = () => m.engine.counters.snapshot().clflush_lines;
    const f0 = flushed();
    assert.equal(cpu.store(a, fill(0x11)), 0);
    assert.equal(cpu.load(a + PAGE, fill(0)), 0);
    assert.equal(flushed() - f0, 0, 'KeyID 0 frames touched through KeyID 0: no flush');
    assert.equal(k.alloc.keyid[m.memory.daxStart], 0);
    const serial = k.syscall(t, NR.add_key, 'mktme', 'test', 'type=cpu algorithm=aes-xts-128');
    const key = k.keys.lookup(serial, t.creds) as MktmeKey;
    assert.equal(k.syscall(t, NR.munmap, a, 2 * PAGE), 0);
    const fd2 = k.syscall(t, NR.openat, AT_FDCWD, DAX_PATH, 2);
    const a2 = k.syscall(t, NR.mmap, 0, 2 * PAGE, RW, MAP_SHARED, fd2, 0);
    assert.equal(doMprotect(k, t, a2, 2 * PAGE, RW, key), 0);
    const f1 = flushed();
    assert.equal(cpu.store(a2, fill(0x22)), 0);
    assert.equal(flushed() - f1, 64, 'one page: its 64 lines');
    assert.equal(k.alloc.keyid[m.memory.daxStart], key.keyid);
    const raw = fill(0);
    m.engine.read(asPfn(m.memory.daxStart), 0, raw);
    assert.ok(!raw.every((x) => x === 0x22), 'stored through the key');
    const out = fill(0);
    assert.equal(cpu.load(a2, out), 0);
    assert.ok(out.every((x) => x === 0x22));
    assert.equal(flushed() - f1, 64, 'no second flush for the same KeyID');
    b.done();
  });

  it('shows the device number fc:00 and inode 1 in maps', () => {
    const b = boot({ daxFrames: 2 });
    const { t } = mapDax(b, 1);
    const line = t.mm.vmas.maps()[0];
    assert.match(line, / rw-s 00000000 fc:00 1 +\/dev\/dax0\.0$/);
    b.done();
  });

  it('a fault past the end of the device is SIGBUS (-EFAULT); the last page is its last frame', () => {
    const b = boot({ daxFrames: 3 });
    const { t, fd, a } = mapDax(b, 1);
    const f = t.files.get(fd) as OpenFile;
    const vma = t.mm.vmas.find(a)!;
    assert.equal(f.ops.fault(b.k, f, vma, 3, t), -E.EFAULT);
    assert.equal(f.ops.fault(b.k, f, vma, 4, t), -E.EFAULT);
    assert.equal(f.ops.fault(b.k, f, vma, 2, t), b.m.memory.daxStart + 2);
    b.done();
  });
});
