import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  PROBE_NAMES,
  calibrationJson,
  compileProbe,
  deriveCosts,
  formatCalibration,
  formatCostTable,
  formatNs,
  loadCalibration,
  runCalibration,
  saveCalibration,
  type Calibration,
  type RawStat,
  type RawTable,
} from '../../bench/calibrate/calibrate.js';
import { InputError } from '../../bench/io.js';
import { COST_NAMES, DEFAULT_COSTS, checkCostTable, type CostName } from '../../hardware/costs.js';

const tmp = mkdtempSync(join(tmpdir(), 'memcrypt-calibrate-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const CC = process.env['CC'] || 'cc';
const noCompiler = ((): string | false => {
  try {
    execFileSync(CC, ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return `no C compiler ('${CC}' --version failed): the real probe cannot be built here`;
  }
})();

/** The entries that can never be measured on an ordinary host. */
const LITERATURE_ONLY: readonly CostName[] = ['tlb_shootdown_cpu', 'pconfig', 'ewb_eldu_page', 'crypto_page'];

/** The mapping, written out again: the test checks calibrate.ts against this, not against itself. */
const EXPECTED: Readonly<Partial<Record<CostName, { from: string[]; ns: (m: Record<string, number>) => number }>>> = {
  syscall: { from: ['getppid'], ns: (m) => m['getppid']! },
  enosys: { from: ['enosys'], ns: (m) => m['enosys']! },
  fault: { from: ['anon_fault'], ns: (m) => m['anon_fault']! },
  clflush_line: { from: ['clflush_page'], ns: (m) => m['clflush_page']! / 64 },
  page_copy: { from: ['memcpy_page'], ns: (m) => m['memcpy_page']! },
  swap_io_page: { from: ['pwrite_pread_page'], ns: (m) => m['pwrite_pread_page']! / 2 },
  direct_map_remove: { from: ['memfd_secret_fault', 'anon_fault'], ns: (m) => Math.max(0, m['memfd_secret_fault']! - m['anon_fault']!) },
  vma_split: { from: ['mprotect_split_merge', 'getppid'], ns: (m) => Math.max(0, m['mprotect_split_merge']! / 2 - m['getppid']!) },
  zap_page: { from: ['madvise_dontneed_64', 'getppid'], ns: (m) => Math.max(0, (m['madvise_dontneed_64']! - m['getppid']!) / 64) },
};

/** Every cost entry follows EXPECTED from c.raw's medians exactly, or is the default. */
function checkMapping(c: Calibration): void {
  const med: Record<string, number> = {};
  for (const n of PROBE_NAMES) {
    const r = c.raw[n];
    if (!('unavailable' in r)) med[n] = r.median_ns;
  }
  for (const name of COST_NAMES) {
    const e = c.costs[name];
    const f = EXPECTED[name];
    if (f && f.from.every((p) => p in med)) {
      assert.equal(e.provenance, 'measured', name);
      assert.equal(e.ns, f.ns(med), `${name} follows its formula`);
      assert.ok(!/[\r\n]/.test(e.source), `${name}.source is one line`);
      assert.ok(e.source.includes(c.host.hostname) && e.source.includes(c.created_at.slice(0, 10)), e.source);
      assert.ok(e.source.includes(f.from[0]!), e.source);
    } else assert.deepEqual(e, DEFAULT_COSTS[name], `${name} keeps the sourced default`);
  }
  for (const n of LITERATURE_ONLY) assert.equal(c.costs[n].provenance, 'literature', n);
}

function checkFormatted(c: Calibration): void {
  const text = formatCalibration(c);
  assert.ok(text.endsWith('\n'));
  for (const line of text.slice(0, -1).split('\n')) {
    assert.ok(line.length <= 72, `too long (${line.length}): ${line}`);
    assert.match(line, /^[\x20-\x7e]*$/, `not plain ASCII: ${line}`);
  }
  for (const n of COST_NAMES) assert.match(text, new RegExp(`^${n} `, 'm'));
}

const stat = (median_ns: number, spread = 10): RawStat => ({
  median_ns,
  min_ns: median_ns * 0.95,
  max_ns: median_ns * (0.95 + spread / 100),
  spread_pct: spread,
  reps: 5,
  iterations: 1000,
  what: 'test',
});

/** A calibration built from made-up figures, memfd_secret unavailable; no compiler needed. */
function synthetic(): Calibration {
  const raw: RawTable = {
    getppid: stat(150),
    enosys: stat(110),
    mprotect_split_merge: stat(5000),
    madvise_dontneed_64: stat(14_000),
    anon_fault: stat(1200),
    memfd_secret_fault: { unavailable: 'memfd_secret: Function not implemented' },
    clflush_page: stat(360),
    memcpy_page: stat(44),
    pwrite_pread_page: stat(1300),
  };
  const created_at = '2026-11-25T10:00:00.000Z';
  const host = { hostname: 'testhost', kernel_release: '6.18.0', cpu_model: 'Test CPU', nproc: 2, mem_bytes: 2 ** 31, node: 'v20.20.2' };
  return { kind: 'memcrypt-bench-calibration', version: 1, created_at, host, reps: 5, raw, costs: deriveCosts(raw, 'testhost 2026-11-25') };
}

describe('deriveCosts', () => {
  it('maps the medians by the formulas and keeps defaults for unavailable figures', () => {
    const c = synthetic();
    checkMapping(c);
    assert.equal(c.costs.direct_map_remove, DEFAULT_COSTS.direct_map_remove);
    assert.equal(c.costs.vma_split.ns, 5000 / 2 - 150);
    assert.equal(c.costs.zap_page.ns, (14_000 - 150) / 64);
    assert.match(c.costs.swap_io_page.source, /stand-in for a swap device/);
    assert.equal(checkCostTable(c.costs), null);
  });

  it('never goes below 0 when the syscall outweighs the work', () => {
    const c = synthetic();
    const raw = { ...c.raw, getppid: stat(20_000), memfd_secret_fault: stat(1000) };
    const t = deriveCosts(raw, 'x');
    assert.equal(t.vma_split.ns, 0);
    assert.equal(t.zap_page.ns, 0);
    assert.equal(t.direct_map_remove.ns, 0);
    assert.equal(t.direct_map_remove.provenance, 'measured');
  });
});

describe('runCalibration (real probe)', { skip: noCompiler }, () => {
  let c: Calibration;
  before(() => {
    const r = runCalibration({ reps: 5, workdir: join(tmp, 'real') });
    assert.ok(r.ok, r.ok ? '' : r.why);
    c = r.calibration;
  });

  it('reports every probe figure with 5 samples, median within its range', () => {
    assert.equal(c.kind, 'memcrypt-bench-calibration');
    assert.equal(c.reps, 5);
    assert.deepEqual(Object.keys(c.raw), [...PROBE_NAMES]);
    for (const n of ['getppid', 'enosys', 'mprotect_split_merge', 'anon_fault', 'memcpy_page'] as const)
      assert.ok(!('unavailable' in c.raw[n]), `${n} is available on any Linux host`);
    for (const n of PROBE_NAMES) {
      const r = c.raw[n];
      if ('unavailable' in r) {
        assert.match(r.unavailable, /^\S+: /, `${n}: names what failed`);
        continue;
      }
      assert.equal(r.reps, 5, n);
      assert.ok(Number.isInteger(r.iterations) && r.iterations >= 1, n);
      assert.ok(r.min_ns <= r.median_ns && r.median_ns <= r.max_ns, `${n}: ${r.min_ns} <= ${r.median_ns} <= ${r.max_ns}`);
      assert.ok(r.spread_pct >= 0 && r.what !== '', n);
    }
    const h = c.host;
    assert.ok(h.hostname && h.kernel_release && h.cpu_model && h.node && h.nproc >= 1 && h.mem_bytes > 0);
  });

  it('measures exactly the mapped entries, by the formulas', () => {
    assert.deepEqual(Object.keys(c.costs), [...COST_NAMES]);
    assert.equal(checkCostTable(c.costs), null);
    checkMapping(c);
  });

  it('round-trips through loadCalibration and formats within 72 ASCII columns', () => {
    const file = join(tmp, 'real', 'calibration.json');
    saveCalibration(file, c);
    assert.deepEqual(loadCalibration(readFileSync(file, 'utf8'), file), c);
    checkFormatted(c);
  });

  it('keeps the binary and the I/O file out of the source tree', () => {
    assert.deepEqual(readdirSync(join(tmp, 'real')).sort(), ['calibration.json', 'memcrypt-probe']);
    const src = new URL('../../../bench/calibrate/', import.meta.url);
    assert.deepEqual(readdirSync(src).filter((f) => !f.endsWith('.ts') && !f.endsWith('.c')), []);
  });
});

describe('compile failures', () => {
  it('says in one line that the compiler is missing', () => {
    const r = runCalibration({ reps: 5, cc: '/nonexistent/cc', workdir: join(tmp, 'nocc') });
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.match(r.why, /compiler/);
    assert.match(r.why, /\/nonexistent\/cc/);
    assert.ok(!r.why.includes('\n'));
    assert.ok(!existsSync(join(tmp, 'nocc', 'memcrypt-probe')));
  });

  it('gives the first error line of a compiler that fails', () => {
    const r = compileProbe({ cc: 'false', outDir: join(tmp, 'false') });
    assert.ok(!r.ok);
    assert.match(r.why, /^C compiler 'false' failed/);
    assert.ok(!r.why.includes('\n'));
  });

  it('refuses reps that are not a positive integer', () => {
    for (const reps of [0, -1, 1.5, NaN]) {
      const r = runCalibration({ reps, workdir: join(tmp, 'reps') });
      assert.ok(!r.ok);
      assert.match(r.why, /^reps: /);
    }
  });
});

describe('loadCalibration', () => {
  const FILE = 'results/calibration.json';

  /** loading must throw an InputError for FILE at line 0 whose message matches re. */
  function refuses(text: string, re: RegExp): void {
    assert.throws(
      () => loadCalibration(text, FILE),
      (e: unknown) => {
        assert.ok(e instanceof InputError, `expected an InputError, got ${String(e)}`);
        assert.equal(e.file, FILE);
        assert.equal(e.line, 0);
        assert.ok(e.message.startsWith(`${FILE}: `), e.message);
        assert.match(e.message, re);
        assert.ok(!e.message.includes('\n'), 'one line');
        return true;
      },
    );
  }

  /** The synthetic document as JSON, after edit() changed its parsed form. */
  function edited(edit: (d: Record<string, any>) => void): string {
    const d = JSON.parse(calibrationJson(synthetic())) as Record<string, any>;
    edit(d);
    return JSON.stringify(d);
  }

  it('round-trips a document', () => {
    const c = synthetic();
    assert.deepEqual(loadCalibration(calibrationJson(c), FILE), c);
  });

  it('refuses broken documents with one-line messages', () => {
    refuses('{"kind":', /not JSON/);
    refuses('[]', /expected a JSON object/);
    refuses(edited((d) => (d['kind'] = 'memcrypt-bench-run')), /kind: expected 'memcrypt-bench-calibration'/);
    refuses(edited((d) => (d['version'] = 2)), /version: expected 1, got 2/);
    refuses(edited((d) => (d['costs'].fault.ns = -1)), /costs\.fault\.ns: expected a number >= 0/);
    refuses(edited((d) => (d['costs'].fault.provenance = 'guessed')), /costs\.fault\.provenance/);
    // an entry calibration measures is required: a file without it was not made by calibrate
    refuses(edited((d) => delete d['costs'].syscall), /costs\.syscall: missing/);
    // even where this host could not measure it (memfd_secret unavailable here: the default stands in)
    refuses(edited((d) => delete d['costs'].direct_map_remove), /costs\.direct_map_remove: missing/);
    refuses(edited((d) => (d['costs'].tlb_flush = { ns: 1, provenance: 'measured', source: 'x' })), /costs\.tlb_flush: unknown cost name/);
    refuses(edited((d) => delete d['host'].cpu_model), /host\.cpu_model: missing/);
    refuses(edited((d) => (d['host'].nproc = 0)), /host\.nproc/);
    refuses(edited((d) => delete d['host']), /host: expected an object/);
    refuses(edited((d) => (d['created_at'] = 'yesterday')), /created_at/);
    refuses(edited((d) => (d['raw'].getppid.median_ns = 1e9)), /raw\.getppid: expected min_ns <= median_ns <= max_ns/);
    refuses(edited((d) => (d['raw'].tlb = { unavailable: 'x' })), /raw\.tlb: unknown probe figure/);
    refuses(edited((d) => delete d['raw'].enosys), /raw\.enosys: missing/);
    refuses(edited((d) => (d['extra'] = 1)), /unknown field 'extra'/);
  });

  it('fills an entry calibration does not measure, missing from an older file, with its sourced default', () => {
    const c = loadCalibration(edited((d) => delete d['costs'].vm_exit), FILE);
    assert.deepEqual(c.costs.vm_exit, DEFAULT_COSTS.vm_exit);
    // a file from before schema 4 has none of the guest-memory terms: it loads as a calibration made now would be
    const old = edited((d) => {
      for (const n of ['vm_exit', 'conversion', 'pin_page']) delete d['costs'][n];
    });
    assert.deepEqual(loadCalibration(old, FILE), synthetic());
  });
});

describe('formatting', () => {
  it('writes ns with 3 significant digits in ns, us, ms', () => {
    assert.equal(formatNs(0), '0 ns');
    assert.equal(formatNs(300 / 64), '4.69 ns');
    assert.equal(formatNs(205), '205 ns');
    assert.equal(formatNs(999.6), '1.00 us');
    assert.equal(formatNs(2550), '2.55 us');
    assert.equal(formatNs(13_000), '13.0 us');
    assert.equal(formatNs(1.5e6), '1.50 ms');
  });

  it('keeps every line within 72 ASCII columns, whatever the host is called', () => {
    const c = synthetic();
    checkFormatted(c);
    checkFormatted({ ...c, host: { ...c.host, hostname: 'h'.repeat(100), cpu_model: 'Fancy µCPU ± 5 GHz '.repeat(5) } });
    const lines = formatCostTable(DEFAULT_COSTS);
    assert.equal(lines.length, COST_NAMES.length + 1);
    assert.ok(lines.every((l) => l.length <= 72 && /^[\x20-\x7e]*$/.test(l)));
    assert.match(formatCalibration(c), /unavailable: memfd_secret_fault \(memfd_secret: Function not implemented\)/);
    assert.match(formatCalibration(c), /^syscall +150 ns +measured +10\.0%$/m);
  });
});
