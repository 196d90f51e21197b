// Survivors of the quick mutation run in kernel/keys.ts (the mktme key type):
// the payload's syntax, no-encrypt keys, a key PCONFIG refuses, wiping the
// user's key bytes, who may look a key up and who may invalidate it, and the
// reference counts that keep a KeyID until its last page is gone.
import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { asPfn } from '../../hardware/types.js';
import { E } from '../../kernel/errno.js';
import type { Kernel, Task } from '../../kernel/kernel.js';
import type { MktmeKey } from '../../kernel/keys.js';
import { doMprotect } from '../../kernel/mprotect.js';
import { ptePfn } from '../../kernel/pgtable.js';
import { KEYCTL_INVALIDATE, NR } from '../../kernel/syscalls.js';
import { CAP_SYS_RESOURCE, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE } from '../../kernel/uapi.js';
import { BASE, PAGE, boot } from './util.js';

const RW = 3;
const CPU_KEY = 'type=cpu algorithm=aes-xts-128';
const HEX = '00112233445566778899aabbccddeeff0f1e2d3c4b5a69788796a5b4c3d2e1f0'; // 64 hex digits, halves differ

const addKey = (k: Kernel, t: Task, payload: string) => k.syscall(t, NR.add_key, 'mktme', 'test', payload);
const invalidate = (k: Kernel, t: Task, serial: number) => k.syscall(t, NR.keyctl, KEYCTL_INVALIDATE, serial);

/** owner: uid 1000 with CAP_SYS_RESOURCE (enough for add_key); other: uid 1001, no caps; admin: uid 1002, CAP_SYS_ADMIN */
function users(k: Kernel) {
  return {
    owner: k.spawn({ uid: 1000, caps: [CAP_SYS_RESOURCE] }),
    other: k.spawn({ uid: 1001, caps: [] }),
    admin: k.spawn({ uid: 1002 }),
  };
}

