// User-visible constants, with the x86-64 Linux values (include/uapi/asm-generic/mman*.h).
export const PROT_NONE = 0x0;
export const PROT_READ = 0x1;
export const PROT_WRITE = 0x2;
export const PROT_EXEC = 0x4;
export const PROT_SEM = 0x8;
export const PROT_GROWSDOWN = 0x0100_0000;
export const PROT_GROWSUP = 0x0200_0000;

export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_SHARED_VALIDATE = 0x03;
export const MAP_TYPE = 0x0f;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_POPULATE = 0x8000;
export const MAP_FIXED_NOREPLACE = 0x10_0000;

export const MAP_FLAG_NAMES: Readonly<Record<string, number>> = {
  MAP_SHARED,
  MAP_PRIVATE,
  MAP_SHARED_VALIDATE,
  MAP_FIXED,
  MAP_ANONYMOUS,
  MAP_ANON: MAP_ANONYMOUS,
  MAP_POPULATE,
  MAP_FIXED_NOREPLACE,
};

export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
/**
 * The madvise-encrypt design's advice (not in Linux): encrypt the range with
 * the key passed as the call's fourth argument. A value no Linux kernel uses,
 * so an unpatched kernel answers EINVAL, as the thread argued.
 */
export const MADV_ENCRYPT = 0x4d4b; // 'MK'

export const MADV_NAMES: Readonly<Record<string, number>> = {
  MADV_NORMAL,
  MADV_RANDOM,
  MADV_SEQUENTIAL,
  MADV_WILLNEED,
  MADV_DONTNEED,
  MADV_ENCRYPT,
};

/** Linux's default vm.max_map_count (DEFAULT_MAX_MAP_COUNT = USHRT_MAX - 5). */
export const DEFAULT_MAX_MAP_COUNT = 65530;
/** x86-64 TASK_SIZE with 4-level paging: 2^47 - one page. */
export const TASK_SIZE = 2 ** 47 - 4096;
/** Where top-down mmap placement starts (below the stack). */
export const MMAP_BASE = 0x7f00_0000_0000;
/** mmap_min_addr default. */
export const MMAP_MIN_ADDR = 0x10000;

export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_RESOURCE = 24;
