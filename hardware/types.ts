// Basic units of the simulated machine. Brand types keep a page-frame number,
// a physical address and a virtual address from being mixed up by accident:
// converting between them is always an explicit call.

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** Page-frame number: index of a 4 KiB frame in physical memory. */
export type Pfn = Brand<number, 'Pfn'>;
/** Physical address in bytes (without KeyID bits). */
export type PhysAddr = Brand<number, 'PhysAddr'>;
/** User virtual address in bytes. */
export type VirtAddr = Brand<number, 'VirtAddr'>;
/** Hardware KeyID: 0 is the platform/no-encryption alias. */
export type KeyId = Brand<number, 'KeyId'>;

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT; // 4096
export const CACHE_LINE = 64;
export const LINES_PER_PAGE = PAGE_SIZE / CACHE_LINE;

export const asPfn = (n: number): Pfn => n as Pfn;

/** Throw a RangeError naming the argument unless n is a non-negative safe integer. */
export function checkUint(name: string, n: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > max)
    throw new RangeError(`${name}: expected an integer in [0, ${max}], got ${String(n)}`);
  return n;
}
