// The kernel's memory management on one CPU: faults, keys, swap, migration,
// Device DAX, the config, and random syscall sequences with invariants.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Machine } from '../../hardware/machine.js';
import { asPfn } from '../../hardware/types.js';
import { DAX_PATH } from '../../kernel/dax.js';
import { E } from '../../kernel/errno.js';
import { NO_FEATURES, type Kernel, type Task } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { PG_ANON } from '../../kernel/page_alloc.js';
import { PTE_MIGRATION, PTE_PRESENT, PTE_SWAP, ptePfn, pteKeyid } from '../../kernel/pgtable.js';
import { AT_FDCWD, KEYCTL_INVALIDATE, NR } from '../../kernel/syscalls.js';
import { CAP_SYS_RESOURCE, MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED } from '../../kernel/uapi.js';
import { addKey, BASE, boot, PAGE } from './util.js';

const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
const RW = 3;
const fill = (v: number) => new Uint8Array(PAGE).fill(v);

function mapAnon(k: Kernel, t: Task, pages: number, prot = RW, at = BASE): number {
  const a = k.syscall(t, NR.mmap, at, pages * PAGE, prot, ANON | MAP_FIXED, -1, 0);
  assert.equal(a, at);
  return a;
}

describe('faults and prep_encrypted_page', () => {
  it('first touch allocates, zeroes through the KeyID and flushes the KeyID-0 alias', () => {
    const { k, m, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 4);
    const key = addKey(k, t);
    assert.equal(doMprotect(k, t, BASE, 4 * PAGE, RW, key), 0);
    const out = fill(0xee);
    assert.equal(cpu.load(BASE + 2 * PAGE, out), 0);
    assert.ok(out.every((b) => b === 0));
    assert.equal(cpu.store(BASE, fill(7)), 0);
    const kc = k.counters.snapshot();
    const ec = m.engine.counters.snapshot();
    assert.equal(kc.faults, 2);
    assert.equal(ec.clflush_lines, 2 * 64); // one page flush per prep
    assert.equal(ec.alias_conflicts, 0);
    const pte = k.pool.get(t.mm.pgd, BASE);
    assert.ok(pte & PTE_PRESENT);
    assert.equal(pteKeyid(pte), key.keyid);
    assert.equal(k.alloc.keyid[ptePfn(pte)], key.keyid);
    assert.equal(key.refs, 1 + 1 + 2); // keyring + VMA + 2 pages
    // the frame holds ciphertext; KeyID 0 sees garbage
    const raw = new Uint8Array(PAGE);
    m.engine.read(asPfn(ptePfn(pte)), 0, raw);
    assert.ok(!raw.every((b) => b === 7));
    k.exit(t);
    assert.equal(key.refs, 1);
    assert.equal(k.alloc.freeFrames(), 128);
    done();
  });

  it('SIGSEGV (-EFAULT) on PROT_NONE, on a write to read-only memory, outside any VMA', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2, 0);
    assert.equal(cpu.load(BASE, fill(0)), -E.EFAULT);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, 1), 0);
    assert.equal(cpu.load(BASE, fill(0)), 0);
    assert.equal(cpu.store(BASE, fill(1)), -E.EFAULT);
    assert.equal(cpu.load(BASE + 8 * PAGE, fill(0)), -E.EFAULT);
    assert.equal(k.counters.get('segv'), 3);
    done();
  });

  it('mprotect updates present PTEs and shoots down the TLB', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1);
    assert.equal(cpu.store(BASE, fill(5)), 0);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, 1), 0);
    assert.equal(cpu.store(BASE, fill(6)), -E.EFAULT); // no stale writable TLB entry
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, 0), 0);
    assert.equal(cpu.load(BASE, fill(0)), -E.EFAULT);
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, RW), 0);
    const out = fill(0);
    assert.equal(cpu.load(BASE, out), 0);
    assert.ok(out.every((b) => b === 5)); // protnone kept the frame
    done();
  });

  it('madvise(DONTNEED) drops pages: the next touch reads zeros', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    cpu.store(BASE, fill(9));
    assert.equal(k.syscall(t, NR.madvise, BASE, 2 * PAGE, MADV_DONTNEED), 0);
    const out = fill(1);
    cpu.load(BASE, out);
    assert.ok(out.every((b) => b === 0));
    assert.equal(k.counters.get('pages_zapped'), 1);
    done();
  });

  it('a KeyID change zaps the data ("not preserved across KeyID changes")', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 2);
    cpu.store(BASE, fill(3));
    const key = addKey(k, t);
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    const out = fill(1);
    cpu.load(BASE, out);
    assert.ok(out.every((b) => b === 0));
    assert.deepEqual(
      t.mm.vmas.vmas.map((v) => v.keyid),
      [key.keyid, 0],
    );
    done();
  });
});