describe('mktme keys (keys.ts)', () => {
  it('the payload: blank runs and surrounding blanks separate options; a duplicate, unknown or "="-less option is EINVAL', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.keys.nrKeyids, 63);
    assert.ok(addKey(k, t, `  type=cpu \t algorithm=aes-xts-128   \n`) > 0);
    assert.ok(addKey(k, t, `type=user   algorithm=aes-xts-128\tkey=${HEX}`) > 0);
    assert.equal(k.keys.keyidsInUse, 2);
    const bad = [
      `${CPU_KEY} type=cpu`, // the same option twice
      `${CPU_KEY} algorithm=aes-xts-128`,
      `${CPU_KEY} perma`, // no '='
      `${CPU_KEY} =view`, // no name
      `${CPU_KEY} foo=bar`, // unknown option
      `type=no-encrypt key=${HEX}`, // no-encrypt takes no key
      `${CPU_KEY} key=${HEX}`, // a CPU-generated key takes none either
      `type=other algorithm=aes-xts-128 key=${HEX}`, // no such key type
      'type=user algorithm=aes-xts-128', // a user key needs its key
      `type=user algorithm=aes-xts-128 key=${HEX}0`, // 65 hex digits
      `type=user algorithm=aes-xts-128 key=0${HEX}`,
      `type=user algorithm=aes-xts-128 key=${HEX.slice(1)}`, // 63
    ];
    for (const p of bad) assert.equal(addKey(k, t, p), -E.EINVAL, p);
    assert.equal(k.keys.keyidsInUse, 2, 'a refused payload takes no KeyID');
    done();
  });

  it('with every KeyID in use a bad payload is still EINVAL, a good one ENOKEY (key_create_or_update: preparse runs before instantiate takes the KeyID)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    for (let i = 0; i < 63; i++) assert.ok(addKey(k, t, CPU_KEY) > 0);
    assert.equal(addKey(k, t, `${CPU_KEY} foo=bar`), -E.EINVAL);
    assert.equal(addKey(k, t, CPU_KEY), -E.ENOKEY);
    done();
  });

  it('type=no-encrypt programs its KeyID to store plaintext: a page written through it is the plain bytes in memory', () => {
    const { k, m, done } = boot();
    const t = k.spawn();
    const serial = addKey(k, t, 'type=no-encrypt');
    assert.ok(serial > 0);
    const key = k.keys.lookup(serial, t.creds) as MktmeKey;
    assert.equal(m.engine.isProgrammed(key.keyid), false);
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    const cpu = k.localCpu(t);
    assert.equal(cpu.store(BASE, new Uint8Array(PAGE).fill(0x5a)), 0);
    const raw = new Uint8Array(PAGE);
    m.engine.read(asPfn(ptePfn(k.pool.get(t.mm.pgd, BASE))), 0, raw);
    assert.ok(raw.every((b) => b === 0x5a));
    // a CPU key for comparison: ciphertext in memory
    const ck = k.keys.lookup(addKey(k, t, CPU_KEY), t.creds) as MktmeKey;
    assert.equal(m.engine.isProgrammed(ck.keyid), true);
    done();
  });

  it('a user key PCONFIG refuses (equal XTS halves) is EINVAL and leaves its KeyID free', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const half = HEX.slice(0, 32);
    assert.equal(addKey(k, t, `type=user algorithm=aes-xts-128 key=${half}${half}`), -E.EINVAL);
    assert.equal(k.keys.keyidsInUse, 0);
    const key = k.keys.lookup(addKey(k, t, CPU_KEY), t.creds) as MktmeKey;
    assert.equal(key.keyid, 1, 'the first KeyID is still free');
    done();
  });

  it("the user's key bytes are wiped from the kernel's copy once PCONFIG has them, and the key still works", () => {
    const { k, m, done } = boot();
    const t = k.spawn();
    const seen: Uint8Array[] = [];
    const program = m.engine.program.bind(m.engine);
    mock.method(m.engine, 'program', (keyid: number, cmd: never, key?: Uint8Array) => {
      if (key) seen.push(key);
      program(keyid, cmd, key);
    });
    const serial = addKey(k, t, `type=user algorithm=aes-xts-128 key=${HEX}`);
    mock.restoreAll();
    assert.ok(serial > 0);
    assert.equal(seen.length, 1);
    assert.equal(seen[0].length, 32);
    assert.ok(seen[0].every((b) => b === 0), 'no key byte left in the buffer');
    const key = k.keys.lookup(serial, t.creds) as MktmeKey;
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), BASE);
    assert.equal(doMprotect(k, t, BASE, PAGE, RW, key), 0);
    const cpu = k.localCpu(t);
    assert.equal(cpu.store(BASE, new Uint8Array(PAGE).fill(9)), 0);
    const out = new Uint8Array(PAGE);
    assert.equal(cpu.load(BASE, out), 0);
    assert.ok(out.every((b) => b === 9));
    done();
  });

  it('lookup: the owner needs no capability; another user gets EACCES unless the key has perm=view or they have CAP_SYS_ADMIN', () => {
    const { k, done } = boot();
    const { owner, other, admin } = users(k);
    const s = addKey(k, owner, CPU_KEY);
    const sv = addKey(k, owner, `${CPU_KEY} perm=view`);
    const sn = addKey(k, owner, 'type=no-encrypt perm=view');
    const su = addKey(k, owner, `type=user algorithm=aes-xts-128 key=${HEX} perm=view`);
    assert.ok(s > 0 && sv > 0 && sn > 0 && su > 0);
    const key = k.keys.lookup(s, owner.creds) as MktmeKey;
    assert.equal(typeof key, 'object', 'the owner, without CAP_SYS_ADMIN');
    assert.equal(key.serial, s);
    assert.equal(k.keys.lookup(s, other.creds), -E.EACCES);
    assert.equal(k.keys.lookup(s, admin.creds), key);
    for (const v of [sv, sn, su]) assert.equal((k.keys.lookup(v, other.creds) as MktmeKey).serial, v, 'perm=view');
    assert.equal(k.keys.lookup(s + 1000, owner.creds), -E.ENOKEY);
    done();
  });

  it('keyctl(KEYCTL_INVALIDATE): an unknown serial is ENOKEY for anyone; a viewable key of another user is EACCES; owner and CAP_SYS_ADMIN may', () => {
    const { k, done } = boot();
    const { owner, other, admin } = users(k);
    const sv = addKey(k, owner, `${CPU_KEY} perm=view`);
    const s2 = addKey(k, owner, CPU_KEY);
    const s3 = addKey(k, owner, CPU_KEY);
    // two errors at once (not found, and no permission): lookup_user_key() fails with ENOKEY before any permission check
    assert.equal(invalidate(k, other, 0x7fff_0000), -E.ENOKEY);
    assert.equal(invalidate(k, owner, 0x7fff_0000), -E.ENOKEY);
    assert.equal(invalidate(k, admin, 0x7fff_0000), -E.ENOKEY);
    // found and visible to other (perm=view), but viewing is not invalidating
    assert.equal(invalidate(k, other, sv), -E.EACCES);
    assert.equal(k.keys.keyidsInUse, 3);
    assert.equal((k.keys.lookup(sv, owner.creds) as MktmeKey).invalidated, false);
    // not visible to other: the lookup refuses first
    assert.equal(invalidate(k, other, s2), -E.EACCES);
    assert.equal(invalidate(k, owner, s2), 0, 'the owner, without CAP_SYS_ADMIN');
    assert.equal(invalidate(k, admin, s3), 0, "CAP_SYS_ADMIN, someone else's key");
    assert.equal(invalidate(k, owner, sv), 0);
    assert.equal(k.keys.keyidsInUse, 0);
    assert.equal(invalidate(k, owner, sv), -E.ENOKEY, 'gone from the keyring');
    done();
  });

  it('a KeyID stays while pages hold it after the last other reference; the last page frees it; references on a dead key are kernel bugs', () => {
    const { k, m, done } = boot();
    const t = k.spawn();
    const serial = addKey(k, t, CPU_KEY);
    const key = k.keys.lookup(serial, t.creds) as MktmeKey;
    key.getPage();
    key.getPage();
    assert.equal(key.refs, 3);
    assert.equal(invalidate(k, t, serial), 0);
    assert.equal(key.refs, 2);
    assert.equal(k.keys.keyOf(key.keyid), key, 'two pages still use the KeyID');
    assert.equal(m.engine.isProgrammed(key.keyid), true);
    key.putPage();
    assert.equal(k.keys.keyOf(key.keyid), key, 'one page still uses the KeyID');
    assert.equal(m.engine.isProgrammed(key.keyid), true);
    key.putPage();
    assert.equal(k.keys.keyOf(key.keyid), null);
    assert.equal(m.engine.isProgrammed(key.keyid), false, 'cleared with PCONFIG');
    assert.equal(key.refs, 0);
    const s = `${serial}`;
    assert.throws(() => key.get(), new Error(`keys: get on dead key ${s}`));
    assert.throws(() => key.getPage(), new Error(`keys: get on dead key ${s}`));
    assert.throws(() => key.put(), new Error(`keys: put on dead key ${s}`));
    assert.throws(() => key.putPage(), new Error(`keys: page put on key ${s} without page references`));
    assert.equal(key.refs, 0);
    assert.equal(k.keys.keyidsInUse, 0);
    done();
  });
});
