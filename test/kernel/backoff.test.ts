import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Backoff } from '../../kernel/backoff.js';

describe('adaptive spinning', () => {
  it('spins longer after waits the spin caught, shorter after waits that slept, within bounds', () => {
    const b = new Backoff(8, 64, 16);
    assert.equal(b.spins, 16);
    b.hit();
    assert.equal(b.spins, 32);
    for (let i = 0; i < 10; i++) b.hit();
    assert.equal(b.spins, 64);
    b.miss();
    assert.equal(b.spins, 32);
    for (let i = 0; i < 10; i++) b.miss();
    assert.equal(b.spins, 8); // a busy machine: almost no spinning, never none
    b.hit();
    assert.equal(b.spins, 16);
    b.slept(0.01); // woken right after going to sleep: spinning longer would have caught it
    assert.equal(b.spins, 32);
    b.slept(3); // the other side was not running: spin less
    assert.equal(b.spins, 16);
  });
});
