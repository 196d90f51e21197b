// dax-stacking: map Device DAX (/dev/dax0.0) and ask the design to encrypt
// that mapping with a user key. Every round the CPUs write and verify it.
// The counting round also power-cycles the machine between the write and the
// read-back: the persistent region goes to a real file (which must hold no
// plaintext), a new kernel boots, the program maps the device again with the
// same key, and the CPUs must read their data back. One op = one page.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PAGE_SIZE } from '../hardware/types.js';
import { NO_LEAK, plaintextPages } from '../interfaces/conformance.js';
import { randomKeyBytes, userKey } from '../interfaces/contract.js';
import { DAX_PATH } from '../kernel/dax.js';
import { AT_FDCWD, NR } from '../kernel/syscalls.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import type { CellSession } from './session.js';
import type { Workload } from './workload.js';
import { leaksOf, observe, roundSeed, sumDone } from './workload.js';

const O_RDWR = 2;

/**
 * Each cell's DAX key: CSPRNG bytes, the same after its power cycle, held in
 * memory only (never derived from the seed, which the CSV records).
 */
const daxKeys = new WeakMap<CellSession, Uint8Array>();

/** Map the DAX device and stack the design's encryption on it: 0, -errno, or 1 when the design has no such call. */
function mapEncrypted(s: CellSession): number {
  const len = s.pages * PAGE_SIZE;
  const fd = s.env.sys(NR.openat, AT_FDCWD, DAX_PATH, O_RDWR);
  if (fd < 0) return fd;
  const addr = s.env.sys(NR.mmap, 0, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr < 0) return addr;
  let key = daxKeys.get(s);
  if (key === undefined) daxKeys.set(s, (key = randomKeyBytes()));
  const r = s.design.encryptMapping(s.env, addr, len, fd, userKey(key));
  if (r === null) return 1;
  if (r < 0) return r;
  s.region = { addr, len, fd, serial: 0, fallback: false, errno: 0 };
  return 0;
}

export const daxStacking: Workload = {
  name: 'dax-stacking',
  description: 'encryption stacked on a Device-DAX mapping, across a power cycle',
  op: 'page',
  kernels: ['patched'],
  pages: 32,
  swap: false,
  dax: true,
  memLimit: () => Infinity,
  setup: async (s) => mapEncrypted(s),
  async round(s, n, counting) {
    const seed = roundSeed(s.cfg.seed, n);
    let a = s.region!;
    if (!counting) {
      const d = sumDone(await s.runCpus({ round: n, addr: a.addr, seed, passes: 1, verifyOnly: false, writeOnly: false }));
      return { ops: s.pages, errors: d.errors, fault: d.fault, errno: 0, refused: false, fallback: false, observed: null, leaks: NO_LEAK, detail: '' };
    }
    const w = sumDone(await s.runCpus({ round: n, addr: a.addr, seed, passes: 1, verifyOnly: false, writeOnly: true }));
    const observed = observe(s, a.addr, seed, true);
    if (w.fault < 0)
      return { ops: s.pages, errors: 0, fault: w.fault, errno: 0, refused: false, fallback: false, observed, leaks: NO_LEAK, detail: 'write failed' };
    const image = join(s.cfg.workdir, 'dax.img');
    await s.powerCycle(image);
    const bytes = readFileSync(image);
    const leaked = plaintextPages(bytes, s.pages, seed);
    // what reached the persistent medium in the clear counts as exposed, as
    // plaintext written to swap does (swap.ts)
    s.k.count('plaintext_exposed_bytes', leaked * PAGE_SIZE);
    const leaks = leaksOf(s, [seed], true, bytes);
    const r = mapEncrypted(s);
    if (r !== 0)
      return { ops: s.pages, errors: 0, fault: 0, errno: r, refused: true, fallback: false, observed, leaks, detail: 'could not map again after power-on' };
    a = s.region!;
    const v = sumDone(await s.runCpus({ round: n, addr: a.addr, seed, passes: 1, verifyOnly: true, writeOnly: false }));
    return {
      ops: s.pages,
      errors: v.errors,
      fault: v.fault,
      errno: 0,
      refused: false,
      fallback: false,
      observed,
      leaks,
      detail: `${leaked} pages in plaintext in the DAX image; ${v.errors} read back wrong after power-on`,
    };
  },
};
