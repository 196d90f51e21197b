// The control: mmap(MAP_PRIVATE|MAP_ANONYMOUS) and nothing else, the memory
// every program uses today. It needs no kernel feature, so it runs the same on
// every kernel and hardware profile, and every design's modelled cost is read
// against it ("what does the protection cost over plain memory?"). On a
// Device-DAX mapping it adds nothing either: the program writes the mapping
// as it is. Its outcome is `plaintext`: there is nothing it claims to protect.
import type { Kernel } from '../kernel/kernel.js';
import { PROT_READ, PROT_WRITE } from '../kernel/uapi.js';
import { EncryptionDesign, plainAnon, type AllocResult, type KeySpec, type UserEnv } from './contract.js';

export class PlainMmap extends EncryptionDesign {
  readonly name = 'plain-mmap' as const;
  readonly feature = null;
  readonly summary = 'control: plain anonymous memory, no encryption';

  protected installKernel(_k: Kernel): void {
    // nothing to install: mmap is in every kernel
  }

  allocate(env: UserEnv, len: number, _key: KeySpec, _careful: boolean): AllocResult {
    const addr = plainAnon(env, len, PROT_READ | PROT_WRITE);
    if (addr < 0) return { failed: addr };
    return { addr, len, fd: -1, serial: 0, fallback: false, errno: 0 };
  }

  /** The mapping stays as it is. */
  encryptMapping(): number {
    return 0;
  }
}
