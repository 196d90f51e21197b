// (c) A pointer-taking call that stacks on any mapping that supports it:
// madvise(ptr, len, MADV_ENCRYPT, key) ("sys_encrypt(ptr)", Dave Hansen and
// Andy Lutomirski in the 2019 thread). Anonymous memory and Device DAX take
// it; other file mappings answer EINVAL. As with encrypt_mprotect, changing a
// range's KeyID drops its anonymous pages; Device-DAX pages stay where they
// are and are read through the new KeyID from then on. A kernel without it
// answers EINVAL to the unknown advice and the program goes on in plaintext:
// "if sys_encrypt is absent, it just works" (Lutomirski).
import { E } from '../kernel/errno.js';
import type { Kernel } from '../kernel/kernel.js';
import { DAX_PATH } from '../kernel/dax.js';
import { zapRange } from '../kernel/memory.js';
import { setVmaKey } from '../kernel/mprotect.js';
import { NR } from '../kernel/syscalls.js';
import { MADV_ENCRYPT, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { EncryptionDesign, addKey, plainAnon, type AllocResult, type KeySpec, type UserEnv } from './contract.js';

const RW = PROT_READ | PROT_WRITE;

export class MadviseEncrypt extends EncryptionDesign {
  readonly name = 'madvise-encrypt' as const;
  readonly feature = 'madv_encrypt' as const;
  readonly summary = 'madvise(ptr, len, MADV_ENCRYPT, key) on any supporting mapping';

  protected installKernel(k: Kernel): void {
    k.registerMadvise(MADV_ENCRYPT, (k, task, vma, start, end, serial) => {
      const key = k.keys.lookup(serial, task.creds);
      if (typeof key === 'number') return key;
      if (!vma.anonymous && vma.file?.path !== DAX_PATH) return -E.EINVAL;
      if (vma.key === key) return 0;
      const vmas = task.mm.vmas;
      const r = vmas.modify(vmas.findIndex(start), start, end, (v) => setVmaKey(v, key));
      if (r < 0) return r;
      zapRange(k, task.mm, start, end);
      return 0;
    });
  }

  /** Careful or naive, the program is the same: nothing depends on the call succeeding. */
  allocate(env: UserEnv, len: number, key: KeySpec, _careful: boolean): AllocResult {
    const addr = plainAnon(env, len, RW);
    if (addr < 0) return { failed: addr };
    const serial = addKey(env, key);
    // The advice is only a request: whether or not it works, the memory works.
    const r = serial < 0 ? serial : env.sys(NR.madvise, addr, len, MADV_ENCRYPT, serial);
    return { addr, len, fd: -1, serial, fallback: r < 0, errno: r < 0 ? r : 0 };
  }

  encryptMapping(env: UserEnv, addr: number, len: number, _fd: number, key: KeySpec): number {
    const serial = addKey(env, key);
    if (serial < 0) return serial;
    return env.sys(NR.madvise, addr, len, MADV_ENCRYPT, serial);
  }
}
