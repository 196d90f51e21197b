// Shared set-up for kernel tests: a small machine and a kernel on it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Machine } from '../../hardware/machine.js';
import { ALL_FEATURES, Kernel, type KernelConfig, type KernelFeatures } from '../../kernel/kernel.js';
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
