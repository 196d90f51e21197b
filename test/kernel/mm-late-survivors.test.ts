// Behaviour that the quick mutation run of main at 3676958 (mmap.js, vma.js,
// mprotect.js) showed untested: see test/mutation-review/kernel-final-mm.md.
// Expected answers are Linux 6.18's (mm/mmap.c, mm/vma.c, mm/mprotect.c,
// arch/x86/kernel/sys_x86_64.c); the MKTME KeyID rules are the model's
// (kernel/mprotect.ts). Where an answer was checked on this machine's real
// kernel (6.18) the test says so.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { type FileOps, type Kernel, OpenFile, type Task } from '../../kernel/kernel.js';
import { allocFilePage, freeFilePages } from '../../kernel/memory.js';
import { MMAP_LEGACY_BASE, STACK_GUARD_GAP } from '../../kernel/mmap.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PTE_DIRTY, PTE_PRESENT, PTE_WRITE } from '../../kernel/pgtable.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';
import {
  MADV_DOFORK,
  MADV_DONTFORK,
  MADV_DONTNEED,
  MADV_GUARD_INSTALL,
  MAP_ANONYMOUS,
  MAP_DROPPABLE,
  MAP_FIXED,
  MAP_GROWSDOWN,
  MAP_HUGETLB,
  MAP_LOCKED,
  MAP_NONBLOCK,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  MAP_SHARED_VALIDATE,
  MAP_SYNC,
  MMAP_BASE,
  MMAP_MIN_ADDR,
  PROT_EXEC,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  TASK_SIZE,
} from '../../kernel/uapi.js';
import { DEV_MKTME, MKTME_IOC_SET_KEY } from '../../interfaces/dev-mktme.js';
import { BASE, PAGE, addKey, boot, read, touch } from './util.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const FIXED = ANON | MAP_FIXED;
const HPAGE = 2 * 1024 * 1024;

const mmap = (k: Kernel, t: Task, addr: number, pages: number, prot: number, flags: number, fd = -1, off = 0) =>
  k.syscall(t, NR.mmap, addr, pages * PAGE, prot, flags, fd, off);
/** The VMAs as /proc/self/maps shows them: "start-end perms offset". */
const maps = (t: Task) => t.mm.vmas.maps().map((l) => l.split(' ').slice(0, 3).join(' '));
const span = (start: number, end: number) => `${start.toString(16).padStart(8, '0')}-${end.toString(16).padStart(8, '0')}`;
const spans = (t: Task) => maps(t).map((l) => l.split(' ')[0]);
const pte = (k: Kernel, t: Task, va: number) => k.pool.get(t.mm.pgd, va);

/** A plain page-cache file: every mmap is allowed. */
const fileOps: FileOps = {
  mmap: () => 0,
  fault: (k, file, _vma, pgoff, task) => file.pages.get(pgoff) ?? allocFilePage(k, file, pgoff, null, task.mm),
  release: (k, file) => freeFilePages(k, file),
};
/** A driver whose f_op->mmap refuses every mapping. */
const refusingOps: FileOps = { ...fileOps, mmap: () => -E.ENODEV };
const openTestFile = (k: Kernel, t: Task, ops = fileOps) => t.installFd(new OpenFile(k, '/test/file', '00:05', k.newIno(), ops));

describe('shared anonymous memory', () => {
  it('keeps its data when MADV_DONTNEED drops the PTE: the next fault finds the same page (as on this machine\'s Linux)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 1, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED), BASE);
    touch(k, t, BASE, 0x5a);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, MADV_DONTNEED), 0);
    assert.equal(pte(k, t, BASE), 0, 'the PTE is gone');
    assert.equal(read(k, t, BASE), 0x5a);
    done();
  });
});

