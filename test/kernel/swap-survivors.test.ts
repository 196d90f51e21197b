// Survivors of the quick mutation run in kernel/swap.ts and
// kernel/swap_device.ts. The device on its own (no kernel): the slot count
// check and its message, slot allocation and the check of freeSlot, pages in
// their slots of the file (as is, encrypted, sealed; the defaults unsealed),
// pages written in pieces when the file takes fewer bytes per call, reads that
// meet the end of a truncated file, forEachRawSlot, close (once, the file
// removed, even on fd 0), and the swap key's two different XTS halves. Then
// reclaim on a kernel, where every count is exact: swappable per profile and
// KeyID, the clock's second chance and where its hand stays between two
// reclaims, mlocked pages skipped, a full device (ENOMEM, nothing lost), and
// swap-in's single encryption of the page. One test, marked todo, shows a
// known bug: reclaim drops PROT_NONE pages from the LRU (see it). File system
// and randomness are played by node:test mocks of node:fs and node:crypto
// (made visible to the module's named imports with syncBuiltinESMExports).
// No test measures time.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs, { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it, mock } from 'node:test';
import type { XtsBackend } from '../../hardware/backend.js';
import { getBackend } from '../../hardware/xts.js';
import { E } from '../../kernel/errno.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PTE_ACCESSED, PTE_PRESENT, PTE_SWAP } from '../../kernel/pgtable.js';
import { swappable } from '../../kernel/swap.js';
import { SwapDevice } from '../../kernel/swap_device.js';
import { NR } from '../../kernel/syscalls.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_LOCKED, MAP_PRIVATE, PROT_NONE, PROT_READ, PROT_WRITE } from '../../kernel/uapi.js';
import { BASE, PAGE, addKey, boot, mapAnon } from './util.js';

const RW = PROT_READ | PROT_WRITE;
const backend = getBackend('openssl');

/** A page whose every byte is its index plus seed (mod 256): no two pages of a test alike. */
const pageOf = (seed: number) => Uint8Array.from({ length: PAGE }, (_, i) => (i + seed) & 0xff);

let dir = '';
before(() => (dir = mkdtempSync(join(tmpdir(), 'memcrypt-swap-'))));
after(() => rmSync(dir, { recursive: true, force: true }));
let nth = 0;
const open = (slots: number, encrypt = false, b: XtsBackend = backend) => {
  const path = join(dir, `swap${nth++}`);
  return { dev: SwapDevice.open({ path, slots, encrypt }, b), path };
};

/** Replace fs[name] (and what the modules' named imports of node:fs see) with fn. */
function mockFs<K extends 'writeSync' | 'readSync' | 'closeSync'>(name: K, fn: (typeof fs)[K]): void {
  mock.method(fs, name, fn as never);
  syncBuiltinESMExports();
}

function restoreMocks(): void {
  mock.restoreAll();
  syncBuiltinESMExports();
}

describe('swap_device.ts: slots', () => {
  it('SwapDevice.open wants an integer number of slots in [1, 65535] and says so', () => {
    for (const slots of [0, -1, 1.5, 65536, NaN])
      assert.throws(() => open(slots), { name: 'RangeError', message: `swap.slots: expected an integer in [1, 65535], got ${slots}` });
    for (const slots of [1, 65535]) {
      const { dev, path } = open(slots);
      assert.equal(dev.slots, slots);
      assert.equal(statSync(path).size, slots * PAGE, 'the file holds every slot');
      dev.close();
    }
  });

  it('allocSlot hands out the lowest free slot and -1 when all are in use; freeing a slot not in use throws, naming it', () => {
    const { dev } = open(3);
    assert.deepEqual([dev.allocSlot(), dev.allocSlot(), dev.allocSlot()], [0, 1, 2]);
    assert.equal(dev.allocSlot(), -1);
    assert.equal(dev.inUse, 3);
    dev.freeSlot(1);
    assert.equal(dev.inUse, 2);
    assert.throws(() => dev.freeSlot(1), { name: 'Error', message: 'swap: freeing slot 1 which is not in use' });
    assert.equal(dev.inUse, 2, 'a double free changes nothing');
    assert.equal(dev.allocSlot(), 1);
    assert.equal(dev.allocSlot(), -1);
    dev.close();
  });
});

