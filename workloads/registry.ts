// Workloads by name.
import { daxStacking } from './dax-stacking.js';
import { enosysFallback } from './enosys-fallback.js';
import { fault } from './fault.js';
import { keyExhaustion } from './key-exhaustion.js';
import { migration } from './migration.js';
import { qemuGuest, qemuNvdimm } from './qemu.js';
import { swap } from './swap.js';
import { WORKLOAD_NAMES, type Workload, type WorkloadName } from './workload.js';

const WORKLOADS: Record<WorkloadName, Workload> = {
  fault,
  'enosys-fallback': enosysFallback,
  swap,
  migration,
  'dax-stacking': daxStacking,
  'qemu-guest': qemuGuest,
  'qemu-nvdimm': qemuNvdimm,
  'key-exhaustion': keyExhaustion,
};

export function getWorkload(name: string): Workload {
  if (!Object.hasOwn(WORKLOADS, name))
    throw new RangeError(`workload: unknown workload '${name}' (expected one of: ${WORKLOAD_NAMES.join(', ')})`);
  return WORKLOADS[name as WorkloadName];
}

export function allWorkloads(): Workload[] {
  return WORKLOAD_NAMES.map((n) => WORKLOADS[n]);
}
