// Syscall arguments as 64-bit registers (kernel/regs.ts) and what the mm
// calls make of values a JavaScript double cannot hold, without gcc: the
// differential test (replay-linux.test.ts) checks the same against Linux.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E } from '../../kernel/errno.js';
import { STACK_GUARD_GAP } from '../../kernel/mmap.js';
import { REG_INDEFINITE, U64_MAX, addReg, pageAlignReg, regInt, regUint, toReg } from '../../kernel/regs.js';
import { NR } from '../../kernel/syscalls.js';
import { MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_GROWSDOWN, MAP_PRIVATE, MAP_SHARED_VALIDATE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
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
