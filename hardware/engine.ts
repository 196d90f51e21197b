// The memory-encryption engine: a KeyID table programmed like PCONFIG and the
// data path of a frame read or written through a KeyID alias. KeyID 0 is the
// platform alias: what software sees through it is the bytes as stored (TME's
// platform key is transparent to software, so it is not modelled).
//
// Shared state (all CPUs): key slots, per-KeyID mode and generation, and per
// frame the KeyID alias whose lines sit in the cache and the KeyID that owns
// the frame's lines (for MAC integrity). Per-CPU state: imported keys cached by
// generation, a scratch page, and the CPU's counter row.
//
// Plaintext never sits in a shared frame of a keyed page: the CPU decrypts into
// its own memory (the caller's buffer for a whole page, else its scratch page)
// and encrypts from there, so only ciphertext is written to the frame. A whole
// page goes straight between the frame and the caller's buffer, with no copy
// through the scratch page and no view made per access.
import { dataBuf, redact, type DataBuf, type XtsBackend, type XtsKey } from './backend.js';
import { PerCpuCounters, type CountersDescriptor } from './counters.js';
import { PhysicalMemory, type MemoryDescriptor } from './memory.js';
import { randomKeyFill } from './random.js';
import { getProfile, type HardwareProfile } from './profiles.js';
import { LINES_PER_PAGE, PAGE_SIZE, checkUint, type KeyId, type Pfn } from './types.js';
import { getBackend, type BackendName } from './xts.js';
import { hostCopy } from './xts-native.js';

/** The zeros that clear_page stores: read by every CPU, written by none. */
// (on a SharedArrayBuffer, as the scratch page: the native backend binds those once, xts-native.ts)
const ZERO_PAGE: DataBuf = dataBuf(new Uint8Array(new SharedArrayBuffer(PAGE_SIZE)));

/** PCONFIG MKTME_KEY_PROGRAM commands (Intel MKTME spec names). */
export const KeyProgram = {
  SET_KEY_DIRECT: 0, // software supplies the key
  SET_KEY_RANDOM: 1, // the CPU generates the key; software never sees it
  CLEAR_KEY: 2, // back to the platform key (KeyID 0 behaviour)
  NO_ENCRYPT: 3, // this KeyID bypasses encryption
} as const;
export type KeyProgramCmd = (typeof KeyProgram)[keyof typeof KeyProgram];

/** Per-KeyID state in the shared table. */
const KEY_CLEAR = 0, KEY_PROGRAMMED = 1, KEY_NOENCRYPT = 2;

export const ENGINE_COUNTERS = [
  'pages_encrypted',
  'pages_decrypted',
  'crypto_bytes',
  'clflush_lines',
  'key_programs',
  'alias_conflicts', // a KeyID alias touched while another alias's lines were still cached
  'integrity_faults', // MAC mismatch: a read through a KeyID that does not own the lines
] as const;
export type EngineCounter = (typeof ENGINE_COUNTERS)[number];
const C_ENC = 0, C_DEC = 1, C_BYTES = 2, C_FLUSH = 3, C_PROG = 4, C_ALIAS = 5, C_MAC = 6;

export interface EngineDescriptor {
  readonly profile: string;
  readonly backend: BackendName;
  readonly memory: MemoryDescriptor;
  readonly counters: CountersDescriptor;
  readonly keySab: SharedArrayBuffer;
  readonly frameSab: SharedArrayBuffer;
}