describe('mktme key service', () => {
  it('hands out KeyIDs 1..nr_keyids, then ENOKEY; EACCES without the capability', () => {
    const { k, done } = boot();
    const root = k.spawn();
    const serials: number[] = [];
    for (let i = 0; i < 63; i++) serials.push(k.syscall(root, NR.add_key, 'mktme', `k${i}`, 'type=cpu algorithm=aes-xts-128'));
    assert.ok(serials.every((s) => s > 0));
    assert.deepEqual(
      serials.slice(0, 3).map((s) => (k.keys.lookup(s, root.creds) as MktmeKey).keyid),
      [1, 2, 3],
    );
    assert.equal(k.syscall(root, NR.add_key, 'mktme', 'x', 'type=cpu algorithm=aes-xts-128'), -E.ENOKEY);
    const user = k.spawn({ uid: 1000, caps: [] });
    assert.equal(k.syscall(user, NR.add_key, 'mktme', 'x', 'type=cpu algorithm=aes-xts-128'), -E.EACCES);
    const res = k.spawn({ uid: 1000, caps: [CAP_SYS_RESOURCE] });
    assert.equal(k.syscall(res, NR.add_key, 'mktme', 'x', 'type=cpu algorithm=aes-xts-256'), -E.EINVAL);
    assert.equal(k.syscall(res, NR.add_key, 'user', 'x', 'whatever'), -E.ENODEV);
    // another user's key is not visible to it
    assert.equal(k.keys.lookup(serials[0], res.creds), -E.EACCES);
    assert.equal(k.keys.lookup(12345, res.creds), -E.ENOKEY);
    // invalidate frees the KeyID (no other reference), the next add_key gets it back
    assert.equal(k.syscall(root, NR.keyctl, KEYCTL_INVALIDATE, serials[4]), 0);
    const again = k.syscall(root, NR.add_key, 'mktme', 'y', 'type=cpu algorithm=aes-xts-128');
    assert.equal((k.keys.lookup(again, root.creds) as MktmeKey).keyid, 5);
    done();
  });

  it('a KeyID stays in use while VMAs or pages reference it, and is cleared when the last goes', () => {
    const { k, m, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 4);
    const key = addKey(k, t);
    doMprotect(k, t, BASE, 4 * PAGE, RW, key);
    cpu.store(BASE, fill(1));
    assert.equal(k.syscall(t, NR.keyctl, KEYCTL_INVALIDATE, key.serial), 0);
    assert.ok(m.engine.isProgrammed(key.keyid));
    assert.equal(k.keys.keyidsInUse, 1);
    // data still readable: the key lives on through its references
    const out = fill(0);
    cpu.load(BASE, out);
    assert.ok(out.every((b) => b === 1));
    // split: one more VMA reference
    assert.equal(k.syscall(t, NR.mprotect, BASE, PAGE, 1), 0);
    assert.equal(key.refs, 2 + 1);
    assert.equal(k.syscall(t, NR.munmap, BASE, 4 * PAGE), 0);
    assert.equal(key.refs, 0);
    assert.equal(m.engine.isProgrammed(key.keyid), false);
    assert.equal(k.keys.keyidsInUse, 0);
    done();
  });
});

