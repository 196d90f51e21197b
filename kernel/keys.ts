// The mktme key type and its KeyID allocator (MKTME RFC, security/keys/mktme_keys.c).
//
// add_key("mktme", name, "type=cpu algorithm=aes-xts-128") programs a free
// KeyID with a CPU-generated key (PCONFIG SET_KEY_RANDOM); "type=user
// algorithm=aes-xts-128 key=<64 hex>" programs a key the user supplies
// (SET_KEY_DIRECT), which is what lets persistent memory be read again after
// a power cycle. Keys map 1:1 to KeyIDs, first free slot in 1..nr_keyids.
// References: one for the keyring, one per encrypted VMA (taken on split and
// dup, dropped on unmap) and one per 4 KiB page (prep/free_encrypted_page).
// Page references are counted per KeyID in shared memory, because a CPU that
// handles its own fault (fastfault.ts) takes one without entering the kernel;
// it may, since the VMA it faults on holds a reference that keeps the key.
// keyctl(KEYCTL_INVALIDATE) drops the keyring's; when the last reference goes,
// the KeyID is cleared with PCONFIG and becomes free.
import { KeyProgram, type MemoryEncryptionEngine } from '../hardware/engine.js';
import { E } from './errno.js';
import { CAP_SYS_ADMIN, CAP_SYS_RESOURCE } from './uapi.js';
import type { VmaKeyRef } from './vma.js';

export interface KeyOwner {
  readonly uid: number;
  readonly caps: ReadonlySet<number>;
}

export class MktmeKey implements VmaKeyRef {
  /** references other than pages': the keyring's, VMAs', a driver's */
  private own = 1;
  invalidated = false;

  constructor(
    private readonly service: KeyService,
    readonly serial: number,
    readonly description: string,
    readonly keyid: number,
    readonly uid: number,
    /** KEY_OTH_VIEW: may other users look this key up? */
    readonly othersMayView: boolean,
  ) {}

  /** All references: the keyring's, VMAs', drivers' and one per page. */
  get refs(): number {
    return this.own + this.service.pageRefs[this.keyid];
  }

  get(): void {
    if (this.refs <= 0) throw new Error(`keys: get on dead key ${this.serial}`);
    this.own++;
  }

  put(): void {
    if (this.own <= 0) throw new Error(`keys: put on dead key ${this.serial}`);
    if (--this.own === 0 && this.service.pageRefs[this.keyid] === 0) this.service.release(this);
  }

  /** A page's reference (prep_encrypted_page). */
  getPage(): void {
    if (this.refs <= 0) throw new Error(`keys: get on dead key ${this.serial}`);
    Atomics.add(this.service.pageRefs, this.keyid, 1);
  }

  /** A page's reference dropped (free_encrypted_page). */
  putPage(): void {
    const pages = this.service.pageRefs;
    if (Atomics.load(pages, this.keyid) <= 0) throw new Error(`keys: page put on key ${this.serial} without page references`);
    if (Atomics.sub(pages, this.keyid, 1) === 1 && this.own === 0) this.service.release(this);
  }
}

export class KeyService {
  /** page references per KeyID, in shared memory (CPUs faulting on their own add to it) */
  readonly pageRefs: Int32Array;
  private readonly byKeyid: (MktmeKey | null)[];
  private readonly keyring = new Map<number, MktmeKey>();
  private nextSerial = 0x1000_0001;
  private readonly onProgram: () => void;

  constructor(
    private readonly engine: MemoryEncryptionEngine,
    onProgram: () => void = () => {},
  ) {
    this.byKeyid = new Array<MktmeKey | null>(engine.nrKeyids + 1).fill(null);
    this.pageRefs = new Int32Array(new SharedArrayBuffer((engine.nrKeyids + 1) * 4));
    this.onProgram = onProgram;
  }

  get nrKeyids(): number {
    return this.engine.nrKeyids;
  }

  /** KeyIDs in use (by live or invalidated-but-referenced keys). */
  get keyidsInUse(): number {
    return this.byKeyid.filter((k) => k !== null).length;
  }

