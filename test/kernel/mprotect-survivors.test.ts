// change_protection's PTE rules (kernel/mprotect.ts), which the quick
// mutation run of mprotect.js at 3cd9fa6 showed untested: which present
// pages get the write bit back when a range turns writable, and that the
// change stops at the range's end. PTE bits are read from the page tables.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { doMprotect } from '../../kernel/mprotect.js';
import { NR } from '../../kernel/syscalls.js';
import { PTE_PRESENT, PTE_WRITE } from '../../kernel/pgtable.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
import { BASE, PAGE, addKey, boot, read, touch } from './util.js';

const RW = PROT_READ | PROT_WRITE;

describe('mprotect: the write bit of present pages', () => {
  it('a written page gets PTE_WRITE back when its range turns writable again; a page only read keeps the zero-page rule and stays read-only', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, BASE, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    touch(k, t, BASE, 7); // written: dirty
    assert.equal(read(k, t, BASE + PAGE), 0); // only read: clean, read-only
    assert.equal(k.syscall(t, NR.mprotect, BASE, 2 * PAGE, PROT_READ), 0);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & PTE_WRITE, 0);
    assert.equal(k.syscall(t, NR.mprotect, BASE, 2 * PAGE, RW), 0);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT | PTE_WRITE, 'the written page is writable at once');
    assert.equal(k.pool.get(t.mm.pgd, BASE + PAGE) & PTE_WRITE, 0, 'the read-only page waits for its write fault');
    done();
  });

  it('encrypted anonymous memory has no zero page: a clean page there becomes writable too', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const key = addKey(k, t);
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, PROT_READ), 0);
    // move it to the key through the mprotect extension (encrypt_mprotect's path), then read the page in
    assert.equal(doMprotect(k, t, BASE, PAGE, PROT_READ, key), 0);
    assert.equal(read(k, t, BASE), 0);
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & PTE_WRITE, PTE_WRITE);
    done();
  });

  it('the change stops at the end of the range: the next page, in the next VMA, keeps its bits', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, BASE, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, PROT_READ), 0);
    assert.equal(k.pool.get(t.mm.pgd, BASE) & PTE_WRITE, 0);
    assert.equal(k.pool.get(t.mm.pgd, BASE + PAGE) & PTE_WRITE, PTE_WRITE, 'the page after the range is untouched');
    done();
  });
});