export class MemoryEncryptionEngine {
  readonly profile: HardwareProfile;
  readonly backend: XtsBackend;
  readonly memory: PhysicalMemory;
  readonly counters: PerCpuCounters<EngineCounter>;
  readonly cpu: number;
  private readonly keySab: SharedArrayBuffer;
  private readonly frameSab: SharedArrayBuffer;
  /** Key slots: 32 bytes per KeyID (slot 0 unused). */
  private readonly keyBytes: Uint8Array;
  /** Per KeyID: [state, generation]. */
  private readonly keyMeta: Int32Array;
  /** Per frame: cached alias (KeyID+1, 0 = no lines cached) and owner KeyID+1 (MAC). */
  private readonly frameCached: Int32Array;
  private readonly frameOwner: Int32Array;
  private readonly row: Float64Array;
  private readonly scratch: DataBuf;
  /** the last two caller buffers a whole page went straight to or from (_direct), most recent first */
  private lastU8: Uint8Array | null = null;
  private lastBuf: DataBuf | null = null;
  private prevU8: Uint8Array | null = null;
  private prevBuf: DataBuf | null = null;
  private readonly keyCache: (XtsKey | null)[];
  /**
   * Each KeyID's key object once imported, kept while the KeyID is cleared
   * and reprogrammed: a backend with rekey (native) takes the new key into
   * it in place. An import per program made a napi external each time, and
   * V8 runs the weak callback of every dead one at the next young-generation
   * GC, on the thread that made it. key-exhaustion programs and clears all
   * 63 KeyIDs a round: over 600 rounds of encrypt-mprotect (one process,
   * --trace-gc-nvp) that callback phase took 104-131 ms of 161-215 ms of
   * GC pauses, 29 ms in one pause; with this and the key pool of
   * SET_KEY_RANDOM (random.ts), 2 ms of 48-49 ms, 1.5 ms at most in one.
   */
  private readonly keySlot: (XtsKey | null)[];
  /**
   * The generation each cached key was imported at; NaN (equal to nothing)
   * until the first import. The shared generation is an Int32 that wraps, so
   * any int32 start value (it was -1) would be a real generation after 2^32-1
   * programmings, and a CPU touching that KeyID first would take it for cached
   * and store plaintext.
   */
  private readonly keyCacheGen: Float64Array;
  /**
   * A page to or from a KeyID that does not encrypt: the addon's memmove
   * where it is there (no view of either range: a view is an object, and
   * this is every plain page a CPU stores or loads), else
   * TypedArray.prototype.set of a view. Measured with ab against the build
   * before (10 processes on the 2-vCPU VM, per op): plain-mmap fault at 1
   * and 2 CPUs -16.4% and -10.8%, migration -23.1% and -20.6%, dax-stacking
   * -24.8% and -13.0%, enosys-fallback t1 -14.4%; the madvise-encrypt cells
   * (every page encrypted) -2.4 to +4.1%, none significant. (A view alone
   * cost about 130 ns here, and a set into the SharedArrayBuffer about 650
   * ns a page, twice an ArrayBuffer's.)
   */
  private readonly plainCopy = hostCopy();

  private constructor(d: EngineDescriptor, memory: PhysicalMemory, cpu: number) {
    this.profile = getProfile(d.profile);
    this.backend = getBackend(d.backend);
    this.memory = memory;
    this.counters = PerCpuCounters.attach<EngineCounter>(d.counters);
    this.cpu = cpu;
    this.row = this.counters.row(cpu);
    this.keySab = d.keySab;
    this.frameSab = d.frameSab;
    const n = this.profile.nrKeyids + 1;
    this.keyBytes = new Uint8Array(d.keySab, 0, n * 32);
    this.keyMeta = new Int32Array(d.keySab, n * 32, n * 2);
    this.frameCached = new Int32Array(d.frameSab, 0, memory.nrFrames);
    this.frameOwner = new Int32Array(d.frameSab, memory.nrFrames * 4, memory.nrFrames);
    // (this thread's alone; on a SharedArrayBuffer so that the native backend
    // binds it once and finds it by number, not through N-API, every page)
    this.scratch = dataBuf(new Uint8Array(new SharedArrayBuffer(PAGE_SIZE)));
    this.keyCache = new Array<XtsKey | null>(n).fill(null);
    this.keySlot = new Array<XtsKey | null>(n).fill(null);
    this.keyCacheGen = new Float64Array(n).fill(Number.NaN);
    redact(this, `MemoryEncryptionEngine<${this.profile.name}, ${this.backend.name}, cpu ${cpu}>`);
  }

