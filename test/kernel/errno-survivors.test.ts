// Survivors of the quick mutation run in kernel/errno.ts: an unknown -errno is
// refused by name, and isErr's bounds (IS_ERR_VALUE: -4095..-1).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { E, errnoName, isErr } from '../../kernel/errno.js';

describe('errno names and IS_ERR_VALUE', () => {
  it('a negative return that is no known errno is refused, quoting it', () => {
    assert.equal(errnoName(-E.EINVAL), 'EINVAL');
    assert.equal(errnoName(0), null);
    assert.throws(() => errnoName(-3), (e: unknown) => e instanceof RangeError && e.message === 'ret: -3 is not a known -errno');
    assert.throws(() => errnoName(-4095), /^RangeError: ret: -4095 is not a known -errno$/);
  });

  it('isErr: true from -1 down to -4095, false for 0, positive values and below -4095', () => {
    for (const r of [-1, -E.EINVAL, -E.EKEYREVOKED, -4094, -4095]) assert.equal(isErr(r), true, `isErr(${r})`);
    for (const r of [0, 1, 22, 4095, 4096, -4096, -65536, -(2 ** 31)]) assert.equal(isErr(r), false, `isErr(${r})`);
  });
});