describe('swap_device.ts: pages in the file', () => {
  afterEach(restoreMocks);

  it('without swap encryption a page lands in its slot of the file as is, and comes back; writePage and readPage default to unsealed', () => {
    const { dev, path } = open(3);
    assert.equal(dev.writePage(1, pageOf(1)), PAGE, 'a whole page of plaintext reached the file');
    const file = readFileSync(path);
    assert.deepEqual(file.subarray(PAGE, 2 * PAGE), Buffer.from(pageOf(1)));
    assert.ok(file.subarray(0, PAGE).every((b) => b === 0) && file.subarray(2 * PAGE).every((b) => b === 0), 'the other slots are untouched');
    const out = new Uint8Array(PAGE);
    dev.readPage(1, out);
    assert.deepEqual(out, pageOf(1));
    dev.close();
  });

  it('encrypted swap and sealed pages keep the plaintext out of the file and give it back', () => {
    const enc = open(2, true);
    assert.equal(enc.dev.writePage(0, pageOf(2)), 0);
    const plain = open(2);
    assert.equal(plain.dev.writePage(1, pageOf(3), true), 0, 'a sealed blob is stored encrypted on plain swap too');
    for (const [{ dev, path }, slot, seed] of [[enc, 0, 2], [plain, 1, 3]] as const) {
      const raw = readFileSync(path).subarray(slot * PAGE, (slot + 1) * PAGE);
      assert.notDeepEqual(raw, Buffer.from(pageOf(seed)));
      const out = new Uint8Array(PAGE);
      dev.readPage(slot, out, slot === 1);
      assert.deepEqual(out, pageOf(seed));
      dev.close();
    }
  });

  it('a page is written and read in pieces when the file takes at most 1000 bytes per call', () => {
    const { dev, path } = open(3);
    const realWrite = fs.writeSync;
    const realRead = fs.readSync;
    const piece = (off: number, len: number, size: number): number => {
      if (off < 0 || len < 0 || off + len > size) throw new RangeError(`offset ${off} + length ${len} > ${size}`);
      return Math.min(len, 1000);
    };
    mockFs('writeSync', ((fd: number, b: Uint8Array, off: number, len: number, pos: number) =>
      realWrite(fd, b, off, piece(off, len, b.length), pos)) as never);
    mockFs('readSync', ((fd: number, b: Uint8Array, off: number, len: number, pos: number) =>
      realRead(fd, b, off, piece(off, len, b.length), pos)) as never);
    dev.writePage(2, pageOf(4));
    const out = new Uint8Array(PAGE);
    dev.readPage(2, out);
    assert.deepEqual(out, pageOf(4));
    const seen: Uint8Array[] = [];
    dev.forEachRawSlot(new Uint8Array(PAGE), (_, page) => seen.push(page.slice()));
    restoreMocks();
    assert.deepEqual(readFileSync(path).subarray(2 * PAGE), Buffer.from(pageOf(4)));
    assert.deepEqual(seen[2], pageOf(4));
    assert.ok(seen[0].every((b) => b === 0));
    dev.close();
  });

  it('a file cut short: readPage fails naming the slot; forEachRawSlot shows what is there and zeros after it, slot by slot', () => {
    const { dev, path } = open(3);
    dev.writePage(0, pageOf(5));
    dev.writePage(1, pageOf(6));
    truncateSync(path, PAGE + PAGE / 2); // someone cut the file in the middle of slot 1
    // a read at the end of the file gets 0 bytes; a reader that tried again and again would never end
    const realRead = fs.readSync;
    let atEnd = 0;
    mockFs('readSync', ((fd: number, b: Uint8Array, off: number, len: number, pos: number) => {
      const n = realRead(fd, b, off, len, pos);
      if (n === 0 && ++atEnd > 50) throw new Error('read at the end of the file again and again');
      return n;
    }) as never);
    const out = new Uint8Array(PAGE);
    assert.throws(() => dev.readPage(1, out), { message: 'swap: short read at slot 1' });
    assert.throws(() => dev.readPage(2, out), { message: 'swap: short read at slot 2' });
    dev.readPage(0, out);
    assert.deepEqual(out, pageOf(5));
    const seen: [number, Uint8Array][] = [];
    dev.forEachRawSlot(new Uint8Array(PAGE).fill(0xee), (slot, page) => seen.push([slot, page.slice()]));
    assert.deepEqual(seen.map(([slot]) => slot), [0, 1, 2], 'every slot once');
    assert.deepEqual(seen[0][1], pageOf(5));
    const half = pageOf(6);
    half.fill(0, PAGE / 2);
    assert.deepEqual(seen[1][1], half, 'the half that is left, then zeros');
    assert.ok(seen[2][1].every((b) => b === 0), 'a slot past the end reads as zeros');
    dev.close();
  });
});

