// Designs by name.
import { DESIGN_NAMES, type DesignName, type EncryptionDesign } from './contract.js';
import { DevMktme } from './dev-mktme.js';
import { EncryptMprotect } from './encrypt-mprotect.js';
import { GuestMemfd } from './guest-memfd.js';
import { MadviseEncrypt } from './madvise-encrypt.js';
import { MemfdSecret } from './memfd-secret.js';
import { PlainMmap } from './plain-mmap.js';

const DESIGNS: Record<DesignName, EncryptionDesign> = {
  'plain-mmap': new PlainMmap(),
  'encrypt-mprotect': new EncryptMprotect(),
  'dev-mktme': new DevMktme(),
  'madvise-encrypt': new MadviseEncrypt(),
  'memfd-secret': new MemfdSecret(),
  'guest-memfd': new GuestMemfd(),
};

export function getDesign(name: string): EncryptionDesign {
  if (!Object.hasOwn(DESIGNS, name))
    throw new RangeError(`interface: unknown design '${name}' (expected one of: ${DESIGN_NAMES.join(', ')})`);
  return DESIGNS[name as DesignName];
}

export function allDesigns(): EncryptionDesign[] {
  return DESIGN_NAMES.map((n) => DESIGNS[n]);
}