describe('mmap: where a mapping without MAP_FIXED goes', () => {
  it('a hint whose range ends exactly at TASK_SIZE is taken; one that would cross it is ignored (as on this machine\'s Linux)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, TASK_SIZE - 2 * PAGE, 2, PROT_READ, ANON), TASK_SIZE - 2 * PAGE, 'no VMA above the hint');
    const t2 = k.spawn();
    assert.equal(mmap(k, t2, TASK_SIZE - PAGE, 2, PROT_READ, ANON), MMAP_BASE - 2 * PAGE, 'placed top-down instead');
    done();
  });

  it('a gap exactly as long as the mapping is used', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, MMAP_BASE - PAGE, 1, PROT_READ, FIXED), MMAP_BASE - PAGE);
    assert.equal(mmap(k, t, MMAP_BASE - 4 * PAGE, 1, PROT_READ, FIXED), MMAP_BASE - 4 * PAGE);
    assert.equal(mmap(k, t, 0, 2, PROT_READ, ANON), MMAP_BASE - 3 * PAGE, 'the two-page hole between them');
    done();
  });

  it('the top-down search keeps out of the guard gap of a MAP_GROWSDOWN VMA that starts at or just above MMAP_BASE', () => {
    // mm/vma.c unmapped_area_topdown: the gap found below mmap_base is cut
    // back to vm_start_gap() of the VMA after it, wherever that VMA starts
    const { k, done } = boot();
    const placed = (stackAt: number) => {
      const t = k.spawn();
      assert.equal(mmap(k, t, stackAt, 1, RW, FIXED | MAP_GROWSDOWN), stackAt);
      return mmap(k, t, 0, 1, PROT_READ, ANON);
    };
    assert.equal(placed(MMAP_BASE), MMAP_BASE - STACK_GUARD_GAP - PAGE);
    assert.equal(placed(MMAP_BASE + 16 * PAGE), MMAP_BASE + 16 * PAGE - STACK_GUARD_GAP - PAGE);
    assert.equal(placed(MMAP_BASE + STACK_GUARD_GAP), MMAP_BASE - PAGE, 'a guard gap ending at MMAP_BASE');
    done();
  });

  it('with no gap left below MMAP_BASE the search goes bottom-up: the lowest gap from TASK_SIZE / 3 up, clear of a stack guard gap', () => {
    // arch/x86/kernel/sys_x86_64.c arch_get_unmapped_area_topdown falls back
    // to arch_get_unmapped_area (mm/vma.c unmapped_area) from mmap_legacy_base
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(MMAP_LEGACY_BASE, 0x2aaa_aaaa_b000);
    assert.equal(k.syscall(t, NR.mmap, MMAP_MIN_ADDR, MMAP_BASE - MMAP_MIN_ADDR, PROT_NONE, FIXED, -1, 0), MMAP_MIN_ADDR);
    assert.equal(mmap(k, t, 0, 2, PROT_READ, ANON), MMAP_BASE);
    const stack = MMAP_BASE + 2 * PAGE + STACK_GUARD_GAP; // its guard gap fills the hole below it
    assert.equal(mmap(k, t, stack, 1, RW, FIXED | MAP_GROWSDOWN), stack);
    assert.equal(mmap(k, t, 0, 1, PROT_READ, ANON), stack + PAGE);
    done();
  });

  it('nothing is placed below vm.mmap_min_addr: with all above it mapped, ENOMEM; one free page at mmap_min_addr is found', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.mmapMinAddr, MMAP_MIN_ADDR);
    const all = TASK_SIZE - MMAP_MIN_ADDR;
    assert.equal(k.syscall(t, NR.mmap, MMAP_MIN_ADDR, all, PROT_NONE, FIXED, -1, 0), MMAP_MIN_ADDR);
    assert.equal(mmap(k, t, 0, 1, PROT_READ, ANON), -E.ENOMEM, 'the pages below mmap_min_addr are not used');
    assert.equal(k.syscall(t, NR.munmap, MMAP_MIN_ADDR, PAGE), 0);
    assert.equal(mmap(k, t, 0, 1, PROT_READ, ANON), MMAP_MIN_ADDR);
    done();
  });
});

