// The syscall table. Numbers are x86-64 Linux's where the call exists in
// Linux; the designs that were never merged get numbers from an out-of-tree
// range. A call whose design is not in this kernel's config has no entry:
// the dispatcher answers ENOSYS, as a kernel without it would.
import { E } from './errno.js';
import type { Kernel, Task } from './kernel.js';
import { doMadvise } from './madvise.js';
import { movePages } from './migrate.js';
import { doMmap, doMunmap } from './mmap.js';
import { doMprotect } from './mprotect.js';
import type { RegArg } from './regs.js';

export const NR = {
  close: 3,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  ioctl: 16,
  madvise: 28,
  ftruncate: 77,
  add_key: 248,
  keyctl: 250,
  openat: 257,
  move_pages: 279,
  fallocate: 285,
  memfd_secret: 447,
  /** MKTME RFC (2019), never merged: out-of-tree number */
  encrypt_mprotect: 1001,
} as const;
export type SyscallName = keyof typeof NR;

/**
 * Arguments as registers would carry them: a number or bigint is the
 * register's value (regs.ts toReg: mod 2^64); strings and arrays stand for
 * user pointers.
 */
export type SysArg = number | bigint | string | readonly number[] | number[];
export type SyscallFn = (k: Kernel, task: Task, ...args: SysArg[]) => number;

export const KEYCTL_INVALIDATE = 21;

// include/uapi/linux/falloc.h
const FALLOC_FL_KEEP_SIZE = 0x01;
const FALLOC_FL_PUNCH_HOLE = 0x02;
/** PUNCH_HOLE | COLLAPSE_RANGE | ZERO_RANGE | INSERT_RANGE | UNSHARE_RANGE | WRITE_ZEROES */
const FALLOC_FL_MODE_MASK = 0x02 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80;
/** s_maxbytes of the model's files is LLONG_MAX: offset + len beyond it, or wrapping negative, is 2^63 or more */
const LLONG_LIMIT = 2 ** 63;
export const AT_FDCWD = -100;

const n = (a: SysArg | undefined): number => (typeof a === 'number' ? a : typeof a === 'bigint' ? Number(BigInt.asIntN(64, a)) : NaN);
/** A register argument of the mm calls, kept whole (they convert it themselves: regs.ts). */
const r = (a: SysArg | undefined): RegArg => (typeof a === 'number' || typeof a === 'bigint' ? a : NaN);
const s = (a: SysArg | undefined): string => (typeof a === 'string' ? a : '');
/** An `int` parameter: the low 32 bits of the register, signed (a C cast). */
const i32 = (a: SysArg | undefined): number =>
  typeof a === 'bigint' ? Number(BigInt.asIntN(32, a)) : typeof a === 'number' && Number.isInteger(a) ? a | 0 : NaN;

/** The calls every kernel has. */
export const CORE_SYSCALLS: ReadonlyArray<[number, SyscallFn]> = [
  [NR.mmap, (k, t, a, l, p, f, fd, o) => doMmap(k, t, r(a), r(l), r(p), r(f), r(fd ?? -1), r(o ?? 0))],
  [NR.munmap, (k, t, a, l) => doMunmap(k, t, r(a), r(l))],
  [NR.mprotect, (k, t, a, l, p) => doMprotect(k, t, r(a), r(l), r(p))],
  [NR.madvise, (k, t, a, l, adv, arg) => doMadvise(k, t, r(a), r(l), r(adv), n(arg ?? 0))],
  [
    NR.openat,
    (k, t, _dirfd, path, flags) => {
      const dev = k.devices.get(s(path));
      if (dev === undefined) return -E.ENOENT;
      const f = dev.open(k, t, n(flags ?? 0));
      return typeof f === 'number' ? f : t.installFd(f);
    },
  ],
  [
    NR.close,
    (_k, t, fd) => {
      const f = t.files.get(n(fd));
      if (f === undefined) return -E.EBADF;
      t.files.delete(n(fd));
      f.put();
      return 0;
    },
  ],
  [
    NR.ioctl,
    (k, t, fd, cmd, arg) => {
      const f = t.files.get(n(fd));
      if (f === undefined) return -E.EBADF;
      // cmd is an unsigned int; arg a register, or a struct the caller points to
      return f.ops.ioctl ? f.ops.ioctl(k, f, n(cmd) >>> 0, typeof arg === 'bigint' ? n(arg) : (arg ?? 0), t) : -E.ENOTTY;
    },
  ],
  [
    NR.ftruncate,
    (k, t, fd, len) => {
      if (n(len) < 0) return -E.EINVAL; // do_sys_ftruncate: the length before the fd
      const f = t.files.get(n(fd));
      if (f === undefined) return -E.EBADF;
      return f.ops.ftruncate ? f.ops.ftruncate(k, f, n(len)) : -E.EINVAL;
    },
  ],
  [
    NR.fallocate,
    (k, t, fd, mode, offset, len) => {
      const f = t.files.get(n(fd));
      if (f === undefined) return -E.EBADF;
      // vfs_fallocate's checks, in its order
      const m = n(mode) | 0, off = n(offset), l = n(len);
      if (!(off >= 0) || !(l > 0)) return -E.EINVAL;
      if (m & ~(FALLOC_FL_MODE_MASK | FALLOC_FL_KEEP_SIZE)) return -E.EOPNOTSUPP;
      switch (m & FALLOC_FL_MODE_MASK) {
        case 0: // allocate
        case 0x10: // ZERO_RANGE
        case 0x40: // UNSHARE_RANGE
          break;
        case FALLOC_FL_PUNCH_HOLE:
          if (!(m & FALLOC_FL_KEEP_SIZE)) return -E.EOPNOTSUPP;
          break;
        case 0x08: // COLLAPSE_RANGE
        case 0x20: // INSERT_RANGE
        case 0x80: // WRITE_ZEROES
          if (m & FALLOC_FL_KEEP_SIZE) return -E.EOPNOTSUPP;
          break;
        default:
          return -E.EOPNOTSUPP; // two modes at once
      }
      if (!f.writable) return -E.EBADF;
      if (off + l >= LLONG_LIMIT) return -E.EFBIG;
      return f.ops.fallocate ? f.ops.fallocate(k, f, m, off, l, t) : -E.EOPNOTSUPP;
    },
  ],
  [NR.add_key, (k, t, type, desc, payload) => k.keys.addKey(s(type), s(desc), s(payload), t.creds)],
  [
    NR.keyctl,
    // KEYCTL_INVALIDATE only; an option keyctl does not have is the default of its switch.
    // SYSCALL_DEFINE5(keyctl, int option, unsigned long arg2, ...) and keyctl_invalidate_key((key_serial_t) arg2):
    // both are the register's low 32 bits as an int (security/keys/keyctl.c)
    (k, t, op, serial) => (i32(op) === KEYCTL_INVALIDATE ? k.keys.invalidate(i32(serial), t.creds) : -E.EOPNOTSUPP),
  ],
  [
    NR.move_pages,
    (k, t, _pid, pages, nodes, status) => {
      if (!Array.isArray(pages) || !Array.isArray(nodes) || !Array.isArray(status)) return -E.EFAULT;
      return movePages(k, t, pages, nodes, status as number[]);
    },
  ],
];