describe('swap_device.ts: close and the key', () => {
  afterEach(restoreMocks);

  it('close closes the file once and removes it; a second close does nothing', () => {
    const { dev, path } = open(1);
    const realClose = fs.closeSync;
    const closed: number[] = [];
    mockFs('closeSync', ((fd: number) => {
      closed.push(fd);
      if (closed.length === 1) realClose(fd); // only the device's own
    }) as never);
    dev.close();
    assert.equal(existsSync(path), false, 'the swap file is gone');
    assert.equal(closed.length, 1);
    assert.ok(closed[0] > 2, 'its own descriptor');
    dev.close();
    assert.equal(closed.length, 1, 'nothing more is closed');
  });

  it('a swap device on file descriptor 0 (stdin closed) is closed and removed too', () => {
    const path = join(dir, 'swap-fd0');
    const url = (p: string) => new URL(p, import.meta.url).href;
    const child = `
      import { closeSync, existsSync, openSync } from 'node:fs';
      const { SwapDevice } = await import(${JSON.stringify(url('../../kernel/swap_device.js'))});
      const { getBackend } = await import(${JSON.stringify(url('../../hardware/xts.js'))});
      closeSync(0);
      const dev = SwapDevice.open({ path: ${JSON.stringify(path)}, slots: 1, encrypt: false }, getBackend('openssl'));
      const held = openSync('/dev/null', 'r'); // 0 is taken: by the device
      dev.close();
      console.log(JSON.stringify({ held, next: openSync('/dev/null', 'r'), exists: existsSync(${JSON.stringify(path)}) }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { held: number; next: number; exists: boolean };
    assert.ok(got.held > 0);
    assert.deepEqual([got.next, got.exists], [0, false], 'descriptor 0 was closed and the file removed');
  });

  it('the swap key\'s two XTS halves differ: a draw with equal halves is drawn again, a draw equal but in one byte is kept; the key bytes are wiped', () => {
    const same = Buffer.alloc(32);
    for (let i = 0; i < 16; i++) same[i] = same[16 + i] = i;
    const oneByte = Buffer.from(same);
    oneByte[31] = 99; // the halves differ in their last byte only
    const other = Buffer.from(Array.from({ length: 32 }, (_, i) => 100 + i));
    const draws = [same, oneByte, other];
    let drawn = 0;
    mock.method(crypto, 'randomBytes', ((n: number) => {
      assert.equal(n, 32);
      return Buffer.from(draws[drawn++]);
    }) as never);
    syncBuiltinESMExports();
    const imported: Uint8Array[] = [];
    let given: Uint8Array | null = null;
    const spy: XtsBackend = Object.assign(Object.create(backend) as XtsBackend, {
      importKey(k: Uint8Array) {
        given = k;
        imported.push(k.slice());
        return backend.importKey(k);
      },
    });
    const { dev } = open(1, true, spy);
    restoreMocks();
    assert.equal(drawn, 2);
    assert.deepEqual(imported, [new Uint8Array(oneByte)]);
    assert.ok(given !== null && (given as Uint8Array).every((b) => b === 0), 'the bytes handed to importKey are wiped');
    dev.close();
  });
});

/** PTE of t at page p of BASE. */
const pte = (k: Kernel, t: Task, p: number) => k.pool.get(t.mm.pgd, BASE + p * PAGE);
const swapped = (k: Kernel, t: Task, p: number) => (pte(k, t, p) & (PTE_SWAP | PTE_PRESENT)) === PTE_SWAP;
const present = (k: Kernel, t: Task, p: number) => (pte(k, t, p) & PTE_PRESENT) !== 0;

describe('swap.ts: what can be swapped', () => {
  it('swappable: every KeyID where the kernel re-encrypts (MKTME) or seals (SGX); only KeyID 0 where it cannot read (SEV, TDX); nothing without swap', () => {
    for (const [profile, keyed] of [['mktme', true], ['sgx', true], ['sev', false], ['tdx', false]] as const) {
      const { k, done } = boot({ profile, swapSlots: 1 });
      assert.equal(swappable(k, 0), true, `${profile}, KeyID 0`);
      assert.equal(swappable(k, 1), keyed, `${profile}, KeyID 1`);
      done();
    }
    const { k, done } = boot();
    assert.equal(swappable(k, 0), false);
    assert.equal(swappable(k, 1), false);
    done();
  });

  it('on SEV a page without a key is swapped out at the memory limit', () => {
    const { k, done } = boot({ profile: 'sev', swapSlots: 4 });
    const t = k.spawn({ memLimit: 1 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    assert.equal(cpu.store(BASE, pageOf(7)), 0);
    assert.equal(cpu.store(BASE + PAGE, pageOf(8)), 0);
    assert.equal(k.counters.get('swap_out'), 1);
    assert.ok(swapped(k, t, 0));
    const out = new Uint8Array(PAGE);
    assert.equal(cpu.load(BASE, out), 0);
    assert.deepEqual(out, pageOf(7));
    done();
  });
});

describe('swap.ts: reclaim', () => {
  it('the clock gives accessed pages a second chance, swaps out one page per page wanted, and its hand stays where it stopped', () => {
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 4 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 8);
    for (let p = 0; p < 4; p++) assert.equal(cpu.store(BASE + p * PAGE, pageOf(p)), 0);
    assert.deepEqual(t.mm.lru, [0, 1, 2, 3].map((p) => BASE + p * PAGE));
    // at the limit: one page wanted; the first turn clears every accessed bit, the second takes page 0
    assert.equal(cpu.store(BASE + 4 * PAGE, pageOf(4)), 0);
    assert.equal(k.counters.get('swap_out'), 1);
    assert.ok(swapped(k, t, 0));
    for (const p of [1, 2, 3]) assert.equal(pte(k, t, p) & (PTE_PRESENT | PTE_ACCESSED), PTE_PRESENT, `page ${p}: present, accessed bit cleared`);
    assert.equal(t.mm.rss, 4);
    assert.deepEqual(t.mm.lru, [1, 2, 3, 4].map((p) => BASE + p * PAGE));
    // page 1 is used again; the hand stands at it: it keeps its page, page 2 goes
    assert.equal(cpu.store(BASE + PAGE, pageOf(11)), 0);
    assert.equal(cpu.store(BASE + 5 * PAGE, pageOf(5)), 0);
    assert.equal(k.counters.get('swap_out'), 2);
    assert.ok(swapped(k, t, 2) && present(k, t, 1) && present(k, t, 3));
    assert.equal(k.swap!.inUse, 2);
    assert.equal(t.mm.rss, 4);
    // everything reads back
    const out = new Uint8Array(PAGE);
    for (const [p, seed] of [[0, 0], [1, 11], [2, 2], [3, 3], [4, 4], [5, 5]]) {
      assert.equal(cpu.load(BASE + p * PAGE, out), 0);
      assert.deepEqual(out, pageOf(seed), `page ${p}`);
    }
    assert.equal(k.counters.get('oom'), 0);
    done();
  });

  it('a page a fault has just mapped is accessed already: reclaim before the access retries takes an older page, and a swap-in is accessed too', () => {
    // x86 vm_page_prot carries _PAGE_ACCESSED (pgtable.ts pageProt). Without
    // it, a second CPU's fault could evict the page between the first CPU's
    // fault and its retry; two CPUs under one limit did so thousands of times
    // in a round. k.fault is the kernel's half of a fault, without the retry.
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 2 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 3);
    assert.equal(cpu.store(BASE, pageOf(0)), 0);
    assert.equal(k.fault(t, BASE + PAGE, true), 0);
    assert.equal(pte(k, t, 1) & (PTE_PRESENT | PTE_ACCESSED), PTE_PRESENT | PTE_ACCESSED, 'first touch: accessed on arrival');
    // at the limit: the clock clears page 0's bit and page 1's, and takes page 0 on its second turn
    assert.equal(k.fault(t, BASE + 2 * PAGE, true), 0);
    assert.equal(k.counters.get('swap_out'), 1);
    assert.ok(swapped(k, t, 0), 'page 0 is the one swapped out');
    assert.ok(present(k, t, 1), 'page 1 stays for the access that faulted it');
    assert.equal(k.fault(t, BASE, false), 0); // swap-in of page 0
    assert.equal(k.counters.get('swap_in'), 1);
    assert.equal(pte(k, t, 0) & (PTE_PRESENT | PTE_ACCESSED), PTE_PRESENT | PTE_ACCESSED, 'swap-in: accessed on arrival');
    const out = new Uint8Array(PAGE);
    assert.equal(cpu.load(BASE, out), 0);
    assert.deepEqual(out, pageOf(0));
    done();
  });

  it('mlocked pages are never swapped out: the clock skips them and takes the next page', () => {
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 3 });
    const cpu = k.localCpu(t);
    // two locked pages, populated by mmap; then three plain ones
    assert.equal(k.syscall(t, NR.mmap, BASE, 2 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_LOCKED, -1, 0), BASE);
    assert.equal(k.syscall(t, NR.mmap, BASE + 2 * PAGE, 3 * PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE + 2 * PAGE);
    assert.equal(t.mm.rss, 2);
    assert.equal(cpu.store(BASE + 2 * PAGE, pageOf(2)), 0);
    assert.equal(cpu.store(BASE + 3 * PAGE, pageOf(3)), 0);
    assert.equal(k.counters.get('swap_out'), 1);
    assert.ok(present(k, t, 0) && present(k, t, 1) && swapped(k, t, 2));
    assert.deepEqual(t.mm.lru, [0, 1, 3].map((p) => BASE + p * PAGE));
    assert.equal(cpu.store(BASE + 4 * PAGE, pageOf(4)), 0);
    assert.equal(k.counters.get('swap_out'), 2);
    assert.ok(present(k, t, 0) && present(k, t, 1) && swapped(k, t, 3));
    assert.equal(k.counters.get('oom'), 0);
    done();
  });

  it('when the swap device is full, reclaim stops: the fault fails with ENOMEM and the resident pages stay', () => {
    const { k, done } = boot({ swapSlots: 1 });
    const t = k.spawn({ memLimit: 1 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 3);
    assert.equal(cpu.store(BASE, pageOf(0)), 0);
    assert.equal(cpu.store(BASE + PAGE, pageOf(1)), 0);
    assert.ok(swapped(k, t, 0));
    assert.equal(k.swap!.inUse, 1);
    assert.equal(cpu.store(BASE + 2 * PAGE, pageOf(2)), -E.ENOMEM);
    assert.equal(k.counters.get('oom'), 1);
    assert.equal(k.counters.get('swap_out'), 1);
    assert.ok(present(k, t, 1));
    assert.equal(pte(k, t, 2), 0);
    assert.equal(t.mm.rss, 1);
    assert.deepEqual(t.mm.lru, [BASE + PAGE]);
    const out = new Uint8Array(PAGE);
    assert.equal(cpu.load(BASE + PAGE, out), 0);
    assert.deepEqual(out, pageOf(1));
    done();
  });

  it('a page comes back from swap with one encryption through its KeyID: the new frame is not cleared first', () => {
    const { k, m, done } = boot({ swapSlots: 4 });
    const t = k.spawn({ memLimit: 1 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    assert.equal(doMprotect(k, t, BASE, 2 * PAGE, RW, addKey(k, t)), 0);
    assert.equal(cpu.store(BASE, pageOf(9)), 0);
    assert.equal(cpu.store(BASE + PAGE, pageOf(10)), 0);
    assert.ok(swapped(k, t, 0));
    const enc = m.engine.counters.get('pages_encrypted');
    const out = new Uint8Array(PAGE);
    assert.equal(cpu.load(BASE, out), 0); // swaps page 1 out (a decryption) and page 0 in
    assert.deepEqual(out, pageOf(9));
    assert.equal(k.counters.get('swap_in'), 1);
    assert.equal(m.engine.counters.get('pages_encrypted') - enc, 1);
    done();
  });

  // Known bug (reported, not fixed): reclaim takes an LRU entry whose PTE is
  // not present for a page that is gone and drops it, but a PROT_NONE page
  // keeps its frame with PRESENT cleared (mprotect.ts). Such a page is dropped
  // from the LRU while it still counts in rss: it is never swapped out, not
  // even after it is made accessible again, and the mm goes OOM with swap
  // free. Linux keeps PROT_NONE pages on the LRU and reclaims them.
  it('a PROT_NONE page can be swapped out: an mm at its limit with such pages does not go OOM while swap has room', () => {
    const { k, done } = boot({ swapSlots: 8 });
    const t = k.spawn({ memLimit: 2 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 3);
    assert.equal(cpu.store(BASE, pageOf(0)), 0);
    assert.equal(cpu.store(BASE + PAGE, pageOf(1)), 0);
    assert.equal(k.syscall(t, NR.mprotect, BASE, 2 * PAGE, PROT_NONE), 0);
    try {
      assert.equal(cpu.store(BASE + 2 * PAGE, pageOf(2)), 0);
      assert.equal(k.counters.get('swap_out'), 1);
      assert.equal(k.syscall(t, NR.mprotect, BASE, 2 * PAGE, RW), 0);
      const out = new Uint8Array(PAGE);
      for (const p of [0, 1, 2]) {
        assert.equal(cpu.load(BASE + p * PAGE, out), 0, `page ${p}`);
        assert.deepEqual(out, pageOf(p));
      }
    } finally {
      done();
    }
  });
});