describe('mmap: argument checks at the edges', () => {
  it('MAP_SHARED_VALIDATE maps a file when every flag is one it knows; MAP_SYNC it refuses (EOPNOTSUPP)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = openTestFile(k, t);
    assert.equal(mmap(k, t, BASE, 1, RW, MAP_SHARED_VALIDATE | MAP_FIXED, fd), BASE);
    assert.deepEqual(maps(t), [`${span(BASE, BASE + PAGE)} rw-s 00000000`]);
    assert.equal(mmap(k, t, BASE + 4 * PAGE, 1, RW, MAP_SHARED_VALIDATE | MAP_FIXED | MAP_SYNC, fd), -E.EOPNOTSUPP);
    done();
  });

  it('MAP_HUGETLB: a length of 0 is EINVAL; a failed MAP_FIXED mapping of one huge page takes away exactly that much of the old mappings', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, 0, 0, RW, ANON | MAP_HUGETLB, -1, 0), -E.EINVAL, 'as on this machine\'s Linux');
    const at = 0x4_0000_0000; // 2 MiB aligned
    assert.equal(k.syscall(t, NR.mmap, at, 2 * HPAGE, PROT_READ, FIXED, -1, 0), at);
    assert.equal(k.syscall(t, NR.mmap, at, HPAGE, RW, FIXED | MAP_HUGETLB, -1, 0), -E.ENOMEM, 'no huge page pool');
    assert.deepEqual(spans(t), [span(at + HPAGE, at + 2 * HPAGE)]);
    done();
  });

  it('MAP_FIXED of the whole address space at 0: EPERM (below mmap_min_addr without CAP_SYS_RAWIO), not ENOMEM', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, 0, TASK_SIZE, PROT_NONE, FIXED, -1, 0), -E.EPERM);
    done();
  });

  it('MAP_FIXED|MAP_HUGETLB at -1 is EINVAL (not huge-page aligned) where plain MAP_FIXED at -1 is EPERM (as on this machine\'s Linux)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, -1, PAGE, RW, FIXED | MAP_HUGETLB, -1, 0), -E.EINVAL);
    assert.equal(k.syscall(t, NR.mmap, -1, PAGE, RW, FIXED, -1, 0), -E.EPERM);
    done();
  });

  it('MAP_FIXED may end exactly at TASK_SIZE, and munmap of that last page works (as on this machine\'s Linux)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, TASK_SIZE - PAGE, 1, PROT_READ, FIXED), TASK_SIZE - PAGE);
    assert.equal(k.syscall(t, NR.munmap, TASK_SIZE - PAGE, PAGE), 0);
    assert.deepEqual(maps(t), []);
    assert.equal(k.syscall(t, NR.munmap, TASK_SIZE - PAGE, 2 * PAGE), -E.EINVAL, 'past TASK_SIZE');
    done();
  });

  it('anonymous MAP_HUGETLB is checked as a file mapping: MAP_SHARED_VALIDATE accepted, MAP_DROPPABLE and MAP_GROWSDOWN EINVAL (as on this machine\'s Linux)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const huge = (flags: number, prot = RW) => k.syscall(t, NR.mmap, 0, PAGE, prot, flags | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    assert.equal(huge(MAP_SHARED_VALIDATE), -E.ENOMEM, 'valid; then no huge page pool');
    assert.equal(huge(MAP_DROPPABLE), -E.EINVAL);
    assert.equal(huge(MAP_PRIVATE | MAP_GROWSDOWN), -E.EINVAL);
    assert.equal(huge(MAP_SHARED), -E.ENOMEM, 'shared read-write');
    assert.equal(huge(MAP_SHARED, PROT_READ), -E.ENOMEM, 'shared read-only');
    done();
  });
});

describe('mmap: MAP_POPULATE', () => {
  it('faults every page in, private writable memory with write faults; with MAP_NONBLOCK nothing', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, RW, FIXED | MAP_POPULATE), BASE);
    for (let i = 0; i < 3; i++) {
      assert.equal(pte(k, t, BASE + i * PAGE) & (PTE_PRESENT | PTE_WRITE | PTE_DIRTY), PTE_PRESENT | PTE_WRITE | PTE_DIRTY, `page ${i}`);
    }
    assert.equal(t.mm.rss, 3);
    assert.equal(mmap(k, t, BASE + 8 * PAGE, 2, RW, FIXED | MAP_POPULATE | MAP_NONBLOCK), BASE + 8 * PAGE);
    assert.equal(pte(k, t, BASE + 8 * PAGE), 0);
    assert.equal(t.mm.rss, 3);
    done();
  });

  it('read-only private memory and shared memory are populated with read faults', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 2, PROT_READ, FIXED | MAP_POPULATE), BASE);
    for (const va of [BASE, BASE + PAGE]) assert.equal(pte(k, t, va) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT, 'present, read-only');
    const sh = BASE + 8 * PAGE;
    assert.equal(mmap(k, t, sh, 2, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED | MAP_POPULATE), sh);
    for (const va of [sh, sh + PAGE]) assert.equal(pte(k, t, va) & (PTE_PRESENT | PTE_DIRTY), PTE_PRESENT, 'present, clean');
    done();
  });

  it('stops at the end of the new mapping: the VMA just above keeps its pages unfaulted', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE + 2 * PAGE, 2, RW, FIXED), BASE + 2 * PAGE);
    assert.equal(mmap(k, t, BASE, 2, RW, FIXED | MAP_POPULATE), BASE);
    assert.equal(pte(k, t, BASE + PAGE) & PTE_PRESENT, PTE_PRESENT);
    assert.equal(pte(k, t, BASE + 2 * PAGE), 0, 'the next page is not populated');
    done();
  });
});

