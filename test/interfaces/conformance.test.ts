// The capability matrix of DESIGN.md, produced by running every design on
// every profile and kernel, and checked against what the thread argued.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PROFILE_NAMES } from '../../hardware/profiles.js';
import { SCENARIOS, runCell, type CellResult, type CellSpec, type Scenario } from '../../interfaces/conformance.js';
import { DESIGN_NAMES, type DesignName } from '../../interfaces/contract.js';

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function cell(design: DesignName, profile: string, patched: boolean, scenario: Scenario, careful = true): CellResult {
  const workdir = mkdtempSync(join(tmpdir(), 'memcrypt-conf-'));
  dirs.push(workdir);
  const spec: CellSpec = { design, profile, patched, scenario, careful, pages: 12, seed: 7, backend: 'openssl', workdir };
  return runCell(spec);
}
const show = (r: CellResult) => `${r.outcome}${r.errno ? '/' + r.errno : ''}`;

// DESIGN.md, "expected capability matrix, MKTME hardware"
const MKTME: Record<string, Record<DesignName, string>> = {
  'unpatched careful': {
    'encrypt-mprotect': 'plaintext-fallback/ENOSYS',
    'dev-mktme': 'plaintext-fallback/ENOENT',
    'madvise-encrypt': 'plaintext-fallback/EINVAL',
    'memfd-secret': 'plaintext-fallback/ENOSYS',
  },
  'unpatched naive': {
    'encrypt-mprotect': 'crashed/ENOSYS',
    'dev-mktme': 'crashed/ENOENT',
    'madvise-encrypt': 'plaintext-fallback/EINVAL',
    'memfd-secret': 'crashed/ENOSYS',
  },
  swap: {
    'encrypt-mprotect': 'encrypted',
    'dev-mktme': 'unsupported/ENOMEM',
    'madvise-encrypt': 'encrypted',
    'memfd-secret': 'unsupported/ENOMEM',
  },
  migration: {
    'encrypt-mprotect': 'encrypted',
    'dev-mktme': 'unsupported/EBUSY',
    'madvise-encrypt': 'encrypted',
    'memfd-secret': 'unsupported/EBUSY',
  },
  dax: {
    'encrypt-mprotect': 'unsupported/EINVAL',
    'dev-mktme': 'unsupported/ENOTTY',
    'madvise-encrypt': 'encrypted',
    'memfd-secret': 'unsupported',
  },
};

describe('capability matrix on MKTME hardware', () => {
  for (const design of DESIGN_NAMES) {
    it(`${design}: kernel without the feature`, () => {
      assert.equal(show(cell(design, 'mktme', false, 'basic')), MKTME['unpatched careful'][design]);
      assert.equal(show(cell(design, 'mktme', false, 'basic', false)), MKTME['unpatched naive'][design]);
    });
    for (const sc of ['swap', 'migration', 'dax'] as const)
      it(`${design}: ${sc}`, () => assert.equal(show(cell(design, 'mktme', true, sc)), MKTME[sc][design]));
  }

  it('counters explain the cells', () => {
    const swap = cell('encrypt-mprotect', 'mktme', true, 'swap').counters;
    assert.ok(swap.swap_out > 0 && swap.swap_in > 0);
    assert.equal(swap.plaintext_exposed_bytes, swap.swap_out * 4096); // plaintext reaches unencrypted swap
    const mig = cell('madvise-encrypt', 'mktme', true, 'migration').counters;
    assert.equal(mig.migrated, 12);
    assert.equal(mig.migrate_failed, 0);
    const dev = cell('dev-mktme', 'mktme', true, 'migration').counters;
    assert.equal(dev.pinned_pages, 12);
    assert.equal(dev.migrate_failed, 12);
    const secret = cell('memfd-secret', 'mktme', true, 'basic');
    assert.equal(secret.outcome, 'secret');
    assert.equal(secret.counters.direct_map_removed, 12);
    const unpatched = cell('encrypt-mprotect', 'mktme', false, 'basic').counters;
    assert.equal(unpatched.enosys, 1);
    const dax = cell('madvise-encrypt', 'mktme', true, 'dax').counters;
    assert.equal(dax.plaintext_exposed_bytes, 0);
    assert.equal(dax.integrity_errors, 0);
  });
});

describe('other hardware', () => {
  for (const profile of ['sev', 'tdx']) {
    it(`${profile}: encrypted memory is pinned: no swap, no migration`, () => {
      for (const design of ['encrypt-mprotect', 'madvise-encrypt'] as const) {
        assert.equal(show(cell(design, profile, true, 'basic')), 'encrypted');
        assert.equal(show(cell(design, profile, true, 'swap')), 'unsupported/ENOMEM');
        assert.equal(show(cell(design, profile, true, 'migration')), 'unsupported/EBUSY');
      }
    });
  }

  it('sgx: swap goes through EWB/ELDU, so no plaintext reaches swap', () => {
    const r = cell('encrypt-mprotect', 'sgx', true, 'swap');
    assert.equal(show(r), 'encrypted');
    assert.ok(r.counters.swap_out > 0);
    assert.equal(r.counters.plaintext_exposed_bytes, 0);
  });

  it('none: no KeyIDs; careful programs fall back, madvise just works', () => {
    for (const design of DESIGN_NAMES) {
      const r = cell(design, 'none', true, 'basic');
      assert.equal(r.outcome, design === 'memfd-secret' ? 'secret' : 'plaintext-fallback', design);
    }
  });
});

describe('every cell of every profile', () => {
  for (const profile of PROFILE_NAMES)
    it(`${profile}: no data loss anywhere, encrypted cells read back intact`, () => {
      for (const design of DESIGN_NAMES)
        for (const patched of [false, true])
          for (const sc of SCENARIOS) {
            const r = cell(design, profile, patched, sc);
            const where = `${design} ${profile} ${patched ? 'patched' : 'unpatched'} ${sc}: ${r.detail}`;
            assert.notEqual(r.outcome, 'data-loss', where);
            assert.notEqual(r.outcome, 'crashed', where); // careful programs never crash
            assert.equal(r.counters.integrity_errors, 0, where);
            assert.equal(r.counters.alias_conflicts, 0, where);
            if (!patched) assert.notEqual(r.outcome, 'encrypted', where);
          }
    });
});
