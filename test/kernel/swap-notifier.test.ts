// Swap-out and the mmu notifier: reclaim that moves a page to swap tells the
// mm's notifiers about exactly that page, as try_to_unmap_one() does with
// mmu_notifier_invalidate_range_start() over the one address it unmaps
// (mm/rmap.c). A KVM guest on the VMM's anonymous memory then loses its
// stage-2 mapping of the old frame and faults the page back in from swap.
// Found by a surviving mutant of the quick mutation run at 657b340
// (swap.js 72:23, `va - PAGE_SIZE`: an empty range, so no notifier heard it).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVM_SET_USER_MEMORY_REGION2, KVM_X86_DEFAULT_VM, vmOfFd } from '../../kernel/kvm.js';
import { PTE_PRESENT, PTE_SWAP } from '../../kernel/pgtable.js';
import { NR } from '../../kernel/syscalls.js';
import { anon, createVm, region, sys } from './kvm-util.js';
import { BASE, boot, mapAnon, PAGE, read, touch } from './util.js';

describe('swap-out and the mmu notifier', () => {
  it('reclaim tells the notifiers of exactly the page it swaps out', () => {
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 2 });
    mapAnon(k, t, 3);
    touch(k, t, BASE, 1);
    touch(k, t, BASE + PAGE, 2);
    const heard: number[][] = [];
    t.mm.notifiers.add((s: number, e: number) => heard.push([s, e]));
    touch(k, t, BASE + 2 * PAGE, 3); // over the limit: reclaim swaps one page out
    const swapped = [0, 1].filter((p) => k.pool.get(t.mm.pgd, BASE + p * PAGE) & PTE_SWAP);
    assert.equal(swapped.length, 1, 'one page went to swap');
    const va = BASE + swapped[0]! * PAGE;
    assert.deepEqual(heard, [[va, va + PAGE]]);
    assert.equal(read(k, t, va), swapped[0]! + 1, 'and comes back with its data');
    done();
  });

  it("a guest page of the VMM's memory that reclaim swaps out leaves the guest, which faults it back in from swap", () => {
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 2 });
    const vmfd = createVm(k, t, KVM_X86_DEFAULT_VM);
    assert.ok(vmfd >= 0, `KVM_CREATE_VM: ${vmfd}`);
    const ram = anon(k, t, 1);
    assert.ok(ram > 0, `mmap: ${ram}`);
    touch(k, t, ram, 7);
    assert.equal(sys(k, t, NR.ioctl, vmfd, KVM_SET_USER_MEMORY_REGION2, region(0, 0, 0, PAGE, ram) as never), 0);
    const vm = vmOfFd(t, vmfd)!;
    assert.equal(read(k, vm.guest, 0), 7, 'the guest sees the VMM page');
    assert.ok(vm.guestPte(0) & PTE_PRESENT);
    // two more VMM pages under a limit of two: the guest's page is the oldest, and goes to swap
    const more = anon(k, t, 2);
    touch(k, t, more, 8);
    touch(k, t, more + PAGE, 9);
    assert.ok(k.pool.get(t.mm.pgd, ram) & PTE_SWAP, "the VMM's page is in swap");
    assert.equal(vm.guestPte(0), 0, 'the guest no longer maps the freed frame');
    assert.equal(read(k, vm.guest, 0), 7, 'its next access brings the page back from swap');
    done();
  });
});