describe('mmap and munmap at vm.max_map_count', () => {
  // three VMAs of 4 pages each, 4 pages apart: the count is at the limit
  function atLimit() {
    const b = boot({ maxMapCount: 3 });
    const t = b.k.spawn();
    for (let i = 0; i < 3; i++) assert.equal(mmap(b.k, t, BASE + i * 8 * PAGE, 4, RW, FIXED), BASE + i * 8 * PAGE);
    return { ...b, t, before: maps(t) };
  }

  it('a hole punched by munmap or by a MAP_FIXED mapping inside a VMA is ENOMEM and changes nothing', () => {
    const { k, t, before, done } = atLimit();
    assert.equal(k.syscall(t, NR.munmap, BASE + PAGE, PAGE), -E.ENOMEM);
    assert.deepEqual(maps(t), before);
    assert.equal(mmap(k, t, BASE + PAGE, 1, PROT_READ, FIXED), -E.ENOMEM);
    assert.deepEqual(maps(t), before);
    done();
  });

  it('unmapping the first or the last pages of a VMA needs no new VMA and works; the rest of the VMA stays', () => {
    const { k, t, done } = atLimit();
    assert.equal(k.syscall(t, NR.munmap, BASE, PAGE), 0, 'the head');
    assert.equal(k.syscall(t, NR.munmap, BASE + 8 * PAGE + 3 * PAGE, PAGE), 0, 'the tail');
    assert.deepEqual(spans(t), [
      span(BASE + PAGE, BASE + 4 * PAGE),
      span(BASE + 8 * PAGE, BASE + 11 * PAGE),
      span(BASE + 16 * PAGE, BASE + 20 * PAGE),
    ]);
    done();
  });
});

