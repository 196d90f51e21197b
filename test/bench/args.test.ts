// Command-line value checks (bench/args.ts): what the user typed is echoed,
// the option is named once, and lists are de-duplicated after parsing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { csvList, positiveInt, probability } from '../../bench/args.js';

describe('argument checks', () => {
  it('positiveInt echoes the text as typed', () => {
    assert.throws(() => positiveInt('seed', 10)('abc'), { message: "--seed: expected an integer in [1, 10], got 'abc'" });
    assert.throws(() => positiveInt('seed', 10)('1.5'), { message: "--seed: expected an integer in [1, 10], got '1.5'" });
    assert.equal(positiveInt('seed', 10)('07'), 7);
    assert.throws(() => probability('alpha')('1'), { message: "--alpha: expected a number in (0, 1), got '1'" });
  });

  it('csvList names the option once and keeps one of values that parse the same', () => {
    const threads = csvList('threads', positiveInt('threads', 16));
    assert.deepEqual(threads(['1,01', '2', '1']), ['1', '2']);
    assert.deepEqual(threads('4, 2 ,4'), ['4', '2']);
    assert.throws(() => threads(['1,0']), { message: "--threads: expected an integer in [1, 16], got '0'" });
    assert.throws(() => threads([',']), { message: '--threads: expected at least one value' });
    const names = csvList('swap', (s) => {
      if (s !== 'plain') throw new Error(`expected plain, got '${s}'`);
    });
    assert.deepEqual(names('plain,plain'), ['plain']);
    assert.throws(() => names('zram'), { message: "--swap: expected plain, got 'zram'" });
  });
});
