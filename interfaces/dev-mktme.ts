// (b) A /dev/mktme driver: fd = open("/dev/mktme"); ioctl(fd, MKTME_SET_KEY,
// serial); ptr = mmap(fd). The driver allocates the pages itself, so they
// behave like device memory (Kai Huang in the 2019 thread): pinned, not
// swappable, not movable (EBUSY), charged to the process. A mapping of
// another device (mmap(/dev/dax0.0)) cannot also be a /dev/mktme mapping:
// the key ioctl exists only on the driver's own files (ENOTTY elsewhere).
// Without the driver, open() gives ENOENT and a careful program falls back
// to anonymous memory.
import { E } from '../kernel/errno.js';
import { type Device, type FileOps, type Kernel, OpenFile } from '../kernel/kernel.js';
import { allocFilePage, freeFilePages, pinPage } from '../kernel/memory.js';
import { PG_UNEVICTABLE, PG_UNMOVABLE } from '../kernel/page_alloc.js';
import { setVmaKey } from '../kernel/mprotect.js';
import { AT_FDCWD, NR } from '../kernel/syscalls.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { VM_DONTEXPAND, VM_SHARED } from '../kernel/vma.js';
import { EncryptionDesign, addKey, fallbackAlloc, type AllocResult, type KeySpec, type UserEnv } from './contract.js';

export const DEV_MKTME = '/dev/mktme';
/** _IOW('M', 1, int) */
export const MKTME_IOC_SET_KEY = 0x40044d01;
const O_RDWR = 2;
const RW = PROT_READ | PROT_WRITE;

const mktmeOps: FileOps = {
  ioctl(k, file, cmd, arg, task) {
    if (cmd !== MKTME_IOC_SET_KEY) return -E.ENOTTY;
    if (file.key !== null) return -E.EBUSY; // one key per open file
    const key = k.keys.lookup(typeof arg === 'number' ? arg : NaN, task.creds);
    if (typeof key === 'number') return key;
    key.get();
    file.key = key;
    return 0;
  },
  mmap(_k, file, vma) {
    if (file.key === null) return -E.ENOKEY; // no key set yet
    if (!(vma.flags & VM_SHARED)) return -E.EINVAL;
    vma.flags |= VM_DONTEXPAND; // a driver mapping: never merged
    setVmaKey(vma, file.key);
    return 0;
  },
  fault(k, file, _vma, pgoff, task) {
    const have = file.pages.get(pgoff);
    if (have !== undefined) return have;
    const pfn = allocFilePage(k, file, pgoff, file.key, task.mm);
    if (pfn >= 0) pinPage(k, pfn, true); // driver pages: pinned and unmovable
    return pfn;
  },
  // what fault does for a page it does not have, on the faulting CPU (mmap
  // refused the file while it had no key)
  fastFault: () => ({ flags: PG_UNEVICTABLE | PG_UNMOVABLE, pages: Infinity }),
  release(k, file) {
    freeFilePages(k, file);
    file.key?.put();
    file.key = null;
  },
};

const mktmeDevice: Device = {
  path: DEV_MKTME,
  open: (k) => new OpenFile(k, DEV_MKTME, '0a:ed', k.newIno(), mktmeOps),
};

export class DevMktme extends EncryptionDesign {
  readonly name = 'dev-mktme' as const;
  readonly feature = 'dev_mktme' as const;
  readonly summary = 'character device: open, ioctl(SET_KEY), mmap';

  protected installKernel(k: Kernel): void {
    k.registerDevice(mktmeDevice);
  }

  allocate(env: UserEnv, len: number, key: KeySpec, careful: boolean): AllocResult {
    const fd = env.sys(NR.openat, AT_FDCWD, DEV_MKTME, O_RDWR);
    if (fd < 0 && careful) return fallbackAlloc(env, len, fd, fd);
    const serial = addKey(env, key);
    const r = env.sys(NR.ioctl, fd, MKTME_IOC_SET_KEY, serial);
    if (r < 0 && careful) {
      env.sys(NR.close, fd);
      return fallbackAlloc(env, len, serial, serial < 0 ? serial : r);
    }
    // a naive program uses whatever mmap returned, MAP_FAILED included
    const addr = env.sys(NR.mmap, 0, len, RW, MAP_SHARED, fd, 0);
    if (addr < 0 && careful) return { failed: addr };
    return { addr, len, fd, serial, fallback: false, errno: fd < 0 ? fd : r < 0 ? r : addr < 0 ? addr : 0 };
  }

  encryptMapping(env: UserEnv, _addr: number, _len: number, fd: number, key: KeySpec): number {
    const serial = addKey(env, key);
    if (serial < 0) return serial;
    // the key ioctl on the other device's fd: only the driver's own files have it
    return env.sys(NR.ioctl, fd, MKTME_IOC_SET_KEY, serial);
  }
}