describe('mmap: the commit charge', () => {
  it('a driver refusing a new mapping leaves the commit charge as it was, for private writable and for shared mappings', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = openTestFile(k, t, refusingOps);
    const before = k.committedPages;
    assert.equal(mmap(k, t, BASE, 4, RW, MAP_PRIVATE | MAP_FIXED, fd), -E.ENODEV);
    assert.equal(k.committedPages, before, 'private writable: charged, then given back');
    assert.equal(mmap(k, t, BASE, 4, RW, MAP_SHARED | MAP_FIXED, fd), -E.ENODEV);
    assert.equal(k.committedPages, before, 'shared: never charged');
    assert.deepEqual(maps(t), []);
    done();
  });

  it('a MAP_FIXED mapping a driver refuses leaves a hole where the old mappings were; a private writable one keeps their charge (as on this machine\'s Linux)', () => {
    // mm/vma.c __mmap_region: __mmap_prepare clears the old PTEs
    // (vms_clean_up_area) before f_op->mmap; on its error
    // vms_abort_munmap_vmas completes the unmap, and only map.charged, not
    // the old VMAs' charge (nr_accounted = 0), is given back
    const { k, done } = boot();
    getDesign('memfd-secret').install(k);
    getDesign('dev-mktme').install(k);
    const t = k.spawn();
    const c0 = k.committedPages;
    assert.equal(mmap(k, t, BASE, 4, RW, FIXED), BASE);
    touch(k, t, BASE + PAGE, 1);
    assert.equal(k.committedPages, c0 + 4);
    const secret = k.syscall(t, NR.memfd_secret, 0);
    assert.ok(secret >= 0, `memfd_secret: ${secret}`);
    assert.equal(k.syscall(t, NR.ftruncate, secret, 16 * PAGE), 0);
    assert.equal(mmap(k, t, BASE + PAGE, 2, RW, MAP_PRIVATE | MAP_FIXED, secret), -E.EINVAL, 'secretmem is MAP_SHARED only');
    assert.deepEqual(spans(t), [span(BASE, BASE + PAGE), span(BASE + 3 * PAGE, BASE + 4 * PAGE)]);
    assert.equal(t.mm.rss, 0, 'the written page is gone');
    assert.equal(k.committedPages, c0 + 4, 'the two pages that went stay charged');
    // not accountable (shared): the old charge is given back with the old mapping
    const mktme = k.syscall(t, NR.openat, AT_FDCWD, DEV_MKTME, 2);
    assert.ok(mktme >= 0, `open: ${mktme}`);
    assert.equal(mmap(k, t, BASE, 1, RW, MAP_SHARED | MAP_FIXED, mktme), -E.ENOKEY, 'no key set');
    assert.deepEqual(spans(t), [span(BASE + 3 * PAGE, BASE + 4 * PAGE)]);
    assert.equal(k.committedPages, c0 + 3);
    done();
  });

  it('a shared file mapping charges nothing; a private writable one charges its pages', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = openTestFile(k, t);
    const before = k.committedPages;
    assert.equal(mmap(k, t, BASE, 4, RW, MAP_SHARED | MAP_FIXED, fd), BASE);
    assert.equal(k.committedPages, before);
    assert.equal(mmap(k, t, BASE + 8 * PAGE, 4, RW, MAP_PRIVATE | MAP_FIXED, fd), BASE + 8 * PAGE);
    assert.equal(k.committedPages, before + 4);
    done();
  });
});

describe('munmap and guard pages', () => {
  it('a guard page right after the unmapped range stays a guard page', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, RW, FIXED), BASE);
    assert.equal(k.syscall(t, NR.madvise, BASE + 2 * PAGE, PAGE, MADV_GUARD_INSTALL), 0);
    assert.equal(k.syscall(t, NR.munmap, BASE + PAGE, PAGE), 0);
    assert.equal(k.localCpu(t).load(BASE + 2 * PAGE, new Uint8Array(8), 0, 8), -E.EFAULT, 'still a guard: SIGSEGV');
    done();
  });
});

