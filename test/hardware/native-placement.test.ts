// The native addon's hostCpu and moveOff (hardware/xts-native.c), which
// kernel/smp.ts spreadOut uses: the host CPU the calling thread is on, and a
// move to another of the host CPUs it may run on that leaves its affinity
// mask as it was.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { hostPlacement } from '../../hardware/xts-native.js';

const ADDON = fileURLToPath(new URL('../../../build/xts_native.node', import.meta.url));

/** This thread's Cpus_allowed_list (proc(5)), as written and as CPU numbers. */
function allowed(): { text: string; cpus: number[] } {
  const text = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1];
  const cpus = text.split(',').flatMap((r) => {
    const [a, b = a] = r.split('-').map(Number);
    return Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
  return { text, cpus };
}

describe('native hostCpu and moveOff', { skip: existsSync(ADDON) && existsSync('/proc/thread-self/status') ? false : 'no addon, or no /proc' }, () => {
  it('hostCpu is a CPU this thread may run on; moveOff lands on another one and leaves the mask as it was', () => {
    const p = hostPlacement()!;
    const before = allowed();
    const tries = 20;
    let stayed = 0;
    for (let i = 0; i < tries; i++) {
      const here = p.cpu();
      assert.ok(before.cpus.includes(here), `${here} in ${before.text}`);
      const landed = p.moveOff();
      assert.equal(allowed().text, before.text, 'free to run anywhere again');
      if (before.cpus.length === 1) {
        assert.equal(landed, -1, 'one CPU allowed: nowhere to go');
        continue;
      }
      assert.ok(before.cpus.includes(landed), `${landed} in ${before.text}`);
      // (the host may move the thread between the two calls: rarely, and never every time)
      if (landed === here) stayed++;
    }
    assert.ok(stayed <= 2, `landed where it was ${stayed} times of ${tries}`);
  });
});
