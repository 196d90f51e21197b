// A PTE whose frame number is 0x8000 or above is a negative int32. The CPU
// must take it for a PTE, never for an -errno, whatever its low bits (frame
// 0xffff with KeyID 480 and up and PRESENT|ACCESSED falls in -4095..-1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PTE_ACCESSED, PTE_PRESENT, PTE_WRITE, mkPte, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { boot } from './util.js';

describe('high PTEs', () => {
  it('translate returns the PTE, unsigned, and a load goes to the frame instead of returning it as an errno', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    const va = 0x7000_0000_0000;
    const i = k.pool.pteIndex(t.mm.pgd, va, true);
    const pte = mkPte(0xffff, 500, PTE_PRESENT | PTE_WRITE | PTE_ACCESSED);
    assert.ok((pte | 0) < 0 && (pte | 0) >= -4095, `int32 ${pte | 0}: looks like an errno`);
    Atomics.store(k.pool.words, i, pte);
    const got = cpu.translate(va, false);
    assert.ok(got >= 0);
    assert.equal(ptePfn(got), 0xffff);
    assert.equal(pteKeyid(got), 500);
    // the frame is past this small machine's memory: the engine refuses it,
    // where before the load returned the PTE as if it were an errno
    assert.throws(() => cpu.load(va, new Uint8Array(4096)), /pfn/);
    Atomics.store(k.pool.words, i, 0);
    done();
  });
});
