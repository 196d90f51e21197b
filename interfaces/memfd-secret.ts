// What Linux merged instead (5.14; on by default since 6.5): fd =
// memfd_secret(0); ftruncate(fd, len); mmap(MAP_SHARED only, else EINVAL).
// Pages are VM_LOCKED (unevictable), not movable (migration -EBUSY) and
// removed from the kernel direct map on fault; they are not encrypted: the
// kernel simply cannot reach them. Where the call is missing: ENOSYS, and a
// careful program falls back to anonymous memory. It hands out its own memory,
// so it cannot be stacked on another mapping such as Device DAX.
import { asPfn } from '../hardware/types.js';
import { E } from '../kernel/errno.js';
import { type FileOps, type Kernel, OpenFile } from '../kernel/kernel.js';
import { mlockFutureOk } from '../kernel/limits.js';
import { allocFilePage, freeFilePages, pinPage } from '../kernel/memory.js';
import { PG_SECRET, PG_UNEVICTABLE, PG_UNMOVABLE } from '../kernel/page_alloc.js';
import { NR } from '../kernel/syscalls.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { VM_LOCKED, VM_MAYSHARE, VM_SHARED } from '../kernel/vma.js';
import { EncryptionDesign, fallbackAlloc, type AllocResult, type KeySpec, type UserEnv } from './contract.js';

const RW = PROT_READ | PROT_WRITE;

const secretOps: FileOps = {
  gup: 'refuse', // check_vma_flags: vma_is_secretmem -> EFAULT (mm/gup.c)
  mmap(_k, _file, vma, task) {
    if ((vma.flags & (VM_SHARED | VM_MAYSHARE)) === 0) return -E.EINVAL;
    // secret memory is locked memory, counted against RLIMIT_MEMLOCK (mm/secretmem.c secretmem_mmap)
    if (!mlockFutureOk(task, vma.flags | VM_LOCKED, vma.end - vma.start)) return -E.EAGAIN;
    vma.flags |= VM_LOCKED;
    return 0;
  },
  fault(k, file, _vma, pgoff, task) {
    if (pgoff * 4096 >= file.size) return -E.EFAULT; // SIGBUS past EOF
    const have = file.pages.get(pgoff);
    if (have !== undefined) return have;
    const pfn = allocFilePage(k, file, pgoff, null, task.mm);
    if (pfn < 0) return pfn;
    pinPage(k, pfn, true);
    // set_direct_map_invalid_noflush + flush_tlb_kernel_range
    k.alloc.flags[pfn] |= PG_SECRET;
    k.count('direct_map_removed');
    return pfn;
  },
  // what fault does for a page it does not have, on the faulting CPU (none before ftruncate)
  fastFault: (file) => ({ flags: PG_UNEVICTABLE | PG_UNMOVABLE | PG_SECRET, pages: Math.ceil(file.size / 4096) }),
  ftruncate(_k, file, len) {
    if (file.size !== 0 && len !== file.size) return -E.EINVAL; // size is set once here
    file.size = len;
    return 0;
  },
  release(k, file) {
    // secretmem_free_folio(): the page goes back to the direct map cleared,
    // so no secret is left in free memory (mm/secretmem.c).
    file.pages.forEach((_pgoff, pfn) => {
      if (k.alloc.flags[pfn] & PG_SECRET) k.engine.zero(asPfn(pfn), 0);
    });
    freeFilePages(k, file);
  },
};

export class MemfdSecret extends EncryptionDesign {
  readonly name = 'memfd-secret' as const;
  readonly feature = 'memfd_secret' as const;
  readonly summary = 'memfd_secret(2), as merged in Linux 5.14';

  protected installKernel(k: Kernel): void {
    k.registerSyscall(NR.memfd_secret, (k, task, flags) => {
      if (Number(flags ?? 0) !== 0) return -E.EINVAL;
      return task.installFd(new OpenFile(k, '/secretmem (deleted)', '00:0f', k.newIno(), secretOps));
    });
  }

  allocate(env: UserEnv, len: number, _key: KeySpec, careful: boolean): AllocResult {
    const fd = env.sys(NR.memfd_secret, 0);
    if (fd < 0 && careful) return fallbackAlloc(env, len, 0, fd);
    const t = env.sys(NR.ftruncate, fd, len);
    if (t < 0 && careful) return { failed: t };
    const addr = env.sys(NR.mmap, 0, len, RW, MAP_SHARED, fd, 0);
    if (addr < 0 && careful) return { failed: addr };
    return { addr, len, fd, serial: 0, fallback: false, errno: fd < 0 ? fd : t < 0 ? t : addr < 0 ? addr : 0 };
  }

  encryptMapping(): null {
    return null;
  }
}