describe('VMAs: /proc/self/maps and merging', () => {
  it('a file mapping shows its file offset in bytes', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = openTestFile(k, t);
    assert.equal(mmap(k, t, BASE, 1, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 3 * PAGE), BASE);
    assert.deepEqual(maps(t), [`${span(BASE, BASE + PAGE)} r--s 00003000`]);
    done();
  });

  it('two mappings of one file at consecutive offsets but with a hole between them stay two VMAs', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = openTestFile(k, t);
    assert.equal(mmap(k, t, BASE, 1, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0), BASE);
    assert.equal(mmap(k, t, BASE + 2 * PAGE, 1, PROT_READ, MAP_SHARED | MAP_FIXED, fd, PAGE), BASE + 2 * PAGE);
    assert.deepEqual(spans(t), [span(BASE, BASE + PAGE), span(BASE + 2 * PAGE, BASE + 3 * PAGE)]);
    // and without the hole they are one (the control)
    assert.equal(mmap(k, t, BASE + PAGE, 1, PROT_READ, MAP_SHARED | MAP_FIXED, fd, 5 * PAGE), BASE + PAGE);
    assert.equal(k.syscall(t, NR.munmap, BASE + PAGE, 2 * PAGE), 0);
    assert.equal(mmap(k, t, BASE + PAGE, 1, PROT_READ, MAP_SHARED | MAP_FIXED, fd, PAGE), BASE + PAGE);
    assert.deepEqual(spans(t), [span(BASE, BASE + 2 * PAGE)]);
    done();
  });

  it('driver mappings (/dev/mktme: VM_DONTEXPAND) never merge, not even at consecutive offsets of one file', () => {
    const { k, done } = boot();
    getDesign('dev-mktme').install(k);
    const t = k.spawn();
    const fd = k.syscall(t, NR.openat, AT_FDCWD, DEV_MKTME, 2);
    assert.ok(fd >= 0, `open: ${fd}`);
    assert.equal(k.syscall(t, NR.ioctl, fd, MKTME_IOC_SET_KEY, addKey(k, t).serial), 0);
    assert.equal(mmap(k, t, BASE, 1, RW, MAP_SHARED | MAP_FIXED, fd, 0), BASE);
    assert.equal(mmap(k, t, BASE + PAGE, 1, RW, MAP_SHARED | MAP_FIXED, fd, PAGE), BASE + PAGE);
    assert.deepEqual(spans(t), [span(BASE, BASE + PAGE), span(BASE + PAGE, BASE + 2 * PAGE)]);
    done();
  });

  it('a VMA keeps its anon_vma on later write faults: split off by MADV_DONTFORK and written again, it merges back after MADV_DOFORK (as on this machine\'s Linux)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, RW, FIXED), BASE);
    touch(k, t, BASE, 1); // the anon_vma
    assert.equal(k.syscall(t, NR.madvise, BASE + PAGE, PAGE, MADV_DONTFORK), 0);
    assert.equal(t.mm.vmas.mapCount, 3);
    touch(k, t, BASE + 2 * PAGE, 2); // a write fault in the third VMA, whose neighbour differs in VM_DONTCOPY
    assert.equal(k.syscall(t, NR.madvise, BASE + PAGE, PAGE, MADV_DOFORK), 0);
    assert.deepEqual(spans(t), [span(BASE, BASE + 3 * PAGE)]);
    done();
  });

  it('memory of another KeyID gets an anon_vma of its own: moved to the same key later, the two halves stay two VMAs', () => {
    const { k, done } = boot();
    getDesign('encrypt-mprotect').install(k);
    const t = k.spawn();
    const key = addKey(k, t);
    assert.equal(mmap(k, t, BASE, 2, RW, FIXED), BASE);
    assert.equal(k.syscall(t, NR.encrypt_mprotect, BASE + PAGE, PAGE, RW, key.serial), 0);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2); // its neighbour below has KeyID 0: a new anon_vma
    assert.equal(k.syscall(t, NR.encrypt_mprotect, BASE, PAGE, RW, key.serial), 0);
    assert.deepEqual(spans(t), [span(BASE, BASE + PAGE), span(BASE + PAGE, BASE + 2 * PAGE)]);
    done();
  });
});