  /** Build an engine (and its shared tables) for memory; this instance is CPU 0. */
  static create(memory: PhysicalMemory, profile: string, backend: string, nrCpus = 1): MemoryEncryptionEngine {
    const p = getProfile(profile);
    const b = getBackend(backend);
    const n = p.nrKeyids + 1;
    const d: EngineDescriptor = {
      profile: p.name,
      backend: b.name,
      memory: memory.descriptor(),
      counters: PerCpuCounters.create(ENGINE_COUNTERS, checkUint('nrCpus', nrCpus, 1024)).descriptor(),
      keySab: new SharedArrayBuffer(n * 32 + n * 8),
      frameSab: new SharedArrayBuffer(memory.nrFrames * 8),
    };
    return new MemoryEncryptionEngine(d, memory, 0);
  }

  /** The same engine seen from another CPU (worker thread). */
  static attach(d: EngineDescriptor, cpu: number, memory = PhysicalMemory.attach(d.memory)): MemoryEncryptionEngine {
    return new MemoryEncryptionEngine(d, memory, cpu);
  }

  descriptor(): EngineDescriptor {
    return redact<EngineDescriptor>({
      profile: this.profile.name,
      backend: this.backend.name,
      memory: this.memory.descriptor(),
      counters: this.counters.descriptor(),
      keySab: this.keySab,
      frameSab: this.frameSab,
    }, '[EngineDescriptor]');
  }

  get nrKeyids(): number {
    return this.profile.nrKeyids;
  }

  private checkKeyId(keyid: number): KeyId {
    checkUint('keyid', keyid, this.profile.nrKeyids);
    return keyid as KeyId;
  }

  /**
   * PCONFIG: program KeyID `keyid` (1..nrKeyids). `key` is the 32-byte
   * XTS key for SET_KEY_DIRECT and ignored otherwise. Throws on a bad
   * argument (the kernel validates first, as it must with the real CPU).
   */
  program(keyid: number, cmd: KeyProgramCmd, key?: Uint8Array): void {
    if (this.profile.nrKeyids === 0) throw new RangeError(`keyid: profile '${this.profile.name}' has no KeyIDs`);
    checkUint('keyid', keyid, this.profile.nrKeyids);
    if (keyid === 0) throw new RangeError('keyid: KeyID 0 is the platform key and cannot be programmed');
    const slot = this.keyBytes.subarray(keyid * 32, keyid * 32 + 32);
    let state: number;
    switch (cmd) {
      case KeyProgram.SET_KEY_DIRECT:
        if (!(key instanceof Uint8Array) || key.length !== 32)
          throw new RangeError(`key: SET_KEY_DIRECT needs 32 bytes, got ${key instanceof Uint8Array ? key.length : typeof key}`);
        // PCONFIG takes a software key only where the hardware has that command
        if (!this.profile.keyFromSoftware) throw new Error(`engine: ${this.profile.name} takes no key from software`);
        this.backend.importKey(key); // validate (OpenSSL refuses equal halves) before touching the slot
        slot.set(key);
        state = KEY_PROGRAMMED;
        break;
      case KeyProgram.SET_KEY_RANDOM:
        do randomKeyFill(slot);
        while (slot.subarray(0, 16).every((b, i) => b === slot[16 + i]));
        state = KEY_PROGRAMMED;
        break;
      case KeyProgram.CLEAR_KEY:
        slot.fill(0);
        state = KEY_CLEAR;
        break;
      case KeyProgram.NO_ENCRYPT:
        slot.fill(0);
        state = KEY_NOENCRYPT;
        break;
      default:
        throw new RangeError(`cmd: unknown PCONFIG key program command ${String(cmd)}`);
    }
    // Slot bytes first, then state, then the generation bump that readers check:
    // a CPU that sees the new generation (seq-cst) also sees the new slot.
    Atomics.store(this.keyMeta, keyid * 2, state);
    Atomics.add(this.keyMeta, keyid * 2 + 1, 1);
    this.row[C_PROG]++;
  }

  /** Is this KeyID programmed with a key (as opposed to clear or no-encrypt)? */
  isProgrammed(keyid: number): boolean {
    this.checkKeyId(keyid);
    return keyid !== 0 && Atomics.load(this.keyMeta, keyid * 2) === KEY_PROGRAMMED;
  }

