// guestRam, the RAM a VMM (QEMU) gives its guest through each design, when a
// step fails: the first failing call's -errno comes back as { failed }, as
// QEMU exits on it, and the guest gets no RAM. Found by surviving mutants
// of the quick mutation run at d2db032 (guest-memfd.js: every `failed`
// return had no test; review test/mutation-review/interfaces-final.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { CPU_KEY, DESIGN_NAMES, type GuestRam } from '../../interfaces/contract.js';
import { allDesigns, getDesign } from '../../interfaces/registry.js';
import { E } from '../../kernel/errno.js';
import { ALL_FEATURES, Kernel, type SpawnOptions } from '../../kernel/kernel.js';
import { KVM_CREATE_VM, KVM_MEMORY_ENCRYPT_OP, KVM_PATH, KVM_SEV_INIT2, KVM_X86_DEFAULT_VM, KVM_X86_SEV_ES_VM, KVM_X86_SEV_VM, KVM_X86_SNP_VM } from '../../kernel/kvm.js';
import { AT_FDCWD, NR } from '../../kernel/syscalls.js';

const P = 4096;

function vmm(profile: string, spawn: SpawnOptions = {}) {
  const m = Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [96, 96] }, nrCpus: 1 });
  const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256 });
  for (const d of allDesigns()) d.install(k);
  const t = k.spawn(spawn);
  const env = { sys: (nr: number, ...a: never[]) => k.syscall(t, nr, ...a), cpu: k.localCpu(t) };
  const vm = (type: number) => {
    const kvm = env.sys(NR.openat, AT_FDCWD as never, KVM_PATH as never, 2 as never);
    assert.ok(kvm >= 0, `open ${KVM_PATH}: ${kvm}`);
    const fd = env.sys(NR.ioctl, kvm as never, KVM_CREATE_VM as never, type as never);
    assert.ok(fd >= 0, `KVM_CREATE_VM ${type}: ${fd}`);
    // as QEMU's sev-guest object does before any RAM block (sev_kvm_init)
    if (type === KVM_X86_SEV_VM || type === KVM_X86_SEV_ES_VM || type === KVM_X86_SNP_VM) assert.equal(env.sys(NR.ioctl, fd as never, KVM_MEMORY_ENCRYPT_OP as never, [KVM_SEV_INIT2] as never), 0);
    return fd;
  };
  return { k, t, env, vm };
}

const failed = (r: GuestRam | { readonly failed: number }) => ('failed' in r ? r.failed : 0);

describe('guestRam when a step fails', () => {
  it('a size that is not a page multiple: guest_memfd refuses it (EINVAL); the other designs\' helpers round or refuse it', () => {
    const { env, vm, k } = vmm('sev');
    const d = getDesign('guest-memfd');
    assert.equal(failed(d.guestRam(env, vm(KVM_X86_SNP_VM), KVM_X86_SNP_VM, 4 * P + 1, CPU_KEY)), -E.EINVAL);
    assert.equal(failed(d.guestRam(env, vm(KVM_X86_DEFAULT_VM), KVM_X86_DEFAULT_VM, 0, CPU_KEY)), -E.EINVAL);
    k.shutdown();
  });

  it('no address space for the VMM\'s side (RLIMIT_AS 0): ENOMEM from every design, for every VM type it makes', () => {
    for (const d of DESIGN_NAMES) {
      for (const type of [KVM_X86_DEFAULT_VM, getDesign(d).vmType('sev')]) {
        const { env, vm, k } = vmm('sev', { rlimits: { as: 0 } });
        assert.equal(failed(getDesign(d).guestRam(env, vm(type), type, 4 * P, CPU_KEY)), -E.ENOMEM, `${d} type ${type}`);
        k.shutdown();
      }
    }
  });

  it('memslot 0 already taken by another RAM block: the second block\'s KVM_SET_USER_MEMORY_REGION2 fails, for every design', () => {
    for (const d of DESIGN_NAMES) {
      const { env, vm, k } = vmm('mktme');
      const fd = vm(KVM_X86_DEFAULT_VM);
      const first = getDesign(d).guestRam(env, fd, KVM_X86_DEFAULT_VM, 4 * P, CPU_KEY);
      assert.equal(failed(first), 0, `${d}: the first block`);
      const second = failed(getDesign(d).guestRam(env, fd, KVM_X86_DEFAULT_VM, 8 * P, CPU_KEY));
      assert.ok(second === -E.EINVAL || second === -E.EEXIST, `${d}: the second block: ${second}`);
      k.shutdown();
    }
  });

  it('guest-memfd: memory attributes the VM does not support (PRIVATE on a plain VM) fail the RAM with EINVAL', () => {
    const { env, vm, k } = vmm('sev');
    // guestRam told the VM is SNP while it is a plain VM: every step before the attributes works
    assert.equal(failed(getDesign('guest-memfd').guestRam(env, vm(KVM_X86_DEFAULT_VM), KVM_X86_SNP_VM, 4 * P, CPU_KEY)), -E.EINVAL);
    k.shutdown();
  });

  it('an SEV or SEV-ES guest whose VMM may not lock memory (RLIMIT_MEMLOCK 0, no CAP_IPC_LOCK): REG_REGION cannot pin the RAM (ENOMEM); memfd_secret\'s own mmap already fails (EAGAIN)', () => {
    for (const type of [KVM_X86_SEV_VM, KVM_X86_SEV_ES_VM]) {
      const got: Record<string, number> = {};
      for (const d of DESIGN_NAMES) {
        if (getDesign(d).vmType('sev') !== KVM_X86_SEV_VM) continue;
        const { env, vm, k } = vmm('sev', { caps: [], rlimits: { memlock: 0 } });
        got[d] = failed(getDesign(d).guestRam(env, vm(type), type, 4 * P, CPU_KEY));
        k.shutdown();
      }
      // sev_pin_memory: locked > RLIMIT_MEMLOCK without CAP_IPC_LOCK is -ENOMEM (arch/x86/kvm/svm/sev.c);
      // secretmem_mmap: !mlock_future_ok is -EAGAIN (mm/secretmem.c)
      assert.deepEqual(got, {
        'plain-mmap': -E.ENOMEM,
        'encrypt-mprotect': -E.ENOMEM,
        'dev-mktme': -E.ENOMEM,
        'madvise-encrypt': -E.ENOMEM,
        'memfd-secret': -E.EAGAIN,
      }, `type ${type}`);
    }
  });
});