describe('mprotect', () => {
  it('the mprotect extension moves a range back to KeyID 0 (key null), and it merges with its neighbour again', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const key = addKey(k, t);
    assert.equal(mmap(k, t, BASE, 2, RW, FIXED), BASE);
    assert.equal(doMprotect(k, t, BASE + PAGE, PAGE, RW, key), 0);
    assert.equal(t.mm.vmas.mapCount, 2);
    assert.equal(doMprotect(k, t, BASE + PAGE, PAGE, RW, null), 0);
    assert.deepEqual(spans(t), [span(BASE, BASE + 2 * PAGE)]);
    assert.equal(t.mm.vmas.vmas[0]!.keyid, 0);
    done();
  });

  it('a clean page of shared anonymous memory gets PTE_WRITE back when its range turns writable again (no zero page there)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 1, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED), BASE);
    assert.equal(read(k, t, BASE), 0);
    assert.equal(pte(k, t, BASE) & PTE_DIRTY, 0, 'only read: clean');
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, PROT_READ), 0);
    assert.equal(pte(k, t, BASE) & PTE_WRITE, 0);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, RW), 0);
    assert.equal(pte(k, t, BASE) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT | PTE_WRITE);
    done();
  });

  it('a change that leaves every PTE as it was (adding PROT_EXEC to written memory) flushes no TLB', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    const buf = new Uint8Array(8);
    assert.equal(mmap(k, t, BASE, 1, RW, FIXED), BASE);
    assert.equal(cpu.store(BASE, buf.fill(3), 0, 8), 0);
    assert.equal(cpu.load(BASE, buf, 0, 8), 0, 'the translation is in the TLB now');
    const misses = cpu.tlbMisses, hits = cpu.tlbHits;
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, RW | PROT_EXEC), 0);
    assert.equal(cpu.load(BASE, buf, 0, 8), 0);
    assert.deepEqual([cpu.tlbMisses, cpu.tlbHits], [misses, hits + 1], 'a TLB hit');
    // the control: taking PROT_WRITE away does flush
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, PROT_READ), 0);
    assert.equal(cpu.load(BASE, buf, 0, 8), 0);
    assert.equal(cpu.tlbMisses, misses + 1);
    done();
  });

  it('a range that starts in a 4 MiB block with no page table still changes the first pages of the next block', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const block = 4 * 1024 * 1024;
    assert.equal(BASE % block, 0);
    assert.equal(mmap(k, t, BASE, block / PAGE + 2, RW, FIXED), BASE);
    touch(k, t, BASE + block, 1);
    touch(k, t, BASE + block + PAGE, 2);
    assert.equal(pte(k, t, BASE), 0, 'the first block has no pages');
    assert.equal(k.syscall(t, NR.mprotect, BASE, block + 2 * PAGE, PROT_READ), 0);
    assert.equal(pte(k, t, BASE + block) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT);
    assert.equal(pte(k, t, BASE + block + PAGE) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT);
    done();
  });

  it('mprotect to the protection a range already has does not split its VMA', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, RW, FIXED), BASE);
    assert.equal(k.syscall(t, NR.mprotect, BASE + PAGE, PAGE, RW), 0);
    const c = k.counters.snapshot();
    assert.deepEqual([c.vma_splits, c.vma_merges], [0, 0]);
    done();
  });

  it('read-only memory that was never charged gives nothing back when it changes again; nor does a private file mapping turning read-only', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 4, PROT_READ, FIXED), BASE);
    const before = k.committedPages;
    assert.equal(k.syscall(t, NR.mprotect, BASE, 4 * PAGE, PROT_READ | PROT_EXEC), 0);
    assert.equal(k.committedPages, before);
    const fd = openTestFile(k, t);
    assert.equal(mmap(k, t, BASE + 8 * PAGE, 4, RW, MAP_PRIVATE | MAP_FIXED, fd), BASE + 8 * PAGE);
    assert.equal(k.committedPages, before + 4);
    assert.equal(k.syscall(t, NR.mprotect, BASE + 8 * PAGE, 4 * PAGE, PROT_READ), 0);
    assert.equal(k.committedPages, before + 4, 'only anonymous memory with no anon_vma is uncharged');
    done();
  });

  it('a split refused at vm.max_map_count (ENOMEM) gives back the charge of memory turning writable', () => {
    const { k, done } = boot({ maxMapCount: 1 });
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, PROT_READ, FIXED), BASE);
    const before = k.committedPages;
    assert.equal(k.syscall(t, NR.mprotect, BASE + PAGE, PAGE, RW), -E.ENOMEM);
    assert.equal(k.committedPages, before);
    assert.deepEqual(maps(t), [`${span(BASE, BASE + 3 * PAGE)} r--p 00000000`]);
    done();
  });

  it('locked private memory turning writable is write-faulted in, every page of the range and no page beyond it', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, PROT_READ, FIXED | MAP_LOCKED), BASE);
    assert.equal(mmap(k, t, BASE + 3 * PAGE, 1, RW, FIXED), BASE + 3 * PAGE);
    for (let i = 0; i < 3; i++) assert.equal(pte(k, t, BASE + i * PAGE) & (PTE_PRESENT | PTE_WRITE), PTE_PRESENT, `populated read-only: page ${i}`);
    assert.equal(k.syscall(t, NR.mprotect, BASE, 3 * PAGE, RW), 0);
    for (let i = 0; i < 3; i++) {
      assert.equal(pte(k, t, BASE + i * PAGE) & (PTE_PRESENT | PTE_WRITE | PTE_DIRTY), PTE_PRESENT | PTE_WRITE | PTE_DIRTY, `page ${i}`);
    }
    assert.equal(pte(k, t, BASE + 3 * PAGE), 0, 'the next VMA is not touched');
    done();
  });

  it('a split by mprotect raises the vma_count_max gauge', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(mmap(k, t, BASE, 3, RW, FIXED), BASE);
    assert.equal(k.counters.snapshot().vma_count_max, 1);
    assert.equal(k.syscall(t, NR.mprotect, BASE + PAGE, PAGE, PROT_READ), 0);
    assert.equal(k.counters.snapshot().vma_count_max, 3);
    done();
  });
});