  /** Imported key for keyid, or null when the alias stores bytes as they are. */
  private _key(keyid: number): XtsKey | null {
    if (keyid === 0) return null;
    const gen = Atomics.load(this.keyMeta, keyid * 2 + 1);
    if (this.keyCacheGen[keyid] !== gen) {
      const state = Atomics.load(this.keyMeta, keyid * 2);
      let k: XtsKey | null = null;
      if (state === KEY_PROGRAMMED) {
        const bytes = this.keyBytes.subarray(keyid * 32, keyid * 32 + 32);
        k = this.keySlot[keyid];
        if (k !== null && this.backend.rekey !== undefined) this.backend.rekey(k, bytes);
        else k = this.keySlot[keyid] = this.backend.importKey(bytes);
      }
      this.keyCache[keyid] = k;
      this.keyCacheGen[keyid] = gen;
    }
    return this.keyCache[keyid];
  }

  /**
   * Cache-alias bookkeeping on an access of frame pfn through keyid. Most
   * accesses find the frame's lines already cached through the same KeyID:
   * a plain load sees that, and only a change takes the exchange. (A flush
   * that races with the load and is not seen counts as coming after the
   * access; one the CPU was told of, through any atomic, is seen.)
   */
  private _touch(pfn: number, keyid: number): void {
    if (this.frameCached[pfn] === keyid + 1) return;
    const cached = Atomics.exchange(this.frameCached, pfn, keyid + 1);
    if (cached !== 0 && cached !== keyid + 1 && !this.profile.aliasCoherent) this.row[C_ALIAS]++;
  }

  /**
   * The caller's buffer as a DataBuf, when a whole page can go straight to or
   * from it at off (16-byte aligned, as the backends need); else null. Two
   * entries are kept, so that a loop that stores from one buffer and loads
   * into another (a CPU's pattern and read-back buffers, page by page) makes
   * no DataBuf per page.
   */
  private _direct(u8: Uint8Array, off: number): DataBuf | null {
    // (a view of a resizable ArrayBuffer may have grown or shrunk since its DataBuf's fixed-length u32 was made)
    if (u8 === this.lastU8 && u8.byteLength === this.lastBuf!.u32.byteLength) return off % 16 === 0 ? this.lastBuf : null;
    if (u8 === this.prevU8 && u8.byteLength === this.prevBuf!.u32.byteLength) {
      const b = this.prevBuf!;
      this.prevU8 = this.lastU8;
      this.prevBuf = this.lastBuf;
      this.lastU8 = u8;
      this.lastBuf = b;
      return off % 16 === 0 ? b : null;
    }
    if (off % 16 !== 0 || u8.byteOffset % 4 !== 0 || u8.byteLength % 4 !== 0) return null;
    this.prevU8 = this.lastU8;
    this.prevBuf = this.lastBuf;
    this.lastU8 = u8;
    this.lastBuf = dataBuf(u8);
    return this.lastBuf;
  }

  /** Decrypt frame pfn through keyid into s at sOff (the scratch page by default); false on a MAC fault. */
  private _load(pfn: number, keyid: number, s: DataBuf = this.scratch, sOff = 0): boolean {
    this._touch(pfn, keyid);
    const off = pfn * PAGE_SIZE;
    if (this.profile.integrity === 'mac') {
      const owner = Atomics.load(this.frameOwner, pfn);
      if (owner !== 0 && owner !== keyid + 1) {
        // TDX: the MAC/owner check fails; the load returns poison (zeros here).
        this.row[C_MAC]++;
        s.u8.fill(0, sOff, sOff + PAGE_SIZE);
        return false;
      }
    }
    const k = this._key(keyid);
    if (k === null) {
      if (this.plainCopy !== null) this.plainCopy(this.memory.buf, off, s, sOff, PAGE_SIZE);
      else s.u8.set(this.memory.buf.u8.subarray(off, off + PAGE_SIZE), sOff);
    } else {
      this.backend.decrypt(k, this.memory.buf, off, s, sOff, PAGE_SIZE, off);
      this.row[C_DEC]++;
      this.row[C_BYTES] += PAGE_SIZE;
    }
    return true;
  }

