// Survivors of the quick mutation rerun of kernel/ at d2db032 (report
// /work/mutwork/saves/chunkE/mutation.json; review
// test/mutation-review/kernel-final-e.md).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { ALL_FEATURES, Kernel } from '../../kernel/kernel.js';

describe('kernel.ts: configuration', () => {
  it('vm.mmap_min_addr may be 0; a negative or fractional value is refused with a message naming it', () => {
    const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [16] }, nrCpus: 1 });
    const k = new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, mmapMinAddr: 0 });
    assert.equal(k.mmapMinAddr, 0);
    k.shutdown();
    for (const bad of [-4096, -1, 4096.5, Number.NaN])
      assert.throws(
        () => new Kernel(m, { features: ALL_FEATURES, pgtableSlots: 256, mmapMinAddr: bad }),
        (e: Error) => e instanceof RangeError && e.message === `mmapMinAddr: expected an integer in [0, 140737488351232], got ${bad}`,
        String(bad),
      );
  });
});
