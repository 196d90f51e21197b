// (a) encrypt_mprotect(addr, len, prot, key_serial): the MKTME RFC's syscall
// ("[PATCH, RFC 00/62] Intel MKTME enabling", May 2019). Checks, in order:
// len not page-aligned -> EINVAL (plain mprotect rounds up); key lookup ->
// ENOKEY or EACCES; any VMA in the range not anonymous -> EINVAL, before any
// change; then mprotect's own errors. Changing the KeyID zaps the pages.
// Intended use: mmap(PROT_NONE), then encrypt_mprotect(..., RW, key).
// Without the syscall a naive program touches PROT_NONE memory and gets
// SIGSEGV ("programs need a fallback because they'll segfault", Lutomirski).
import { E } from '../kernel/errno.js';
import type { Kernel } from '../kernel/kernel.js';
import type { MktmeKey } from '../kernel/keys.js';
import { doMprotect } from '../kernel/mprotect.js';
import { NR } from '../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { EncryptionDesign, addKey, fallbackAlloc, type AllocResult, type KeySpec, type UserEnv } from './contract.js';

const RW = PROT_READ | PROT_WRITE;

export class EncryptMprotect extends EncryptionDesign {
  readonly name = 'encrypt-mprotect' as const;
  readonly feature = 'encrypt_mprotect' as const;
  readonly summary = 'mprotect-style syscall taking a key serial (MKTME RFC)';

  protected installKernel(k: Kernel): void {
    k.registerSyscall(NR.encrypt_mprotect, (k, task, start, len, prot, serial) => {
      const s = Number(start), l = Number(len);
      if (l % 4096 !== 0) return -E.EINVAL;
      const key = k.keys.lookup(Number(serial), task.creds);
      if (typeof key === 'number') return key;
      if ((key as MktmeKey).keyid === 0) return -E.EINVAL; // no hardware KeyID
      // anonymous memory only, checked over the whole range before any change
      for (let i = task.mm.vmas.findIndex(s); i < task.mm.vmas.vmas.length; i++) {
        const v = task.mm.vmas.vmas[i];
        if (v.start >= s + l) break;
        if (!v.anonymous) return -E.EINVAL;
      }
      return doMprotect(k, task, s, l, Number(prot), key);
    });
  }

  allocate(env: UserEnv, len: number, key: KeySpec, careful: boolean): AllocResult {
    const serial = addKey(env, key);
    if (serial < 0 && careful) return fallbackAlloc(env, len, serial, serial);
    const addr = env.sys(NR.mmap, 0, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (addr < 0) return { failed: addr };
    const r = env.sys(NR.encrypt_mprotect, addr, len, RW, serial);
    if (r < 0) {
      if (!careful) return { addr, len, fd: -1, serial, fallback: false, errno: r }; // left PROT_NONE
      const m = env.sys(NR.mprotect, addr, len, RW);
      if (m < 0) return { failed: m };
      return { addr, len, fd: -1, serial, fallback: true, errno: r };
    }
    return { addr, len, fd: -1, serial, fallback: false, errno: 0 };
  }

  encryptMapping(env: UserEnv, addr: number, len: number, _fd: number, key: KeySpec): number {
    const serial = addKey(env, key);
    if (serial < 0) return serial;
    return env.sys(NR.encrypt_mprotect, addr, len, RW, serial);
  }
}
