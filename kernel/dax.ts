// Device DAX (drivers/dax/device.c): /dev/dax0.0 maps the persistent region
// directly: no page cache, no allocation, contents survive a power cycle.
// Mappings must be shared (check_vma: "attempted private mapping" -> EINVAL).
// The pages are device memory: never swapped, never migrated. Where a design
// stacks encryption on it (MADV_ENCRYPT), the page is accessed through the
// VMA's KeyID; switching a frame's KeyID flushes the old alias first.
import { asPfn } from '../hardware/types.js';
import { E } from './errno.js';
import { type Device, type FileOps, type Kernel, OpenFile, type Task } from './kernel.js';
import { VM_SHARED } from './vma.js';

export const DAX_PATH = '/dev/dax0.0';

const daxOps: FileOps = {
  mmap(k, _file, vma) {
    if (!(vma.flags & VM_SHARED)) return -E.EINVAL;
    if (vma.pgoff + vma.pages > k.machine.memory.daxFrames) return -E.EINVAL;
    return 0;
  },
  fault(k, _file, vma, pgoff) {
    const mem = k.machine.memory;
    if (pgoff >= mem.daxFrames) return -E.EFAULT; // SIGBUS
    const pfn = mem.daxStart + pgoff;
    const keyid = vma.keyid;
    if (k.alloc.keyid[pfn] !== keyid) {
      k.engine.flush(asPfn(pfn)); // caches are not coherent across KeyID aliases
      k.alloc.keyid[pfn] = keyid;
    }
    return pfn;
  },
  release() {},
};

export const daxDevice: Device = {
  path: DAX_PATH,
  open(k: Kernel, _task: Task, _flags: number) {
    return new OpenFile(k, DAX_PATH, 'fc:00', 1, daxOps);
  },
};
