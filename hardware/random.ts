// Key material from node's CSPRNG, drawn a pool at a time. Every
// randomFillSync call makes a crypto job object that V8 tracks through a
// weak handle until a GC finds it dead; PCONFIG's SET_KEY_RANDOM asks for 32
// bytes at each program, and key-exhaustion programs 63 KeyIDs a round (what
// that cost: engine.ts, keySlot). The pool is refilled whole when used up,
// and each byte handed out is zeroed in it at once, so the pool never holds
// key material that was given away.
import { randomFillSync } from 'node:crypto';

/** 32 keys of 32 bytes. */
const POOL_BYTES = 1024;
const pool = new Uint8Array(POOL_BYTES);
let at = POOL_BYTES;

/** Fill dst with bytes from the CSPRNG (as randomFillSync, through the pool). */
export function randomKeyFill(dst: Uint8Array): void {
  for (let i = 0; i < dst.length; ) {
    if (at === POOL_BYTES) {
      randomFillSync(pool);
      at = 0;
    }
    const n = Math.min(dst.length - i, POOL_BYTES - at);
    dst.set(pool.subarray(at, at + n), i);
    pool.fill(0, at, at + n);
    at += n;
    i += n;
  }
}

/** The bytes left in the pool that nobody has taken yet (the tests check that taken ones are gone). */
export function _poolView(): { readonly pool: Uint8Array; readonly at: number } {
  return { pool, at };
}
