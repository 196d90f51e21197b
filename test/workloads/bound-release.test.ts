// A cell's close lets go of the buffers its kernel thread bound in the native
// addon (hardware/xts-native.ts releaseBound): one process runs a hundred
// cells and more, and nothing else freed their memory in time.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { boundCount } from '../../hardware/xts-native.js';
import { startCell, timedRound } from '../../workloads/cell.js';
import { getWorkload } from '../../workloads/registry.js';

const ADDON = fileURLToPath(new URL('../../../build/xts_native.node', import.meta.url));

describe('bound buffers and a cell\'s life', { skip: existsSync(ADDON) ? false : 'build/xts_native.node was not built' }, () => {
  const workdir = mkdtempSync(join(tmpdir(), 'memcrypt-bound-'));
  after(() => rmSync(workdir, { recursive: true, force: true }));

  // (migration and swap: their kernel thread moves and swaps pages through
  // the engine; a fault cell's kernel thread never does, its CPUs zero them)
  for (const [workload, design, threads, backend] of [['migration', 'madvise-encrypt', 1, 'native'], ['migration', 'plain-mmap', 2, 'native'], ['swap', 'madvise-encrypt', 2, 'native']] as const) {
    it(`${workload} ${design}, ${threads} CPU(s), ${backend}: bound while the cell runs, none once it closed, cell after cell`, async () => {
      for (const seed of [1, 2, 3]) {
        const c = await startCell({ design, hardware: 'mktme', kernel: 'patched', workload: getWorkload(workload), threads, seed, backend, workdir });
        try {
          assert.equal(c.timeable, true, c.outcome);
          await timedRound(c, 1);
          assert.ok(boundCount() > 0, 'the kernel thread moved pages through the addon');
        } finally {
          await c.session.close();
        }
        assert.equal(boundCount(), 0, `seed ${seed}`);
      }
    });
  }
});