  /** add_key(2) for the "mktme" type: the new key's serial, or -errno. */
  addKey(type: string, description: string, payload: string, who: KeyOwner): number {
    if (type !== 'mktme') return -E.ENODEV; // no such key type
    if (!who.caps.has(CAP_SYS_RESOURCE) && !who.caps.has(CAP_SYS_ADMIN)) return -E.EACCES;
    const opts = parsePayload(payload);
    if (opts === null) return -E.EINVAL;
    if (this.engine.nrKeyids === 0) return -E.ENODEV; // no MKTME on this CPU
    const keyid = this.freeKeyid();
    if (keyid === 0) return -E.ENOKEY;
    try {
      if (opts.key) this.engine.program(keyid, KeyProgram.SET_KEY_DIRECT, opts.key);
      else if (opts.noEncrypt) this.engine.program(keyid, KeyProgram.NO_ENCRYPT);
      else this.engine.program(keyid, KeyProgram.SET_KEY_RANDOM);
    } catch {
      return -E.EINVAL; // PCONFIG refused the key (e.g. equal XTS halves)
    } finally {
      opts.key?.fill(0);
    }
    this.onProgram();
    const key = new MktmeKey(this, this.nextSerial++, description, keyid, who.uid, opts.othersMayView);
    this.byKeyid[keyid] = key;
    this.keyring.set(key.serial, key);
    return key.serial;
  }

  /** The first free KeyID in 1..nr_keyids, or 0. */
  private freeKeyid(): number {
    for (let k = 1; k <= this.engine.nrKeyids; k++) if (this.byKeyid[k] === null) return k;
    return 0;
  }

  /** Look a key up for use (KEY_NEED_VIEW): the key, or -ENOKEY / -EACCES. */
  lookup(serial: number, who: KeyOwner): MktmeKey | number {
    const key = this.keyring.get(serial);
    if (key === undefined) return -E.ENOKEY;
    if (key.uid !== who.uid && !key.othersMayView && !who.caps.has(CAP_SYS_ADMIN)) return -E.EACCES;
    return key;
  }

  /**
   * A VM's key (an SEV ASID, a TDX HKID): a free KeyID programmed with a key
   * the hardware makes (the PSP or the TDX module; software never sees it),
   * held by KVM, not on any keyring. null when every KeyID is in use.
   */
  allocVmKey(): MktmeKey | null {
    const keyid = this.freeKeyid();
    if (keyid === 0) return null;
    this.engine.program(keyid, KeyProgram.SET_KEY_RANDOM);
    this.onProgram();
    const key = new MktmeKey(this, 0, 'kvm', keyid, 0, false);
    this.byKeyid[keyid] = key;
    return key;
  }

  /** keyctl(KEYCTL_INVALIDATE, serial). */
  invalidate(serial: number, who: KeyOwner): number {
    const key = this.lookup(serial, who);
    if (typeof key === 'number') return key;
    if (key.uid !== who.uid && !who.caps.has(CAP_SYS_ADMIN)) return -E.EACCES;
    key.invalidated = true;
    this.keyring.delete(serial);
    key.put();
    return 0;
  }

  /** Last reference gone: clear the KeyID with PCONFIG and free it. */
  release(key: MktmeKey): void {
    this.engine.program(key.keyid, KeyProgram.CLEAR_KEY);
    this.onProgram();
    this.byKeyid[key.keyid] = null;
    this.keyring.delete(key.serial);
  }

  /** The live key of a KeyID (for checks and tests). */
  keyOf(keyid: number): MktmeKey | null {
    return this.byKeyid[keyid] ?? null;
  }
}

interface Payload {
  key?: Uint8Array;
  noEncrypt: boolean;
  othersMayView: boolean;
}

/** "type=cpu algorithm=aes-xts-128" | "type=user algorithm=aes-xts-128 key=<64 hex>" | "type=no-encrypt" */
function parsePayload(payload: string): Payload | null {
  const kv = new Map<string, string>();
  for (const tok of payload.trim().split(/\s+/)) {
    const eq = tok.indexOf('=');
    if (eq <= 0 || kv.has(tok.slice(0, eq))) return null;
    kv.set(tok.slice(0, eq), tok.slice(eq + 1));
  }
  const type = kv.get('type');
  const known = new Set(['type', 'algorithm', 'key', 'perm']);
  for (const k of kv.keys()) if (!known.has(k)) return null;
  const othersMayView = kv.get('perm') === 'view';
  if (type === 'no-encrypt') return kv.has('key') ? null : { noEncrypt: true, othersMayView };
  if (kv.get('algorithm') !== 'aes-xts-128') return null;
  if (type === 'cpu') return kv.has('key') ? null : { noEncrypt: false, othersMayView };
  if (type === 'user') {
    const hex = kv.get('key') ?? '';
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) return null;
    return { key: Uint8Array.from(Buffer.from(hex, 'hex')), noEncrypt: false, othersMayView };
  }
  return null;
}