describe('swap', () => {
  for (const encrypt of [false, true]) {
    it(`reclaims under the memory limit and re-encrypts on swap-in (swap encryption ${encrypt ? 'on' : 'off'})`, () => {
      const { k, done } = boot({ swapSlots: 32, swapEncrypt: encrypt });
      const t = k.spawn({ memLimit: 4 });
      const cpu = k.localCpu(t);
      mapAnon(k, t, 8);
      const key = addKey(k, t);
      doMprotect(k, t, BASE, 8 * PAGE, RW, key);
      for (let i = 0; i < 8; i++) assert.equal(cpu.store(BASE + i * PAGE, fill(i + 1)), 0);
      assert.equal(t.mm.rss, 4);
      const c = k.counters.snapshot();
      assert.equal(c.swap_out, 4);
      assert.equal(c.plaintext_exposed_bytes, encrypt ? 0 : 4 * PAGE);
      for (let i = 0; i < 8; i++) {
        const out = fill(0);
        assert.equal(cpu.load(BASE + i * PAGE, out), 0);
        assert.ok(out.every((b) => b === i + 1), `page ${i}`);
      }
      assert.equal(k.counters.get('swap_in'), 8); // each swap-in evicts one of the others
      k.exit(t);
      assert.equal(k.swap!.inUse, 0);
      assert.equal(k.alloc.freeFrames(), 128);
      assert.equal(key.refs, 1);
      done();
    });
  }

  it('cannot swap pages the kernel cannot read (SEV): they are pinned, the fault gets ENOMEM', () => {
    const { k, done } = boot({ profile: 'sev', swapSlots: 32 });
    const t = k.spawn({ memLimit: 4 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 8);
    const key = addKey(k, t);
    doMprotect(k, t, BASE, 8 * PAGE, RW, key);
    let r = 0;
    for (let i = 0; i < 8 && r === 0; i++) r = cpu.store(BASE + i * PAGE, fill(1));
    assert.equal(r, -E.ENOMEM);
    const c = k.counters.snapshot();
    assert.equal(c.swap_out, 0);
    assert.equal(c.pinned_pages, 4);
    assert.equal(c.oom, 1);
    done();
  });

  it('without a swap device reclaim fails and the fault is OOM', () => {
    const { k, done } = boot();
    const t = k.spawn({ memLimit: 2 });
    const cpu = k.localCpu(t);
    mapAnon(k, t, 3);
    assert.equal(cpu.store(BASE, fill(1)), 0);
    assert.equal(cpu.store(BASE + PAGE, fill(1)), 0);
    assert.equal(cpu.store(BASE + 2 * PAGE, fill(1)), -E.ENOMEM);
    done();
  });
});

describe('NUMA migration', () => {
  it('moves encrypted pages between nodes intact (decrypt at old PA, encrypt at new)', () => {
    const { k, m, done } = boot();
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 4);
    const key = addKey(k, t);
    doMprotect(k, t, BASE, 4 * PAGE, RW, key);
    for (let i = 0; i < 4; i++) cpu.store(BASE + i * PAGE, fill(0x40 + i));
    const before = ptePfn(k.pool.get(t.mm.pgd, BASE));
    assert.equal(m.memory.nodeOf(asPfn(before)), 0);
    const status: number[] = [];
    const pages = [0, 1, 2, 3].map((i) => BASE + i * PAGE);
    assert.equal(k.syscall(t, NR.move_pages, 0, pages, [1, 1, 1, 1], status), 0);
    assert.deepEqual(status, [1, 1, 1, 1]);
    const after = ptePfn(k.pool.get(t.mm.pgd, BASE));
    assert.equal(m.memory.nodeOf(asPfn(after)), 1);
    for (let i = 0; i < 4; i++) {
      const out = fill(0);
      cpu.load(BASE + i * PAGE, out);
      assert.ok(out.every((b) => b === 0x40 + i));
    }
    const c = k.counters.snapshot();
    assert.equal(c.migrated, 4);
    assert.equal(key.refs, 2 + 4);
    assert.equal(k.alloc.flags[before] & PG_ANON, 0);
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [7], []), -E.ENODEV);
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE + 9 * PAGE], [0], status), 0);
    assert.equal(status[0], -E.ENOENT);
    done();
  });

  it('answers EBUSY for pages only firmware could move (SEV) and for shared pages', () => {
    const { k, done } = boot({ profile: 'sev' });
    const t = k.spawn();
    const cpu = k.localCpu(t);
    mapAnon(k, t, 1);
    const key = addKey(k, t);
    doMprotect(k, t, BASE, PAGE, RW, key);
    cpu.store(BASE, fill(1));
    const shared = k.syscall(t, NR.mmap, BASE + 4 * PAGE, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    cpu.store(shared, fill(2));
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE, shared], [1, 1], status), 0);
    assert.deepEqual(status, [-E.EBUSY, -E.EBUSY]);
    assert.equal(k.counters.get('migrate_failed'), 2);
    done();
  });
});

