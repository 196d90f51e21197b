// Every worker CPU notes, at each round's start, the host CPU its thread
// runs on (kernel/smp.ts spreadOut, called from workloads/cpu-worker.ts).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { W_HOST } from '../../kernel/smp.js';
import { startCell, timedRound } from '../../workloads/cell.js';
import { getWorkload } from '../../workloads/registry.js';

const ADDON = fileURLToPath(new URL('../../../build/xts_native.node', import.meta.url));

describe('Smp.spreadOut in a real cell', { skip: existsSync(ADDON) ? false : 'build/xts_native.node was not built' }, () => {
  const workdir = mkdtempSync(join(tmpdir(), 'memcrypt-spread-'));
  after(() => rmSync(workdir, { recursive: true, force: true }));

  it('each worker CPU notes the host CPU its rounds start on', async () => {
    const c = await startCell({ design: 'plain-mmap', hardware: 'mktme', kernel: 'patched', workload: getWorkload('enosys-fallback'), threads: 2, seed: 1, backend: 'native', workdir });
    try {
      await timedRound(c, 1);
      const smp = c.session.k.smp;
      for (const cpu of [1, 2]) {
        const h = Atomics.load(smp.words, smp.w(cpu, W_HOST));
        assert.ok(Number.isInteger(h) && h >= 0, `CPU ${cpu}: ${h}`);
      }
      assert.equal(Atomics.load(smp.words, smp.w(0, W_HOST)), -1, 'the kernel thread runs no rounds');
    } finally {
      await c.session.close();
    }
  });
});
