// Which engines take a key from software (PCONFIG SET_KEY_DIRECT exists on
// MKTME only; SEV's keys come from the PSP, SGX's EPC key and TDX's HKID keys
// from the CPU, MODEL-FACTS.md), stated per profile rather than read back
// from the profile table. Found by surviving mutants of the quick mutation run
// of hardware/ (profiles.js keyFromSoftware: false -> true).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { KeyProgram } from '../../hardware/engine.js';
import { Machine } from '../../hardware/machine.js';
import { PAGE_SIZE, asPfn } from '../../hardware/types.js';

const mk = (profile: string) => Machine.create({ profile, backend: 'openssl', memory: { nodeFrames: [8], daxFrames: 0 }, nrCpus: 1 });

describe('a key from software', () => {
  it('MKTME takes one: the page is stored encrypted and reads back', () => {
    const m = mk('mktme');
    m.engine.program(1, KeyProgram.SET_KEY_DIRECT, Uint8Array.from(randomBytes(32)));
    assert.equal(m.engine.isProgrammed(1), true);
    const pt = Uint8Array.from(randomBytes(PAGE_SIZE));
    m.engine.write(asPfn(2), 1, pt);
    assert.notDeepEqual(m.memory.buf.u8.slice(2 * PAGE_SIZE, 3 * PAGE_SIZE), pt);
  });

  for (const profile of ['sev', 'sgx', 'tdx']) {
    it(`${profile} refuses one and its KeyID stays unprogrammed; it takes a random key`, () => {
      const m = mk(profile);
      assert.throws(
        () => m.engine.program(1, KeyProgram.SET_KEY_DIRECT, Uint8Array.from(randomBytes(32))),
        (e: Error) => e.message === `engine: ${profile} takes no key from software`,
      );
      assert.equal(m.engine.isProgrammed(1), false);
      m.engine.program(1, KeyProgram.SET_KEY_RANDOM);
      assert.equal(m.engine.isProgrammed(1), true);
    });
  }
});