describe('Device DAX', () => {
  it('maps the persistent region shared only; contents survive power-off and power-on', () => {
    const b = boot({ daxFrames: 8 });
    const t = b.k.spawn();
    const fd = b.k.syscall(t, NR.openat, AT_FDCWD, DAX_PATH, 2);
    assert.ok(fd >= 3);
    assert.equal(b.k.syscall(t, NR.mmap, 0, 2 * PAGE, RW, MAP_PRIVATE, fd, 0), -E.EINVAL);
    assert.equal(b.k.syscall(t, NR.mmap, 0, 9 * PAGE, RW, MAP_SHARED, fd, 0), -E.EINVAL);
    const a = b.k.syscall(t, NR.mmap, 0, 2 * PAGE, RW, MAP_SHARED, fd, 0);
    assert.ok(a > 0);
    const cpu = b.k.localCpu(t);
    assert.equal(cpu.store(a + PAGE, fill(0x77)), 0);
    assert.ok(t.mm.vmas.maps()[0].endsWith(DAX_PATH));
    b.k.shutdown();
    const img = `${b.dir}/dax.img`;
    b.m.powerOff(img);
    b.m.powerOn(img);
    const b2 = boot({ machine: b.m });
    const t2 = b2.k.spawn();
    const fd2 = b2.k.syscall(t2, NR.openat, AT_FDCWD, DAX_PATH, 2);
    const a2 = b2.k.syscall(t2, NR.mmap, 0, 2 * PAGE, RW, MAP_SHARED, fd2, 0);
    const out = fill(0);
    assert.equal(b2.k.localCpu(t2).load(a2 + PAGE, out), 0);
    assert.ok(out.every((x) => x === 0x77));
    b2.done();
    b.done();
  });
});

describe('kernel config', () => {
  it('absent syscall -> ENOSYS, absent device -> ENOENT, unknown advice -> EINVAL', () => {
    const { k, done } = boot({ features: NO_FEATURES });
    const t = k.spawn();
    mapAnon(k, t, 1);
    assert.equal(k.syscall(t, NR.encrypt_mprotect, BASE, PAGE, RW, 1), -E.ENOSYS);
    assert.equal(k.syscall(t, NR.memfd_secret, 0), -E.ENOSYS);
    assert.equal(k.counters.get('enosys'), 2);
    assert.equal(k.syscall(t, NR.openat, AT_FDCWD, '/dev/mktme', 2), -E.ENOENT);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, 0x4d4b), -E.EINVAL);
    // what a design registers is there
    k.registerSyscall(NR.encrypt_mprotect, () => 0);
    k.registerMadvise(0x4d4b, () => 0);
    assert.equal(k.syscall(t, NR.encrypt_mprotect, BASE, PAGE, RW, 1), 0);
    assert.equal(k.syscall(t, NR.madvise, BASE, PAGE, 0x4d4b), 0);
    done();
  });

  it('refuses machines the PTE format cannot address, naming the argument', () => {
    const m = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [70000] }, nrCpus: 1 });
    assert.throws(() => boot({ machine: m }), /memory: the PTE format holds 65536 frames/);
  });
});

