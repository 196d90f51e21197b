// fallocate(2)'s VFS checks in vfs_fallocate's order (fs/open.c, linux-6.18.2),
// before a file's own f_op->fallocate; and long-term pin counts
// (pin_user_pages with FOLL_LONGTERM) in the page allocator.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, OpenFile, type FileOps, type Task } from '../../kernel/kernel.js';
import { PG_ALLOCATED, PG_UNEVICTABLE, PG_UNMOVABLE } from '../../kernel/page_alloc.js';
import { NR } from '../../kernel/syscalls.js';

const P = 4096;
const KEEP = 0x01, PUNCH = 0x02, COLLAPSE = 0x08, ZERO = 0x10, INSERT = 0x20, UNSHARE = 0x40, WRITE_ZEROES = 0x80;

function kernel(): Kernel {
  const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [32] }, nrCpus: 1 });
  return new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 128 });
}

/** A file whose filesystem has fallocate: it records what reached it. */
function fileWithFallocate(k: Kernel, t: Task, writable = true): { fd: number; calls: number[][] } {
  const calls: number[][] = [];
  const ops: FileOps = {
    mmap: () => 0,
    fault: () => -E.EFAULT,
    fallocate(_k, _f, mode, off, len) {
      calls.push([mode, off, len]);
      return 0;
    },
    release() {},
  };
  return { fd: t.installFd(new OpenFile(k, '/data', '08:01', k.newIno(), ops, writable)), calls };
}

describe('fallocate: the VFS checks, in order, before the file system', () => {
  it('EBADF for no file; EINVAL for offset < 0 or len <= 0, even before the mode', () => {
    const k = kernel();
    const t = k.spawn();
    const { fd, calls } = fileWithFallocate(k, t);
    const fa = (mode: number, off: number, len: number, f = fd) => k.syscall(t, NR.fallocate, f, mode, off, len);
    assert.equal(fa(0, 0, P, 99), -E.EBADF);
    assert.equal(fa(0, -1, P), -E.EINVAL);
    assert.equal(fa(0, 0, 0), -E.EINVAL);
    assert.equal(fa(0, 0, -P), -E.EINVAL);
    assert.equal(fa(0x100, 0, 0), -E.EINVAL, 'the range first, then the mode');
    assert.deepEqual(calls, []);
  });

  it('EOPNOTSUPP for unknown bits, PUNCH_HOLE without KEEP_SIZE, KEEP_SIZE with COLLAPSE/INSERT/WRITE_ZEROES, two modes at once', () => {
    const k = kernel();
    const t = k.spawn();
    const { fd, calls } = fileWithFallocate(k, t);
    const fa = (mode: number) => k.syscall(t, NR.fallocate, fd, mode, 0, P);
    for (const mode of [0x100, PUNCH, COLLAPSE | KEEP, INSERT | KEEP, WRITE_ZEROES | KEEP, PUNCH | ZERO | KEEP, COLLAPSE | INSERT])
      assert.equal(fa(mode), -E.EOPNOTSUPP, `mode ${mode.toString(16)}`);
    assert.deepEqual(calls, []);
    // every mode the VFS lets through reaches the file system as it was given
    for (const mode of [0, KEEP, PUNCH | KEEP, ZERO, ZERO | KEEP, UNSHARE, COLLAPSE, INSERT, WRITE_ZEROES]) assert.equal(fa(mode), 0, `mode ${mode}`);
    assert.deepEqual(
      calls.map((c) => c[0]),
      [0, KEEP, PUNCH | KEEP, ZERO, ZERO | KEEP, UNSHARE, COLLAPSE, INSERT, WRITE_ZEROES],
    );
    assert.deepEqual(calls[0], [0, 0, P]);
  });

  it('then EBADF for a file not open for writing, EFBIG past the largest file, EOPNOTSUPP without f_op->fallocate', () => {
    const k = kernel();
    getDesign('memfd-secret').install(k);
    const t = k.spawn();
    const ro = fileWithFallocate(k, t, false);
    assert.equal(k.syscall(t, NR.fallocate, ro.fd, 0x100, 0, P), -E.EOPNOTSUPP, 'the mode before the file mode');
    assert.equal(k.syscall(t, NR.fallocate, ro.fd, 0, 0, P), -E.EBADF);
    const rw = fileWithFallocate(k, t);
    assert.equal(k.syscall(t, NR.fallocate, rw.fd, 0, 2 ** 62, 2 ** 62), -E.EFBIG);
    assert.equal(k.syscall(t, NR.fallocate, rw.fd, 0, 2 ** 62, 2 ** 61), 0);
    const sec = k.syscall(t, NR.memfd_secret, 0);
    assert.equal(k.syscall(t, NR.fallocate, sec, 0, 0, P), -E.EOPNOTSUPP);
    assert.deepEqual(ro.calls, []);
  });
});

describe('long-term pins', () => {
  it('count per frame: the frame stays unevictable and unmovable until its last unpin', () => {
    const k = kernel();
    const pfn = k.alloc.alloc(0);
    k.alloc.flags[pfn] = PG_ALLOCATED;
    k.alloc.pinLongterm(pfn);
    k.alloc.pinLongterm(pfn);
    assert.equal(k.alloc.longtermPins(pfn), 2);
    assert.equal(k.alloc.nrPinned, 1, 'one frame, pinned twice');
    k.alloc.unpinLongterm(pfn);
    assert.equal(k.alloc.longtermPins(pfn), 1);
    assert.equal(k.alloc.flags[pfn] & (PG_UNEVICTABLE | PG_UNMOVABLE), PG_UNEVICTABLE | PG_UNMOVABLE);
    k.alloc.unpinLongterm(pfn);
    assert.equal(k.alloc.longtermPins(pfn), 0);
    assert.equal(k.alloc.flags[pfn] & (PG_UNEVICTABLE | PG_UNMOVABLE), 0);
    assert.equal(k.alloc.nrPinned, 0);
  });

  it('an unpin gives back only what the pin added: a frame unevictable before (mlocked) stays so', () => {
    const k = kernel();
    const pfn = k.alloc.alloc(0);
    k.alloc.flags[pfn] = PG_ALLOCATED;
    k.alloc.pin(pfn, false); // mlock: unevictable, still movable
    k.alloc.pinLongterm(pfn);
    assert.equal(k.alloc.nrPinned, 1);
    k.alloc.unpinLongterm(pfn);
    assert.equal(k.alloc.flags[pfn] & (PG_UNEVICTABLE | PG_UNMOVABLE), PG_UNEVICTABLE);
    assert.equal(k.alloc.nrPinned, 1);
  });

  it('a freed frame has no pins left, and an unpin of it changes nothing', () => {
    const k = kernel();
    const pfn = k.alloc.alloc(0);
    k.alloc.flags[pfn] = PG_ALLOCATED;
    k.alloc.pinLongterm(pfn);
    k.alloc.release(pfn);
    assert.equal(k.alloc.nrPinned, 0);
    assert.equal(k.alloc.longtermPins(pfn), 0);
    k.alloc.unpinLongterm(pfn);
    assert.equal(k.alloc.nrPinned, 0);
    assert.equal(k.alloc.flags[pfn], 0);
  });
});
