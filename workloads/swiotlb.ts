// The guest kernel's DMA bounce buffers (kernel/dma/swiotlb.c,
// include/linux/swiotlb.h). A confidential guest (SEV, SNP, TDX:
// CC_ATTR_GUEST_MEM_ENCRYPT) forces every DMA through a pool of guest memory
// it has made shared, because the host cannot read its private pages
// (arch/x86/kernel/pci-dma.c pci_swiotlb_detect; arch/x86/mm/mem_encrypt.c).
//
// - A slot is 2 KiB (IO_TLB_SHIFT 11); one mapping takes contiguous slots
//   inside one segment of 128 (IO_TLB_SEGSIZE), so at most 256 KiB.
// - The pool is 6% of guest RAM, clamped to [64 MiB, 1 GiB]
//   (mem_encrypt_setup_arch), unless the command line sets swiotlb=<slabs>,
//   which the model's guests do: their RAM is a few hundred KiB.
// - swiotlb_tbl_map_single searches from a cursor that moves past each
//   allocation and wraps; a mapping of a page or more is page-aligned; no
//   room: "swiotlb buffer is full", DMA_MAPPING_ERROR. One area here (Linux
//   has one per CPU, rounded to a power of two; the model's DMA is issued
//   from one CPU).
// - Copies: map always copies the buffer into the slots (also for
//   DMA_FROM_DEVICE, so a short device write exposes no stale data); unmap
//   copies back for DMA_FROM_DEVICE. A write to the device is one copy, a
//   read two.

export const IO_TLB_SHIFT = 11;
export const IO_TLB_SIZE = 1 << IO_TLB_SHIFT;
export const IO_TLB_SEGSIZE = 128;
export const IO_TLB_DEFAULT_SIZE = 64 << 20;
/** The largest single mapping: one segment. */
export const SWIOTLB_MAX_MAPPING = IO_TLB_SIZE * IO_TLB_SEGSIZE;
const PAGE = 4096;

/** mem_encrypt_setup_arch: a confidential guest's pool size for `ramBytes` of RAM, in bytes (slabs rounded up to a segment). */
export function swiotlbPoolBytes(ramBytes: number): number {
  const size = Math.min(Math.max(Math.floor((ramBytes * 6) / 100), IO_TLB_DEFAULT_SIZE), 1 << 30);
  const slabs = Math.ceil(size / IO_TLB_SIZE / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  return slabs * IO_TLB_SIZE;
}

export class Swiotlb {
  /** slots in use (1) or free (0) */
  private readonly used: Uint8Array;
  private index = 0;
  /** slots mapped now */
  inUse = 0;

  constructor(
    /** guest physical address of slot 0 (page-aligned) */
    readonly gpa: number,
    readonly nslabs: number,
  ) {
    if (!Number.isInteger(nslabs) || nslabs < IO_TLB_SEGSIZE || nslabs % IO_TLB_SEGSIZE !== 0)
      throw new RangeError(`swiotlb: expected a multiple of ${IO_TLB_SEGSIZE} slabs, got ${nslabs}`);
    if (gpa % PAGE !== 0) throw new RangeError(`swiotlb: pool at ${gpa} is not page-aligned`);
    this.used = new Uint8Array(nslabs);
  }

  /** Guest physical address of a slot. */
  slotGpa(slot: number): number {
    return this.gpa + slot * IO_TLB_SIZE;
  }

  /** Find slots for a mapping of `bytes`: the first slot, or -1 (too large for one segment, or the pool is full). */
  map(bytes: number): number {
    if (!(bytes >= 1 && bytes <= SWIOTLB_MAX_MAPPING)) return -1;
    const nslots = Math.ceil(bytes / IO_TLB_SIZE);
    const stride = bytes >= PAGE ? PAGE / IO_TLB_SIZE : 1;
    let i = Math.ceil(this.index / stride) * stride;
    if (i >= this.nslabs) i = 0;
    for (let tried = 0; tried < this.nslabs; tried += stride) {
      if (this.fits(i, nslots)) {
        this.used.fill(1, i, i + nslots);
        this.inUse += nslots;
        this.index = i + nslots >= this.nslabs ? 0 : i + nslots;
        return i;
      }
      i += stride;
      if (i >= this.nslabs) i = 0;
    }
    return -1;
  }

  /** Free a mapping's slots. */
  unmap(slot: number, bytes: number): void {
    const nslots = Math.ceil(bytes / IO_TLB_SIZE);
    for (let j = slot; j < slot + nslots; j++) {
      if (this.used[j] !== 1) throw new Error(`swiotlb: slot ${j} unmapped twice`);
      this.used[j] = 0;
    }
    this.inUse -= nslots;
  }

  /** nslots free slots from i, all in i's segment. */
  private fits(i: number, nslots: number): boolean {
    if (Math.floor(i / IO_TLB_SEGSIZE) !== Math.floor((i + nslots - 1) / IO_TLB_SEGSIZE) || i + nslots > this.nslabs) return false;
    for (let j = i; j < i + nslots; j++) if (this.used[j] !== 0) return false;
    return true;
  }
}