  /** Encrypt the page at s[sOff] (the scratch page by default) through keyid and store it in frame pfn. */
  private _store(pfn: number, keyid: number, s: DataBuf = this.scratch, sOff = 0): void {
    const off = pfn * PAGE_SIZE;
    const k = this._key(keyid);
    if (k === null) {
      if (this.plainCopy !== null) this.plainCopy(s, sOff, this.memory.buf, off, PAGE_SIZE);
      else this.memory.buf.u8.set(s === this.scratch || s === ZERO_PAGE ? s.u8 : s.u8.subarray(sOff, sOff + PAGE_SIZE), off);
    } else {
      this.backend.encrypt(k, s, sOff, this.memory.buf, off, PAGE_SIZE, off);
      this.row[C_ENC]++;
      this.row[C_BYTES] += PAGE_SIZE;
    }
    if (this.profile.integrity === 'mac') Atomics.store(this.frameOwner, pfn, keyid + 1);
  }

  private _check(pfn: number, keyid: number, pageOff: number, len: number): void {
    this.memory.checkPfn(pfn);
    this.checkKeyId(keyid);
    checkUint('pageOff', pageOff, PAGE_SIZE);
    checkUint('len', len, PAGE_SIZE - pageOff);
  }

  /**
   * Load bytes [pageOff, pageOff+len) of frame pfn through KeyID keyid into
   * dst at dstOff. Returns false when the hardware's integrity check fails.
   */
  read(pfn: Pfn, keyid: number, dst: Uint8Array, dstOff = 0, pageOff = 0, len = PAGE_SIZE): boolean {
    this._check(pfn, keyid, pageOff, len);
    checkRoom('dst', dst, dstOff, len);
    const direct = len === PAGE_SIZE ? this._direct(dst, dstOff) : null;
    if (direct !== null) return this._load(pfn, keyid, direct, dstOff);
    const ok = this._load(pfn, keyid);
    dst.set(this.scratch.u8.subarray(pageOff, pageOff + len), dstOff);
    return ok;
  }

  /** Store src[srcOff, srcOff+len) at pageOff of frame pfn through keyid (read-modify-write for a part page). */
  write(pfn: Pfn, keyid: number, src: Uint8Array, srcOff = 0, pageOff = 0, len = PAGE_SIZE): void {
    this._check(pfn, keyid, pageOff, len);
    // a short source would leave the rest of the scratch page (another page's plaintext) in the frame
    checkRoom('src', src, srcOff, len);
    const direct = len === PAGE_SIZE ? this._direct(src, srcOff) : null;
    if (direct !== null) {
      this._touch(pfn, keyid);
      this._store(pfn, keyid, direct, srcOff);
      return;
    }
    if (len !== PAGE_SIZE) this._load(pfn, keyid);
    else this._touch(pfn, keyid);
    this.scratch.u8.set(src.subarray(srcOff, srcOff + len), pageOff);
    this._store(pfn, keyid);
  }

  /** Fill frame pfn with zeros as seen through keyid (clear_page through the alias). */
  zero(pfn: Pfn, keyid: number): void {
    this._check(pfn, keyid, 0, PAGE_SIZE);
    this._touch(pfn, keyid);
    this._store(pfn, keyid, ZERO_PAGE);
  }

  /**
   * A fresh frame's zeroing through keyid (clear_page in prep_encrypted_page)
   * followed at once by a whole-page store of src[srcOff..+4096): what a
   * first-touch store of a whole page does. The store overwrites every byte
   * the zeroing wrote, so the simulator skips the zeroing's encryption; its
   * counts stay, as the hardware does both. Nothing can see the frame in
   * between: the caller has not installed its PTE yet. False, with nothing
   * done, where there is no encryption to skip (no key, or a src the backend
   * cannot take in place): the caller zeroes and stores as usual.
   */
  fillFresh(pfn: Pfn, keyid: number, src: Uint8Array, srcOff: number): boolean {
    this._check(pfn, keyid, 0, PAGE_SIZE);
    checkRoom('src', src, srcOff, PAGE_SIZE);
    if (this._key(keyid) === null) return false;
    const direct = this._direct(src, srcOff);
    if (direct === null) return false;
    this._touch(pfn, keyid);
    this.row[C_ENC]++;
    this.row[C_BYTES] += PAGE_SIZE;
    this._store(pfn, keyid, direct, srcOff);
    return true;
  }

