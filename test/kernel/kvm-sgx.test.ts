// KVM on an SGX machine, or one without a memory encryption engine: no
// confidential VM type, so no memory attributes
// (KVM_SET_MEMORY_ATTRIBUTES needs KVM_GENERIC_MEMORY_ATTRIBUTES, which x86
// selects with KVM_SW_PROTECTED_VM or the SEV/TDX code: ENOTTY without it).
// Found by surviving mutants of the quick mutation run of hardware/
// (profiles.js: the confidentialVm 'none' of sgx and of none -> '').
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';
import { KVM_SET_MEMORY_ATTRIBUTES, KVM_X86_DEFAULT_VM, KVM_X86_SEV_VM, KVM_X86_TDX_VM } from '../../kernel/kvm.js';
import { NR } from '../../kernel/syscalls.js';
import { createVm, sys } from './kvm-util.js';

describe('KVM without confidential VMs', () => {
  for (const profile of ['sgx', 'none']) {
    it(`${profile}: a plain VM only, and no memory attributes (ENOTTY)`, () => {
      const m = Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [32] }, nrCpus: 1 });
      const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256 });
      const t = k.spawn();
      assert.equal(createVm(k, t, KVM_X86_SEV_VM), -E.EINVAL);
      assert.equal(createVm(k, t, KVM_X86_TDX_VM), -E.EINVAL);
      const vm = createVm(k, t, KVM_X86_DEFAULT_VM);
      assert.ok(vm >= 0, `KVM_CREATE_VM: ${vm}`);
      assert.equal(sys(k, t, NR.ioctl, vm, KVM_SET_MEMORY_ATTRIBUTES, [0, 4096, 0, 0]), -E.ENOTTY);
      k.shutdown();
    });
  }
});
