// Physical memory: one SharedArrayBuffer of 4 KiB frames, shared by every
// simulated CPU (worker thread). RAM frames come first, split into NUMA nodes
// in order; the Device-DAX (persistent) region follows the RAM. Frames hold
// exactly what the memory chips would: ciphertext for keyed frames.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dataBuf, type DataBuf } from './backend.js';
import { PAGE_SIZE, checkUint, type Pfn } from './types.js';

export interface NumaNode {
  readonly id: number;
  readonly startPfn: number;
  readonly nrFrames: number;
}

export interface MemoryConfig {
  /** Frames per NUMA node, e.g. [4096, 4096] for two nodes of 16 MiB. */
  readonly nodeFrames: readonly number[];
  /** Frames of persistent Device-DAX memory after the RAM (0 for none). */
  readonly daxFrames?: number;
}

export interface MemoryDescriptor {
  readonly config: MemoryConfig;
  readonly sab: SharedArrayBuffer;
}

/** Hard cap on the simulated RAM, so a typo cannot ask for 100 GiB. */
export const MAX_FRAMES = 1 << 20; // 4 GiB

export class PhysicalMemory {
  readonly config: MemoryConfig;
  readonly sab: SharedArrayBuffer;
  /** All frames as bytes and as LE words; frame pfn starts at byte pfn * PAGE_SIZE. */
  readonly buf: DataBuf;
  readonly nodes: readonly NumaNode[];
  readonly ramFrames: number;
  readonly daxStart: number;
  readonly daxFrames: number;
  readonly nrFrames: number;

  private constructor(config: MemoryConfig, sab: SharedArrayBuffer) {
    this.config = config;
    this.sab = sab;
    this.buf = dataBuf(new Uint8Array(sab));
    let start = 0;
    this.nodes = config.nodeFrames.map((n, id) => {
      const node = { id, startPfn: start, nrFrames: n };
      start += n;
      return node;
    });
    this.ramFrames = start;
    this.daxStart = start;
    this.daxFrames = config.daxFrames ?? 0;
    this.nrFrames = start + this.daxFrames;
  }

  static create(config: MemoryConfig): PhysicalMemory {
    if (!Array.isArray(config.nodeFrames) || config.nodeFrames.length === 0)
      throw new RangeError('nodeFrames: expected a non-empty array of frame counts');
    let total = 0;
    config.nodeFrames.forEach((n, i) => (total += checkUint(`nodeFrames[${i}]`, n, MAX_FRAMES)));
    total += checkUint('daxFrames', config.daxFrames ?? 0, MAX_FRAMES);
    if (total === 0 || total > MAX_FRAMES) throw new RangeError(`nodeFrames: total frames must be in [1, ${MAX_FRAMES}], got ${total}`);
    const cfg: MemoryConfig = { nodeFrames: [...config.nodeFrames], daxFrames: config.daxFrames ?? 0 };
    return new PhysicalMemory(cfg, new SharedArrayBuffer(total * PAGE_SIZE));
  }

  /** Map the same memory in another thread. */
  static attach(d: MemoryDescriptor): PhysicalMemory {
    return new PhysicalMemory(d.config, d.sab);
  }

  descriptor(): MemoryDescriptor {
    return { config: this.config, sab: this.sab };
  }

  /** Throw naming the argument unless pfn is a frame of this memory. */
  checkPfn(pfn: number, name = 'pfn'): Pfn {
    checkUint(name, pfn, this.nrFrames - 1);
    return pfn as Pfn;
  }

  nodeOf(pfn: Pfn): number {
    for (const n of this.nodes) if (pfn >= n.startPfn && pfn < n.startPfn + n.nrFrames) return n.id;
    return -1; // DAX
  }

  isDax(pfn: Pfn): boolean {
    return pfn >= this.daxStart && pfn < this.nrFrames;
  }

  /** The DAX region's bytes (a view, empty without DAX). */
  daxBytes(): Uint8Array {
    return this.buf.u8.subarray(this.daxStart * PAGE_SIZE, this.nrFrames * PAGE_SIZE);
  }

  /**
   * Power off the persistent region: write its bytes (ciphertext as stored)
   * to `path` atomically (temp file, fsync, rename), then lose the volatile
   * copy. RAM contents are lost too, as on a real power cycle.
   */
  powerOffDax(path: string): void {
    const bytes = this.daxBytes();
    const tmp = `${path}.tmp-${randomBytes(6).toString('hex')}`;
    const fd = openSync(tmp, 'w', 0o600); // a memory image: the owner's only
    try {
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
    this.buf.u8.fill(0);
  }

  /** Power on: load the persistent region from `path` if it exists (else it starts zeroed). */
  powerOnDax(path: string): boolean {
    const bytes = this.daxBytes();
    if (!existsSync(path)) {
      bytes.fill(0);
      return false;
    }
    const size = statSync(path).size;
    if (size !== bytes.length)
      throw new RangeError(`dax: ${path} holds ${size} bytes, the region has ${bytes.length} (${this.daxFrames} frames)`);
    bytes.set(readFileSync(path));
    return true;
  }
}
