// Linux errno values (asm-generic/errno-base.h, errno.h). Kernel entry points
// return -errno on failure, like the real syscall ABI; they never throw.
export const E = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ETXTBSY: 26,
  EFBIG: 27,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  EHWPOISON: 133,
  ENOKEY: 126,
  EKEYREVOKED: 128,
  ENOTTY: 25,
} as const;
export type ErrnoName = keyof typeof E;
export type Errno = (typeof E)[ErrnoName];

const NAMES = new Map<number, ErrnoName>(Object.entries(E).map(([k, v]) => [v, k as ErrnoName]));

/** 'EINVAL' for 22 or -22; null for a non-negative return value. */
export function errnoName(ret: number): ErrnoName | null {
  if (ret >= 0) return null;
  const n = NAMES.get(-ret);
  if (n === undefined) throw new RangeError(`ret: ${ret} is not a known -errno`);
  return n;
}

/** Is ret an error return (-4095..-1, IS_ERR_VALUE)? */
export const isErr = (ret: number): boolean => ret < 0 && ret >= -4095;
