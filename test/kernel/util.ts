// Shared set-up for kernel tests: a small machine and a kernel on it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../../hardware/machine.js';
import { ALL_FEATURES, Kernel, type KernelConfig, type KernelFeatures, type Task } from '../../kernel/kernel.js';
import type { SwapConfig } from '../../kernel/swap_device.js';

export interface BootOptions {
  profile?: string;
  backend?: string;
  nodeFrames?: number[];
  daxFrames?: number;
  nrCpus?: number;
  features?: KernelFeatures;
  swapSlots?: number;
  swapEncrypt?: boolean;
  maxMapCount?: number;
  machine?: Machine;
}

export interface Booted {
  m: Machine;
  k: Kernel;
  dir: string;
  /** shut the kernel down and remove temp files */
  done(): void;
}

export function boot(o: BootOptions = {}): Booted {
  const dir = mkdtempSync(join(tmpdir(), 'memcrypt-k-'));
  const m =
    o.machine ??
    Machine.create({
      profile: o.profile ?? 'mktme',
      backend: o.backend ?? 'openssl',
      memory: { nodeFrames: o.nodeFrames ?? [64, 64], daxFrames: o.daxFrames ?? 0 },
      nrCpus: o.nrCpus ?? 1,
    });
  const swap: SwapConfig | null = o.swapSlots ? { path: join(dir, 'swap'), slots: o.swapSlots, encrypt: o.swapEncrypt ?? false } : null;
  const cfg: KernelConfig = { features: o.features ?? ALL_FEATURES, swap, maxMapCount: o.maxMapCount, pgtableSlots: 512 };
  const k = new Kernel(m, cfg);
  return {
    m,
    k,
    dir,
    done() {
      k.shutdown();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const PAGE = 4096;
export const BASE = 0x2_0000_0000;

/** Store 8 bytes of `byte` at va through t's CPU (faulting the page in); asserts it succeeds. */
export function touch(k: Kernel, t: Task, va: number, byte: number): void {
  assert.equal(k.localCpu(t).store(va, new Uint8Array(8).fill(byte), 0, 8), 0);
}

/** The first byte at va through t's CPU; asserts the load succeeds. */
export function read(k: Kernel, t: Task, va: number): number {
  const out = new Uint8Array(8);
  assert.equal(k.localCpu(t).load(va, out, 0, 8), 0);
  return out[0];
}
