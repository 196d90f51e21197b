// A swap device backed by a real file of bounded size. Slots are 4 KiB. With
// `encrypt` (like dm-crypt under swap), pages are encrypted with a key made at
// swapon and never stored, so nothing readable reaches the file; without it,
// whatever the kernel read through the page's alias lands in the file as is.
import { randomBytes } from 'node:crypto';
import { closeSync, ftruncateSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { dataBuf, type DataBuf, type XtsBackend, type XtsKey } from '../hardware/backend.js';
import { PAGE_SIZE } from '../hardware/types.js';

export interface SwapConfig {
  /** file to swap to (created, truncated, removed at close) */
  readonly path: string;
  /** capacity in 4 KiB slots */
  readonly slots: number;
  /** encrypt swapped pages (swap over dm-crypt) */
  readonly encrypt: boolean;
}

export class SwapDevice {
  readonly slots: number;
  readonly encrypt: boolean;
  private fd: number;
  private readonly path: string;
  private readonly used: Uint8Array;
  private nrUsed = 0;
  private readonly backend: XtsBackend;
  private readonly key: XtsKey;
  private readonly buf: DataBuf = dataBuf(new Uint8Array(PAGE_SIZE));

  private constructor(cfg: SwapConfig, fd: number, backend: XtsBackend) {
    this.slots = cfg.slots;
    this.encrypt = cfg.encrypt;
    this.path = cfg.path;
    this.fd = fd;
    this.used = new Uint8Array(cfg.slots);
    this.backend = backend;
    let k: Uint8Array;
    do k = Uint8Array.from(randomBytes(32));
    while (k.subarray(0, 16).every((b, i) => b === k[16 + i]));
    this.key = backend.importKey(k);
    k.fill(0);
  }

  static open(cfg: SwapConfig, backend: XtsBackend): SwapDevice {
    if (!Number.isInteger(cfg.slots) || cfg.slots < 1 || cfg.slots > 0xffff)
      throw new RangeError(`swap.slots: expected an integer in [1, 65535], got ${cfg.slots}`);
    const fd = openSync(cfg.path, 'w+', 0o600); // holds page contents: the owner's only
    ftruncateSync(fd, cfg.slots * PAGE_SIZE);
    return new SwapDevice(cfg, fd, backend);
  }

  get inUse(): number {
    return this.nrUsed;
  }

  /** A free slot, or -1 when the device is full. */
  allocSlot(): number {
    if (this.nrUsed === this.slots) return -1;
    for (let s = 0; s < this.slots; s++)
      if (this.used[s] === 0) {
        this.used[s] = 1;
        this.nrUsed++;
        return s;
      }
    return -1;
  }

  freeSlot(slot: number): void {
    if (this.used[slot] !== 1) throw new Error(`swap: freeing slot ${slot} which is not in use`);
    this.used[slot] = 0;
    this.nrUsed--;
  }

  /**
   * Write a page to slot. `sealed`: the bytes are already unreadable (an
   * SGX EWB blob), so they are stored encrypted whatever the option says.
   * Returns the plaintext bytes that reached the file (0 or 4096).
   */
  writePage(slot: number, page: Uint8Array, sealed = false): number {
    const b = this.buf;
    b.u8.set(page);
    const enc = this.encrypt || sealed;
    if (enc) this.backend.encrypt(this.key, b, 0, b, 0, PAGE_SIZE, slot);
    let done = 0;
    while (done < PAGE_SIZE) done += writeSync(this.fd, b.u8, done, PAGE_SIZE - done, slot * PAGE_SIZE + done);
    b.u8.fill(0);
    return enc ? 0 : PAGE_SIZE;
  }

  readPage(slot: number, out: Uint8Array, sealed = false): void {
    const b = this.buf;
    let done = 0;
    while (done < PAGE_SIZE) {
      const n = readSync(this.fd, b.u8, done, PAGE_SIZE - done, slot * PAGE_SIZE + done);
      if (n === 0) throw new Error(`swap: short read at slot ${slot}`);
      done += n;
    }
    if (this.encrypt || sealed) this.backend.decrypt(this.key, b, 0, b, 0, PAGE_SIZE, slot);
    out.set(b.u8);
    b.u8.fill(0);
  }

  /**
   * Every slot's bytes as they are in the file, freed slots included (a freed
   * slot keeps what was written to it): what someone who reads the swap
   * device sees. `page` is reused for each slot.
   */
  forEachRawSlot(page: Uint8Array, fn: (slot: number, page: Uint8Array) => void): void {
    for (let slot = 0; slot < this.slots; slot++) {
      let done = 0;
      while (done < PAGE_SIZE) {
        const n = readSync(this.fd, page, done, PAGE_SIZE - done, slot * PAGE_SIZE + done);
        if (n === 0) break; // never written: reads as zeros
        done += n;
      }
      page.fill(0, done);
      fn(slot, page);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
