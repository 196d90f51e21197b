// Syscall arguments as 64-bit registers (kernel/regs.ts) and what the mm
// calls make of values a JavaScript double cannot hold, without gcc: the
// differential test (replay-linux.test.ts) checks the same against Linux.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E } from '../../kernel/errno.js';
import { STACK_GUARD_GAP } from '../../kernel/mmap.js';
import { REG_INDEFINITE, U64_MAX, addReg, pageAlignReg, regInt, regUint, toReg } from '../../kernel/regs.js';
import { NR } from '../../kernel/syscalls.js';
import { type FileOps, OpenFile } from '../../kernel/kernel.js';
import { allocFilePage, freeFilePages } from '../../kernel/memory.js';
import type { RegArg } from '../../kernel/regs.js';
import {
  MADV_DONTNEED,
  MADV_HWPOISON,
  MADV_SOFT_OFFLINE,
  MAP_ANONYMOUS,
  MAP_DROPPABLE,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  PROT_READ,
  PROT_WRITE,
} from '../../kernel/uapi.js';
import { BASE, PAGE, boot } from './util.js';

describe('registers', () => {
  it('toReg: integers mod 2^64, fractions truncated, the rest the integer indefinite', () => {
    assert.equal(toReg(-1), U64_MAX);
    assert.equal(toReg(-1n), U64_MAX);
    assert.equal(toReg(2n ** 64n + 5n), 5n);
    assert.equal(toReg(4096.9), 4096n);
    assert.equal(toReg(-0.5), 0n);
    assert.equal(toReg(2 ** 63), 2n ** 63n);
    for (const bad of [NaN, Infinity, -Infinity, 2 ** 64, 'x', [1]]) assert.equal(toReg(bad), REG_INDEFINITE, String(bad));
  });

  it('int and unsigned int parameters take the low 32 bits', () => {
    assert.equal(regInt(0x1_0000_0004n), 4);
    assert.equal(regInt(0xffff_ffffn), -1);
    assert.equal(regInt(0x8000_0000n), -(2 ** 31));
    assert.equal(regUint(U64_MAX), 0xffff_ffff);
  });

  it('PAGE_ALIGN and addition wrap as u64 does', () => {
    assert.equal(pageAlignReg(U64_MAX - 4094n), 0n);
    assert.equal(pageAlignReg(U64_MAX - 4095n), U64_MAX - 4095n);
    assert.equal(addReg(U64_MAX, 2n), 1n);
  });
});

describe('mm calls on 64-bit values', () => {
  it('mmap: -1 and 0xffffffffffffffff are one value; a fixed address in the last 4095 is an errno; len wraps to ENOMEM', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
    assert.equal(k.syscall(t, NR.mmap, -1, PAGE, PROT_READ, fl, -1, 0), -E.EPERM);
    assert.equal(k.syscall(t, NR.mmap, U64_MAX, PAGE, PROT_READ, fl, -1, 0), -E.EPERM);
    assert.equal(k.syscall(t, NR.mmap, U64_MAX - 21n, PAGE, PROT_READ, fl, -1, 0), -E.EINVAL);
    assert.equal(k.syscall(t, NR.mmap, -4096, PAGE, PROT_READ, fl, -1, 0), -E.ENOMEM);
    assert.equal(k.syscall(t, NR.mmap, BASE, -1, PROT_READ, fl, -1, 0), -E.ENOMEM);
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, PROT_READ, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), -E.EINVAL);
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, PROT_READ, 2n ** 40n | BigInt(fl), -1, 0), BASE, 'bits above 31 ignored');
    assert.equal(k.syscall(t, NR.mmap, 0, PAGE, PROT_READ, fl, -1, 0), -E.EPERM, 'below mmap_min_addr');
    done();
  });

  it('munmap, mprotect, madvise: wrapping ranges fail before anything changes, each with its own errno', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, BASE, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    assert.equal(k.syscall(t, NR.munmap, BASE, -4096), -E.EINVAL);
    assert.equal(k.syscall(t, NR.mprotect, BASE, -4096, PROT_READ), -E.ENOMEM);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, 2n ** 32n | 1n), -E.EINVAL);
    assert.equal(k.syscall(t, NR.madvise, U64_MAX - 4095n, 2 * PAGE, 0), -E.EINVAL);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, 0x1_0000_0000n + BigInt(MADV_DONTNEED)), 0, 'advice is an int');
    assert.equal(t.mm.vmas.mapCount, 1);
    assert.equal(t.mm.vmas.vmas[0]!.flags & PROT_WRITE, PROT_WRITE, 'nothing changed');
    done();
  });

  it('files: MAP_SHARED_VALIDATE refuses unknown bits (any of 64) with EOPNOTSUPP, MAP_SHARED drops them; fd is an unsigned int', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const ops: FileOps = { mmap: () => 0, fault: (k, file, _vma, pgoff, task) => file.pages.get(pgoff) ?? allocFilePage(k, file, pgoff, null, task.mm), release: (k, file) => freeFilePages(k, file) };
    const fd = t.installFd(new OpenFile(k, '/test/file', '00:05', 9, ops));
    const at = (flags: bigint, f: RegArg = fd) => k.syscall(t, NR.mmap, BASE, PAGE, PROT_READ, flags | BigInt(MAP_FIXED), f, 0);
    assert.equal(at(BigInt(MAP_SHARED_VALIDATE) | 2n ** 40n), -E.EOPNOTSUPP);
    assert.equal(at(BigInt(MAP_SHARED_VALIDATE | MAP_DROPPABLE)), -E.EINVAL, 'type 0xb: no such type');
    assert.equal(at(BigInt(MAP_SHARED_VALIDATE) | 0x200_0000n), -E.EOPNOTSUPP, 'a bit outside LEGACY_MAP_MASK');
    assert.equal(at(BigInt(MAP_SHARED) | 2n ** 40n), BASE);
    assert.equal(at(BigInt(MAP_SHARED), 2n ** 32n + BigInt(fd)), BASE, 'the high half of fd is dropped');
    assert.equal(at(BigInt(MAP_SHARED), -1), -E.EBADF);
    assert.equal(at(BigInt(MAP_PRIVATE | MAP_GROWSDOWN)), -E.EINVAL, 'no growing file mappings');
    done();
  });

  it('MADV_HWPOISON and MADV_SOFT_OFFLINE: EPERM without CAP_SYS_ADMIN, checked before the range', () => {
    const { k, done } = boot();
    const t = k.spawn({ caps: [] });
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_HWPOISON), -E.EPERM, 'nothing is mapped there');
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_SOFT_OFFLINE), -E.EPERM);
    assert.equal(k.syscall(t, NR.madvise, BASE, 0, MADV_HWPOISON), 0, 'len 0 comes first');
    const root = k.spawn();
    assert.equal(k.syscall(root, NR.madvise, BASE, PAGE, MADV_HWPOISON), -E.EFAULT, 'privileged: the page must be mapped');
    done();
  });

  it('a hint below a MAP_GROWSDOWN mapping keeps out of its guard gap', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const stack = BASE + 1024 * PAGE;
    assert.equal(k.syscall(t, NR.mmap, stack, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_GROWSDOWN, -1, 0), stack);
    const inGap = stack - STACK_GUARD_GAP;
    assert.notEqual(k.syscall(t, NR.mmap, inGap, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), inGap, 'the hint ends in the gap');
    const below = inGap - PAGE;
    assert.equal(k.syscall(t, NR.mmap, below, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), below, 'right below the gap');
    done();
  });
});