  /**
   * Undo fillFresh's store (its PTE lost a race): the frame holds the zeroing
   * through keyid, as if the store never came, and the counts are the zeroing's alone.
   */
  unfill(pfn: Pfn, keyid: number): void {
    this.zero(pfn, keyid);
    this.row[C_ENC] -= 2;
    this.row[C_BYTES] -= 2 * PAGE_SIZE;
  }

  /**
   * Copy frame src (read through srcKey) to frame dst (written through dstKey):
   * what migration does through per-KeyID direct mappings. Returns false on
   * an integrity fault at the source.
   */
  copy(src: Pfn, srcKey: number, dst: Pfn, dstKey: number): boolean {
    this._check(src, srcKey, 0, PAGE_SIZE);
    this._check(dst, dstKey, 0, PAGE_SIZE);
    if (this.profile.integrity !== 'mac' && this._key(srcKey) === null && this._key(dstKey) === null) {
      // neither side encrypts (and no owner to check): the bytes go frame to
      // frame, not through the scratch page and back
      this._touch(src, srcKey);
      this._touch(dst, dstKey);
      this._copyFrame(src, dst);
      return true;
    }
    const ok = this._load(src, srcKey);
    this._touch(dst, dstKey);
    this._store(dst, dstKey);
    return ok;
  }

  /** Copy the stored bytes (ciphertext for keyed frames) of src to dst, as a DMA engine would. */
  copyRaw(src: Pfn, dst: Pfn): void {
    this.memory.checkPfn(src, 'src');
    this.memory.checkPfn(dst, 'dst');
    this._copyFrame(src, dst);
    Atomics.store(this.frameOwner, dst, Atomics.load(this.frameOwner, src));
  }

  /** The stored bytes of frame src into frame dst (natively where the addon is there). */
  private _copyFrame(src: number, dst: number): void {
    const buf = this.memory.buf;
    if (this.plainCopy !== null) this.plainCopy(buf, src * PAGE_SIZE, buf, dst * PAGE_SIZE, PAGE_SIZE);
    else buf.u8.copyWithin(dst * PAGE_SIZE, src * PAGE_SIZE, src * PAGE_SIZE + PAGE_SIZE);
  }

  /** clflush every line of frame pfn: write back and drop whatever alias is cached. */
  flush(pfn: Pfn): void {
    this.memory.checkPfn(pfn);
    Atomics.store(this.frameCached, pfn, 0);
    this.row[C_FLUSH] += LINES_PER_PAGE;
  }

  /** Which alias has lines of pfn in the cache (KeyID), or -1. */
  cachedAlias(pfn: Pfn): number {
    return Atomics.load(this.frameCached, this.memory.checkPfn(pfn)) - 1;
  }

  /** Power cycle: every key is lost (PCONFIG state is volatile) and caches are empty. */
  resetKeys(): void {
    for (let k = 1; k <= this.profile.nrKeyids; k++) {
      this.keyBytes.fill(0, k * 32, k * 32 + 32);
      Atomics.store(this.keyMeta, k * 2, KEY_CLEAR);
      Atomics.add(this.keyMeta, k * 2 + 1, 1);
    }
    new Int32Array(this.frameSab).fill(0);
  }
}

/** buf holds len bytes from off: a RangeError naming buf otherwise. */
function checkRoom(name: string, buf: Uint8Array, off: number, len: number): void {
  if (!Number.isSafeInteger(off) || off < 0 || off + len > buf.length)
    throw new RangeError(`${name}: ${len} bytes at offset ${String(off)} do not fit its ${buf.length} bytes`);
}