describe('random syscall sequences keep the invariants', () => {
  /** A PTE that holds a frame: present, or protnone (PROT_NONE keeps the frame). */
  const hasFrame = (pte: number) => pte !== 0 && !(pte & (PTE_SWAP | PTE_MIGRATION));

  /** Every allocated frame is owned once: by one PTE (anon) or one file cache. */
  function checkInvariants(k: Kernel, tasks: Task[], keys: MktmeKey[]): void {
    const owners = new Map<number, string>();
    for (const t of tasks) {
      let resident = 0;
      for (const v of t.mm.vmas.vmas) {
        for (let va = v.start; va < v.end; va += PAGE) {
          const pte = k.pool.get(t.mm.pgd, va);
          if (!hasFrame(pte) || v.file !== null) continue;
          const pfn = ptePfn(pte);
          assert.ok(!owners.has(pfn), `frame ${pfn} mapped twice (${owners.get(pfn)} and ${t.pid}:${va})`);
          owners.set(pfn, `${t.pid}:${va}`);
          assert.ok(k.alloc.isAllocated(pfn), `frame ${pfn} mapped but free`);
          assert.equal(k.alloc.keyid[pfn], v.keyid, 'page KeyID matches its VMA');
          resident++;
        }
      }
      assert.equal(resident, t.mm.rss, `rss of ${t.pid}`);
    }
    // key references: keyring (if not invalidated) + VMAs + pages
    for (const key of keys) {
      if (key.refs === 0) continue;
      let refs = key.invalidated ? 0 : 1;
      for (const t of tasks)
        for (const v of t.mm.vmas.vmas) {
          if (v.key !== key) continue;
          refs++;
          for (let va = v.start; va < v.end; va += PAGE) if (hasFrame(k.pool.get(t.mm.pgd, va))) refs++;
        }
      assert.equal(key.refs, refs, `refs of key ${key.serial}`);
    }
  }

  for (let seed = 1; seed <= 12; seed++) {
    it(`seed ${seed}`, () => {
      let s = seed * 0x9e3779b9;
      const rnd = (n: number) => {
        s = (s ^ (s << 13)) >>> 0;
        s = (s ^ (s >>> 17)) >>> 0;
        s = (s ^ (s << 5)) >>> 0;
        return s % n;
      };
      const { k, done } = boot({ swapSlots: 64 });
      const tasks = [k.spawn({ memLimit: 24 }), k.spawn({ memLimit: 24 })];
      const cpus = tasks.map((t) => k.localCpu(t));
      const keys: MktmeKey[] = [];
      for (let step = 0; step < 300; step++) {
        const ti = rnd(2);
        const t = tasks[ti];
        const at = BASE + rnd(48) * PAGE;
        const len = (1 + rnd(8)) * PAGE;
        switch (rnd(9)) {
          case 0:
            k.syscall(t, NR.mmap, at, len, rnd(4), ANON | MAP_FIXED, -1, 0);
            break;
          case 1:
            k.syscall(t, NR.munmap, at, len);
            break;
          case 2:
            k.syscall(t, NR.mprotect, at, len, rnd(4));
            break;
          case 3:
            k.syscall(t, NR.madvise, at, len, MADV_DONTNEED);
            break;
          case 4: {
            if (keys.length < 6) {
              const r = k.syscall(t, NR.add_key, 'mktme', 'r', 'type=cpu algorithm=aes-xts-128');
              if (r > 0) keys.push(k.keys.lookup(r, t.creds) as MktmeKey);
            } else {
              const key = keys[rnd(keys.length)];
              if (!key.invalidated) k.syscall(t, NR.keyctl, KEYCTL_INVALIDATE, key.serial);
            }
            break;
          }
          case 5: {
            const live = keys.filter((x) => !x.invalidated);
            if (live.length) doMprotect(k, t, at, len, RW, live[rnd(live.length)]);
            break;
          }
          case 6:
            k.syscall(t, NR.move_pages, 0, [at, at + PAGE], [rnd(2), rnd(2)], []);
            break;
          default: {
            const v = rnd(200) + 1;
            const r = cpus[ti].store(at, fill(v), 0, 64);
            if (r === 0) {
              const out = new Uint8Array(64);
              assert.equal(cpus[ti].load(at, out, 0, 64), 0);
              assert.ok(out.every((b) => b === v), `read back at step ${step}`);
            }
          }
        }
        if (step % 25 === 0) checkInvariants(k, tasks, keys);
      }
      checkInvariants(k, tasks, keys);
      for (const t of tasks) k.exit(t);
      assert.equal(k.alloc.freeFrames(), 128, 'every frame freed at exit');
      assert.equal(k.swap!.inUse, 0, 'every swap slot freed at exit');
      for (const key of keys) assert.equal(key.refs, key.invalidated ? 0 : 1);
      assert.equal(k.machine.engine.counters.get('alias_conflicts'), 0);
      done();
    });
  }
});
