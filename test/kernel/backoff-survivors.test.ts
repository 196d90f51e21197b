// Survivors of the quick mutation run in kernel/backoff.ts. The clock the
// Spinner reads (performance.now) is replaced by a fake one, so that where
// the spin looks at the clock, and what it decides at exactly the cap or at
// exactly NEAR_MS, is deterministic.
import assert from 'node:assert/strict';
import { afterEach, describe, it, mock } from 'node:test';
import { NEAR_MS, Spinner } from '../../kernel/backoff.js';

let now = 0;
const fakeClock = () => {
  now = 0;
  mock.method(performance, 'now', () => now);
};

describe('Spinner against a fake clock', () => {
  afterEach(() => mock.restoreAll());

  it('looks at the clock only every 128th poll: 127 polls go on past the cap, the 128th stops', () => {
    fakeClock();
    const sp = new Spinner(true, 2);
    sp.start();
    now = 1000; // far past the cap at once
    for (let i = 1; i <= 127; i++) assert.equal(sp.spin(), true, `poll ${i}`);
    assert.equal(sp.spin(), false, 'poll 128 reads the clock');
    assert.equal(sp.spin(), false, 'and stays over');
    // a new wait starts a new count and a new time
    sp.start();
    for (let i = 1; i <= 127; i++) assert.equal(sp.spin(), true);
    assert.equal(sp.spin(), true, 'the clock has not moved since start');
  });

  it('stops at exactly the cap, not only beyond it', () => {
    fakeClock();
    const sp = new Spinner(true, 2);
    now = 10;
    sp.start();
    now = 11.5;
    for (let i = 1; i < 128; i++) sp.spin();
    assert.equal(sp.spin(), true, '1.5 ms of a 2 ms cap');
    now = 12;
    for (let i = 1; i < 128; i++) assert.equal(sp.spin(), true);
    assert.equal(sp.spin(), false, 'exactly 2 ms: over');
  });

  it('a new spinner is not over the cap before its first wait', () => {
    fakeClock();
    now = 5;
    const sp = new Spinner(true, 1000);
    for (let i = 1; i <= 200; i++) assert.equal(sp.spin(), true, `poll ${i}`);
  });

  it('adaptive regime: a sleep of exactly NEAR_MS is not a near miss (halves), a shorter one is (doubles)', () => {
    fakeClock();
    const words = new Int32Array(new SharedArrayBuffer(8));
    const sp = new Spinner(false);
    sp.start();
    assert.equal(sp.budget, 500);
    // Atomics.wait returns at once ('not-equal'); the fake clock says how long it took
    mock.method(performance, 'now', () => {
      const t = now;
      now += NEAR_MS; // the second read is NEAR_MS after the first
      return t;
    });
    now = 0;
    assert.equal(sp.sleep(words, 0, 1, 1), 'not-equal');
    sp.start();
    assert.equal(sp.budget, 250, 'slept exactly NEAR_MS: the other side was not running');
    mock.method(performance, 'now', () => {
      const t = now;
      now += NEAR_MS / 2;
      return t;
    });
    sp.sleep(words, 0, 1, 1);
    sp.start();
    assert.equal(sp.budget, 500, 'slept half of NEAR_MS: a near miss');
  });
});
