// Syscall arguments as the 64-bit registers they are (x86-64: rdi, rsi, rdx,
// r10, r8, r9). A syscall's entry converts each register to the C type of its
// parameter, the way include/linux/syscalls.h's __SC_CAST does: `unsigned
// long` and `size_t` keep all 64 bits, `int` keeps the low 32 bits read as
// signed, `unsigned int` the low 32 bits. Range checks are then done in u64
// with the kernel's own overflow rules, before anything is turned back into a
// JavaScript number (safe once it is known to be below TASK_SIZE).

/** A register's value: an unsigned 64-bit integer. */
export type Reg = bigint;
/** What a syscall entry takes: a register, or a number that toReg turns into one. */
export type RegArg = bigint | number;

export const U64_MAX = (1n << 64n) - 1n;
/**
 * What a C cast `(long)x` of a double that has no 64-bit value gives on
 * x86-64 (cvttsd2si's "integer indefinite"): NaN, infinities, and values
 * beyond +-2^64.
 */
export const REG_INDEFINITE = 1n << 63n;

/**
 * A JavaScript argument as the register a caller would load: an integer is
 * taken mod 2^64 (so -1 is 0xffff_ffff_ffff_ffff), a fraction is truncated
 * toward zero, a bigint is reduced mod 2^64. Anything else (NaN, +-Infinity,
 * a value of 2^64 or more in magnitude, a string or array in a place that
 * takes a value) is REG_INDEFINITE.
 */
export function toReg(x: unknown): Reg {
  if (typeof x === 'bigint') return BigInt.asUintN(64, x);
  if (typeof x !== 'number' || !Number.isFinite(x) || Math.abs(x) >= 2 ** 64) return REG_INDEFINITE;
  return BigInt.asUintN(64, BigInt(Math.trunc(x)));
}

/** An `int` parameter: the low 32 bits, signed. */
export const regInt = (r: Reg): number => Number(BigInt.asIntN(32, r));
/** An `unsigned int` parameter: the low 32 bits. */
export const regUint = (r: Reg): number => Number(BigInt.asUintN(32, r));

export const PAGE_SIZE_REG = 4096n;
/** ~PAGE_MASK */
export const PAGE_OFFSET_MASK = 0xfffn;
/** PAGE_ALIGN in u64: wraps to 0 for values above 2^64 - 4096. */
export const pageAlignReg = (r: Reg): Reg => BigInt.asUintN(64, r + PAGE_OFFSET_MASK) & ~PAGE_OFFSET_MASK;
/** offset_in_page */
export const offsetInPageReg = (r: Reg): Reg => r & PAGE_OFFSET_MASK;
/** u64 addition as C does it (wraps). */
export const addReg = (a: Reg, b: Reg): Reg => BigInt.asUintN(64, a + b);

/**
 * A page-aligned address register as a number for the VMA walks. Exact: a
 * multiple of 4096 below 2^64 is m * 2^12 with m < 2^52, which a double holds.
 * (Clamping what lies above every mapping to one value would make a range
 * that starts there empty, and a walk over it succeed where Linux's finds no
 * page: MADV_HWPOISON's get_user_pages_fast, MADV_POPULATE's vma_lookup.)
 */
export const pageAddr = (r: Reg): number => Number(r);
