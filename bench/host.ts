// The settings of this machine that Linux's mm answers depend on, read from
// /proc, for `replay --host` and the differential test against this kernel.
import { readFileSync } from 'node:fs';
import { defaultOvercommit, type Overcommit } from '../kernel/limits.js';
import type { ReplayHost } from '../kernel/replay.js';

const readNum = (path: string): number => {
  const v = Number(readFileSync(path, 'utf8').trim());
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${path}: not a number: ${readFileSync(path, 'utf8').trim()}`);
  return v;
};

/** MemTotal and SwapTotal of /proc/meminfo, in pages (totalram_pages, total_swap_pages). */
function meminfoPages(): { ram: number; swap: number } {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (m === null) throw new Error(`/proc/meminfo: no ${key}`);
    return Number(m[1]);
  };
  return { ram: Math.floor(kb('MemTotal') / 4), swap: Math.floor(kb('SwapTotal') / 4) };
}

/** vm.overcommit_* of this machine. */
export function hostOvercommit(): Overcommit {
  const { ram, swap } = meminfoPages();
  const mode = readNum('/proc/sys/vm/overcommit_memory');
  if (mode !== 0 && mode !== 1 && mode !== 2) throw new Error(`/proc/sys/vm/overcommit_memory: ${mode}`);
  return {
    ...defaultOvercommit(ram, swap),
    mode,
    ratio: readNum('/proc/sys/vm/overcommit_ratio'),
    kbytes: readNum('/proc/sys/vm/overcommit_kbytes'),
    adminReserveKb: readNum('/proc/sys/vm/admin_reserve_kbytes'),
    userReserveKb: readNum('/proc/sys/vm/user_reserve_kbytes'),
  };
}

/** One soft limit of this process in bytes (Infinity when unlimited), from /proc/self/limits. */
function hostLimit(name: string): number {
  const m = new RegExp(`^${name}\\s+(\\S+)`, 'm').exec(readFileSync('/proc/self/limits', 'utf8'));
  if (m === null) throw new Error(`/proc/self/limits: no "${name}"`);
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/** This process's soft RLIMIT_MEMLOCK in bytes (Infinity when unlimited). */
export const hostMemlock = (): number => hostLimit('Max locked memory');

/**
 * Everything of this machine a replay needs, for a process that runs without
 * CAP_SYS_RAWIO and CAP_IPC_LOCK (as replay_linux.c makes itself) and with the
 * given RLIMIT_MEMLOCK.
 */
export function hostReplaySettings(memlock = hostMemlock()): Required<Omit<ReplayHost, 'rawio'>> & { rawio: false } {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    mmapMinAddr: readNum('/proc/sys/vm/mmap_min_addr'),
    // x86 registers the 1 GiB huge page size when the CPU has it (arch/x86/mm/hugetlbpage.c)
    gigantic: /^flags\s*:.*\bpdpe1gb\b/m.test(cpuinfo),
    // the kernel enabled protection keys (X86_FEATURE_OSPKE): execute-only memory gets its own key
    pku: /^flags\s*:.*\bospke\b/m.test(cpuinfo),
    overcommit: hostOvercommit(),
    memlock,
    as: hostLimit('Max address space'),
    data: hostLimit('Max data size'),
    rawio: false,
  };
}
