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
export const MAP_DROPPABLE = 0x08;
export const MAP_32BIT = 0x40;
export const MAP_ABOVE4G = 0x80;
export const MAP_GROWSDOWN = 0x100;
export const MAP_DENYWRITE = 0x800;
export const MAP_EXECUTABLE = 0x1000;
export const MAP_LOCKED = 0x2000;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MAP_NONBLOCK = 0x1_0000;
export const MAP_STACK = 0x2_0000;
export const MAP_HUGETLB = 0x4_0000;
export const MAP_SYNC = 0x8_0000;
export const MAP_FIXED_NOREPLACE = 0x10_0000;
export const MAP_UNINITIALIZED = 0x400_0000;
export const MAP_HUGE_SHIFT = 26;
export const MAP_HUGE_MASK = 0x3f;
/**
 * include/linux/mman.h LEGACY_MAP_MASK: the flags MAP_SHARED_VALIDATE
 * accepts on a file (plus MAP_SYNC where the file supports it).
 */
export const LEGACY_MAP_MASK =
  MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_UNINITIALIZED |
  MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE | MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB |
  MAP_32BIT | MAP_ABOVE4G | (21 << MAP_HUGE_SHIFT) | (30 << MAP_HUGE_SHIFT);

export const MAP_FLAG_NAMES: Readonly<Record<string, number>> = {
  MAP_SHARED,
  MAP_PRIVATE,
  MAP_SHARED_VALIDATE,
  MAP_FIXED,
  MAP_ANONYMOUS,
  MAP_ANON: MAP_ANONYMOUS,
  MAP_DROPPABLE,
  MAP_32BIT,
  MAP_ABOVE4G,
  MAP_GROWSDOWN,
  MAP_DENYWRITE,
  MAP_EXECUTABLE,
  MAP_LOCKED,
  MAP_NORESERVE,
  MAP_POPULATE,
  MAP_NONBLOCK,
  MAP_STACK,
  MAP_HUGETLB,
  MAP_SYNC,
  MAP_FIXED_NOREPLACE,
  MAP_UNINITIALIZED,
};

// include/uapi/asm-generic/mman-common.h
export const MADV_NORMAL = 0;
export const MADV_RANDOM = 1;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_FREE = 8;
export const MADV_REMOVE = 9;
export const MADV_DONTFORK = 10;
export const MADV_DOFORK = 11;
export const MADV_MERGEABLE = 12;
export const MADV_UNMERGEABLE = 13;
export const MADV_HUGEPAGE = 14;
export const MADV_NOHUGEPAGE = 15;
export const MADV_DONTDUMP = 16;
export const MADV_DODUMP = 17;
export const MADV_WIPEONFORK = 18;
export const MADV_KEEPONFORK = 19;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const MADV_DONTNEED_LOCKED = 24;
export const MADV_COLLAPSE = 25;
export const MADV_HWPOISON = 100;
export const MADV_SOFT_OFFLINE = 101;
export const MADV_GUARD_INSTALL = 102;
export const MADV_GUARD_REMOVE = 103;

/**
 * The madvise-encrypt design's advice (not in Linux): encrypt the range with
 * the key passed as the call's fourth argument. A value no Linux kernel uses,
 * so an unpatched kernel answers EINVAL, as the thread argued.
 */
export const MADV_ENCRYPT = 0x4d4b; // 'MK'

/** include/uapi/asm-generic/mman-common.h; MADV_ENCRYPT is the design's own. */
export const MADV_NAMES: Readonly<Record<string, number>> = {
  MADV_NORMAL: 0,
  MADV_RANDOM: 1,
  MADV_SEQUENTIAL: 2,
  MADV_WILLNEED: 3,
  MADV_DONTNEED: 4,
  MADV_FREE: 8,
  MADV_REMOVE: 9,
  MADV_DONTFORK: 10,
  MADV_DOFORK: 11,
  MADV_MERGEABLE: 12,
  MADV_UNMERGEABLE: 13,
  MADV_HUGEPAGE: 14,
  MADV_NOHUGEPAGE: 15,
  MADV_DONTDUMP: 16,
  MADV_DODUMP: 17,
  MADV_WIPEONFORK: 18,
  MADV_KEEPONFORK: 19,
  MADV_COLD: 20,
  MADV_PAGEOUT: 21,
  MADV_POPULATE_READ: 22,
  MADV_POPULATE_WRITE: 23,
  MADV_DONTNEED_LOCKED: 24,
  MADV_COLLAPSE: 25,
  MADV_HWPOISON: 100,
  MADV_SOFT_OFFLINE: 101,
  MADV_GUARD_INSTALL: 102,
  MADV_GUARD_REMOVE: 103,
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

export const CAP_IPC_LOCK = 14;
export const CAP_SYS_RAWIO = 17;
export const CAP_SYS_ADMIN = 21;
export const CAP_SYS_RESOURCE = 24;
