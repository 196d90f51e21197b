// key-exhaustion: more processes than the hardware has keys (MKTME's 63
// KeyIDs, SEV's ASIDs, TDX's HKIDs: HardwareProfile.nrKeyids), each wanting
// its own. All live at once; each asks through the design's careful helper,
// writes a page and keeps it; then all release and exit, and every key is
// cleared again (PCONFIG per program and per clear, flushes of the keyed
// pages: the churn a round costs). One op = one process.
//
// What the rest see, per the sources (../shared/research-qemu-guestmemfd.md
// §3): add_key("mktme") answers ENOKEY when no KeyID is free (2019 RFC,
// mktme_instantiate_key), and the careful helpers fall back to plaintext
// memory (none of them shares a key through keyring permissions or waits);
// a VMM whose VM needs a key (guest-memfd: an SNP or TDX guest) gets EBUSY
// from sev_asid_new or ENOSPC from tdx_guest_keyid_alloc, and QEMU exits:
// that VM does not run. Designs that use no key (memfd_secret, the control,
// a guest_memfd VM where the CPU has no confidential VMs) never run out.
import { PAGE_SIZE } from '../hardware/types.js';
import { NO_LEAK, observeFrames, patternPage } from '../interfaces/conformance.js';
import { CPU_KEY, type Allocation, type UserEnv } from '../interfaces/contract.js';
import type { Task } from '../kernel/kernel.js';
import { isConfidential } from '../kernel/kvm.js';
import { createVm } from './qemu.js';
import type { CellSession } from './session.js';
import type { RoundReport, Workload } from './workload.js';
import { roundSeed } from './workload.js';

/** Processes beyond the profile's keys. */
export const EXTRA_PROCS = 8;
export const procsFor = (nrKeyids: number): number => nrKeyids + EXTRA_PROCS;

interface Proc {
  readonly task: Task;
  readonly env: UserEnv;
  readonly alloc: Allocation | null;
}

async function round(s: CellSession, n: number, counting: boolean): Promise<RoundReport> {
  const k = s.k;
  const design = s.design;
  const nproc = procsFor(k.machine.profile.nrKeyids);
  const seed = roundSeed(s.cfg.seed, n);
  const page = new Uint8Array(PAGE_SIZE);
  const procs: Proc[] = [];
  let encrypted = 0, secret = 0, fellBack = 0, refused = 0, errno = 0, fault = 0;
  for (let i = 0; i < nproc; i++) {
    const task = k.spawn({ memLimit: Infinity });
    const env: UserEnv = { sys: (nr, ...a) => k.syscall(task, nr, ...a), cpu: k.localCpu(task) };
    if (design.vmOnly) {
      // a VMM: its guest needs the VM's own key (QEMU's sev_kvm_init / tdx_kvm_init)
      const type = design.vmType(k.machine.profile.confidentialVm);
      const r = createVm(env, type);
      if (r < 0) {
        refused++;
        errno ||= r;
      } else if (isConfidential(type)) encrypted++;
      procs.push({ task, env, alloc: null });
      continue;
    }
    const a = design.allocate(env, PAGE_SIZE, { description: `proc-${i}`, payload: CPU_KEY.payload }, true);
    if ('failed' in a) {
      refused++;
      errno ||= a.failed;
      procs.push({ task, env, alloc: null });
      continue;
    }
    procs.push({ task, env, alloc: a });
    if (a.fallback) {
      fellBack++;
      errno ||= a.errno;
    }
    const ps = (seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0; // this process's data
    patternPage(ps, 0, page);
    const w = env.cpu.store(a.addr, page, 0, PAGE_SIZE);
    if (w < 0) {
      fault ||= w;
      continue;
    }
    const seen = observeFrames(k, task, a.addr, 1, ps);
    if (seen === 'encrypted') encrypted++;
    else if (seen === 'secret') secret++;
  }
  // every process gives its memory and key back, and exits
  for (const p of procs) {
    if (p.alloc !== null) design.release(p.env, p.alloc);
    k.exit(p.task);
  }
  const observed = encrypted === nproc ? 'encrypted' : secret === nproc ? 'secret' : 'plaintext';
  return {
    ops: nproc,
    errors: 0,
    fault,
    errno,
    refused: refused > 0,
    fallback: fellBack > 0,
    observed: counting ? observed : null,
    leaks: NO_LEAK,
    detail: `${encrypted} of ${nproc} processes got encrypted memory; ${fellBack} fell back, ${refused} refused`,
    procs: { total: nproc, encrypted },
  };
}

export const keyExhaustion: Workload = {
  name: 'key-exhaustion',
  description: 'more processes than keys, each wanting its own',
  op: 'process',
  kernels: ['patched'],
  guest: true,
  pages: 1,
  swap: false,
  dax: false,
  memLimit: () => Infinity,
  maxThreads: 1, // the processes run on the boot CPU
  frames: (keys) => procsFor(keys) + 64,
  // each process: its top level (32 slots) and a few tables
  pgtableSlots: (keys) => procsFor(keys) * 40 + 256,
  setup: async () => 0,
  round,
};
