// The command line as a user meets it: the result set, the report (the
// argument first, plain ASCII, 72 columns), the CSV as other readers take it,
// the itemised model recomputed from the files alone, calibration, the
// one-line errors, and repeatable counters across two runs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COST_NAMES, DEFAULT_COSTS } from '../../hardware/costs.js';
import { resolveCosts } from '../../bench/costs.js';
import { parseCsv, parseMeta, parseSamples } from '../../bench/csv.js';
import { hostRefImpl } from '../../bench/hostref.js';
import { TIMING_V8_FLAGS } from '../../bench/repeat.js';
import { TERM_EVENTS } from '../../bench/model.js';
import { plan, type RunArgs } from '../../bench/run.js';
import { COLUMNS, COUNTER_COLUMNS, SCHEMA_VERSION, cellKey, termColumn, type Row, type RunMeta } from '../../bench/schema.js';
import { DESIGN_NAMES } from '../../interfaces/contract.js';
import { WORKLOAD_NAMES } from '../../workloads/workload.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memcrypt-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000, env });
// no warm-up lap (--warmup-cells 0) but in the whole-matrix run, which keeps the default
const FAST = ['--threads', '1', '--time', '1', '--samples', '2', '--warmup', '1', '--warmup-cells', '0', '--repeat', '1'];
const has = (cmd: string) => spawnSync(cmd, ['--version'], { encoding: 'utf8' }).status === 0;

describe('memcrypt-bench run: the whole matrix, one CPU', () => {
  const out = join(dir, 'all.csv');
  let r: ReturnType<typeof cli>;
  let rows: Row[];
  let meta: RunMeta;
  let report: string;
  let html: string;
  before(() => {
    // two fresh processes: the whole matrix through run --repeat's children
    r = cli(['run', ...FAST.slice(0, -4), '--repeat', '2', '--order-seed', '7', '--costs', 'defaults', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    rows = parseCsv(readFileSync(out, 'utf8'), out);
    meta = parseMeta(readFileSync(join(dir, 'all.meta.json'), 'utf8'), 'all.meta.json');
    report = readFileSync(join(dir, 'all.txt'), 'utf8');
    html = readFileSync(join(dir, 'all.html'), 'utf8');
  });

  it('writes the page beside them: <out>.html with the four figures and the report', () => {
    for (const f of ['capability', 'cost', 'scaling', 'samples']) assert.match(html, new RegExp(`data-figure="${f}"><svg `));
    assert.ok(html.includes(meta.run_id));
    assert.ok(html.includes('Capabilities on mktme hardware'), 'the text report is in it');
  });

  it('writes the result set: CSV, meta, samples and report, all of one run', () => {
    // 6 designs x (fault, enosys on two kernels, swap plain and encrypted,
    // migration, dax, qemu-guest, qemu-nvdimm, key-exhaustion) x 1 thread:
    // 6 x (1 + 2 + 2 + 1 + 1 + 1 + 1 + 1) = 6 x 10 on mktme, and the three
    // guest workloads on --guest-hardware sev and tdx: 2 x 6 x 3
    assert.equal(rows.length, 6 * 10 + 2 * 6 * 3);
    assert.ok(rows.filter((r) => r.hardware !== 'mktme').every((r) => r.sim_rounds === 0), 'guest hardware is not timed');
    assert.match(meta.command, /run --interface plain-mmap,encrypt-mprotect,dev-mktme,madvise-encrypt,memfd-secret,guest-memfd --hardware mktme --guest-hardware sev,tdx --workload fault,enosys-fallback,swap,migration,dax-stacking,qemu-guest,qemu-nvdimm,key-exhaustion /);
    assert.equal(meta.seed, 1);
    assert.equal(meta.schema_version, SCHEMA_VERSION);
    assert.ok(rows.every((row) => row.run_id === meta.run_id && row.cost_source === meta.cost_source));
    assert.deepEqual(meta.costs, DEFAULT_COSTS);
    assert.ok(meta.nproc >= 1 && meta.mem_bytes > 0 && meta.kernel_release !== '' && meta.load_avg_end.length === 3);
    for (const row of rows) assert.notEqual(row.outcome, 'data-loss');
    const timed = rows.filter((row) => row.sim_rounds > 0);
    assert.ok(timed.length > 0 && timed.every((row) => row.sim_ns_per_op_median > 0 && row.sim_rounds >= 4 && row.sim_processes === 2));
    assert.deepEqual([meta.repeat, meta.order_seed, meta.time_ms, meta.warmup_ms, meta.min_samples], [2, 7, 1, 1, 2]);
    // the host reference loop, once per process, and the report's head says it
    assert.ok(meta.host_ref_ns?.length === 2 && meta.host_ref_ns.every((x) => Number.isInteger(x) && x > 0), String(meta.host_ref_ns));
    assert.match(report, /\n {2}host ref \S+ [nu]s a pass \((native \S+|openssl)\), cv \d+\.\d% between 2/);
    assert.equal(meta.host_ref_impl, hostRefImpl());
    // 1-CPU cells only: no host scaling to measure
    assert.deepEqual([meta.host_scaling, meta.host_scaling_threads], [undefined, undefined]);
    assert.doesNotMatch(report, /\n {2}scaling /);
    // the flags the children said they ran with, in the meta and the report's head
    assert.equal(meta.timing_flags, TIMING_V8_FLAGS.join(' '));
    assert.match(report, /\n {2}node {5}v\d+\.\d+\.\d+ --no-concurrent-recompilation, tinybench/);
    // the default warm-up lap, said in the meta and in the command that reproduces the run
    assert.equal(meta.warmup_cells, 8);
    assert.match(meta.command, / --warmup-cells 8 /);
    // exact counters: the two processes agreed on every cell, 2-CPU cells too (their counting round runs in lockstep)
    assert.equal(meta.counting, 'lockstep');
    assert.ok(rows.every((row) => !row.stability.includes('unstable-counters')), rows.map((x) => x.stability).join(' '));
    const samples = parseSamples(readFileSync(join(dir, 'all.samples.json'), 'utf8'), 'all.samples.json');
    assert.equal(samples.runId, meta.run_id);
    assert.deepEqual(samples.cells.map((s) => s.key), rows.map(cellKey));
    // per timed cell: one median per process that ran it clean (compare's samples), batches per process
    for (const [i, c] of samples.cells.entries())
      if (rows[i].sim_rounds > 0) assert.ok(c.samples.length >= 1 && c.samples.length <= 2 && c.batches!.length === 2, c.key);
      else assert.deepEqual(c.samples, []);
    assert.equal(r.stdout, report + '\n');
    assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
    const again = cli(['report', out]);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stdout, report + '\n');
  });

  it('the model is itemised: the terms add up to the total, and each is counters x cost / ops, from the files alone', () => {
    for (const row of rows) {
      const where = cellKey(row);
      if (!Number.isFinite(row.modelled_ns_per_op)) continue;
      const sum = COST_NAMES.reduce((a, c) => a + row[termColumn(c)], 0);
      assert.equal(Math.round(sum * 1000), Math.round(row.modelled_ns_per_op * 1000), where);
      for (const c of COST_NAMES) {
        const want = Math.round((TERM_EVENTS[c].count(row) * meta.costs[c].ns * 1000) / row.ops) / 1000;
        assert.equal(row[termColumn(c)], want, `${where} ${c}`);
      }
    }
    // every counter the model uses is a column of the CSV
    for (const c of ['key_programs', 'direct_map_removed', 'pages_zapped', 'vma_splits', 'vma_merges', 'swap_sealed'])
      assert.ok((COUNTER_COLUMNS as readonly string[]).includes(c), c);
    const secret = rows.find((x) => x.interface === 'memfd-secret' && x.workload === 'fault')!;
    assert.ok(secret.direct_map_removed > 0 && secret.model_direct_map_remove_ns_per_op > 0);
  });

  it('a cell that did not run its scenario has no modelled cost', () => {
    const notRun = rows.filter((x) => x.outcome === 'unsupported' || x.outcome === 'crashed');
    assert.ok(notRun.length >= 6);
    for (const x of notRun) {
      assert.ok(Number.isNaN(x.modelled_ns_per_op), cellKey(x));
      assert.ok(Number.isNaN(x.model_over_plain_ns_per_op), cellKey(x));
      for (const c of COST_NAMES) assert.ok(Number.isNaN(x[termColumn(c)]), `${cellKey(x)} ${c}`);
    }
  });

  it('the control runs in every workload, and every modelled cell reports its cost over it', () => {
    const plain = rows.filter((x) => x.interface === 'plain-mmap');
    // one per workload, kernel and swap: the 10 cells each design has on
    // mktme, and the 3 guest workloads on sev and tdx (see above)
    assert.equal(plain.length, 10 + 2 * 3);
    assert.deepEqual(
      [...new Set(plain.map((x) => x.workload))].sort(),
      ['dax-stacking', 'enosys-fallback', 'fault', 'key-exhaustion', 'migration', 'qemu-guest', 'qemu-nvdimm', 'swap'],
    );
    // the control protects nothing itself; an SEV guest's memory is encrypted
    // by the hardware whatever gave QEMU the RAM
    const sevGuest = (x: Row) => x.hardware === 'sev' && x.workload.startsWith('qemu-');
    assert.ok(plain.every((x) => x.outcome === (sevGuest(x) ? 'encrypted' : 'plaintext') && (x.model_over_plain_ns_per_op === 0 || Number.isNaN(x.modelled_ns_per_op))), plain.map((x) => `${cellKey(x)} ${x.outcome}`).join('; '));
    for (const x of rows.filter((y) => Number.isFinite(y.modelled_ns_per_op))) {
      const c = plain.find((p) => p.workload === x.workload && p.kernel === x.kernel && p.swap === x.swap && p.hardware === x.hardware)!;
      assert.equal(x.model_over_plain_ns_per_op, Math.round((x.modelled_ns_per_op - c.modelled_ns_per_op) * 1000) / 1000, cellKey(x));
    }
  });

  it('swap: plain swap leaks to the swap file, swap over dm-crypt does not', () => {
    for (const design of ['encrypt-mprotect', 'madvise-encrypt']) {
      const plainSwap = rows.find((x) => x.interface === design && x.workload === 'swap' && x.swap === 'plain')!;
      assert.equal(plainSwap.outcome, 'leaked');
      assert.equal(plainSwap.leak_medium, 'swap');
      assert.ok(plainSwap.leak_bytes > 0 && plainSwap.leak_bytes % 4096 === 0);
      const dmc = rows.find((x) => x.interface === design && x.workload === 'swap' && x.swap === 'encrypted')!;
      assert.equal(dmc.outcome, 'encrypted');
      assert.equal(dmc.leak_medium, '');
      assert.equal(dmc.leak_bytes, 0);
    }
    assert.ok(rows.filter((x) => x.workload !== 'swap').every((x) => x.swap === 'none'));
  });

  it('the report: plain ASCII within 72 columns, the argument first, the control, fallback cost, leak/swap next to enc', () => {
    for (const line of report.split('\n')) {
      assert.ok(line.length <= 72, `too wide: ${line}`);
      assert.match(line, /^[\x20-\x7e]*$/, `not plain ASCII: ${line}`);
    }
    const at = (s: string) => report.indexOf(s);
    assert.ok(at('Modelled cost per op (the argument)') > 0);
    assert.ok(at('Modelled cost per op') < at('Capabilities on mktme'));
    assert.ok(at('Capabilities on mktme') < at('Harness speed (not the argument)'));
    assert.match(report, /^ *plain-mmap +p +1 +clear /m);
    assert.match(report, /Fallback cost \(enosys-fallback/);
    assert.match(report, /^ *enc-mprot +plain\/ENOSYS +\S+ us +\S+ us +[+-]\S+ (ns|us) +[+-]\S+ (ns|us)$/m);
    assert.match(report, /swap +swap-dmc/);
    assert.match(report, /^ *enc-mprot +enc +plain\/ENOSYS +leak\/swap +enc +/m);
    for (const k of ['kernel_release', 'load_avg_start'] as const) assert.ok(meta[k]);
    assert.match(report, /^ {2}load {5}\d+\.\d\d \d+\.\d\d \d+\.\d\d at start, /m);
    assert.match(report, /^ {2}costs {4}sourced defaults/m);
    assert.match(report, /^syscall +\S+ ns +literature /m);
    assert.match(report, /Reproduce/);
    assert.ok(report.includes(meta.git_sha));
  });

  it('any CSV reader takes the file as it is: Python csv.DictReader and sqlite3 .import', { skip: !has('python3') || !has('sqlite3') }, () => {
    const py = spawnSync('python3', ['-c', 'import csv,sys,json; r=list(csv.DictReader(open(sys.argv[1], newline=""))); print(json.dumps({"n": len(r), "cols": list(r[0].keys()), "first": r[0]["interface"]}))', out], { encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    const got = JSON.parse(py.stdout) as { n: number; cols: string[]; first: string };
    assert.equal(got.n, rows.length);
    assert.deepEqual(got.cols, [...COLUMNS]);
    assert.equal(got.first, rows[0].interface);
    const db = join(dir, 'r.db');
    const sq = spawnSync('sqlite3', [db], { input: `.mode csv\n.import ${out} results\nselect count(*) from results;\nselect count(*) from pragma_table_info('results');\nselect interface from results where rowid = 1;\n`, encoding: 'utf8' });
    assert.equal(sq.status, 0, sq.stderr);
    assert.deepEqual(sq.stdout.trim().split('\n'), [String(rows.length), String(COLUMNS.length), rows[0].interface]);
  });
});

describe('memcrypt-bench run: the default suite', () => {
  // run's defaults (the whole matrix above checks that they are these lists)
  const args = (threads: string[]): RunArgs => ({
    interface: [...DESIGN_NAMES],
    hardware: ['mktme'],
    workload: [...WORKLOAD_NAMES],
    threads,
    swap: ['plain', 'encrypted'],
    backend: ['openssl'],
    seed: 1,
    time: 1,
    samples: 2,
    warmup: 1,
    format: 'none',
    repeat: 1,
  });

  it('plans every design on every workload at 1 and 2 threads, key-exhaustion at 1 only', () => {
    const cells = plan(args(['1', '2']));
    // 6 designs x (fault + enosys on 2 kernels + swap plain and encrypted + migration + dax + qemu-guest + qemu-nvdimm) x 2 thread counts
    // + 6 designs x key-exhaustion x 1 thread (its processes run on the boot CPU): 6 x 9 x 2 + 6 x 1 x 1 = 108 + 6
    assert.equal(cells.length, 114);
    const keys = cells.filter((c) => c.workload.name === 'key-exhaustion');
    assert.equal(keys.length, 6);
    assert.ok(keys.every((c) => c.threads === 1));
    const others = cells.filter((c) => c.workload.name !== 'key-exhaustion');
    assert.equal(others.filter((c) => c.threads === 1).length, 54);
    assert.equal(others.filter((c) => c.threads === 2).length, 54);
  });

  it('--guest-hardware adds the guest workloads there, untimed, and nothing for a profile already in --hardware', () => {
    const cells = plan({ ...args(['1', '2']), guestHardware: ['sev', 'tdx', 'mktme'] });
    // 114 on mktme, then per guest profile 6 designs x (qemu-guest + qemu-nvdimm) x 2 threads + 6 x key-exhaustion x 1
    assert.equal(cells.length, 114 + 2 * (6 * 2 * 2 + 6));
    const extra = cells.filter((c) => c.hardware !== 'mktme');
    assert.deepEqual([...new Set(extra.map((c) => c.workload.name))].sort(), ['key-exhaustion', 'qemu-guest', 'qemu-nvdimm']);
    assert.ok(extra.every((c) => c.timed === false));
    assert.ok(cells.filter((c) => c.hardware === 'mktme').every((c) => c.timed === undefined));
  });

  it('a workload with maxThreads gets it when asked for more, once however many more', () => {
    const keys = (threads: string[]) => plan(args(threads)).filter((c) => c.workload.name === 'key-exhaustion').map((c) => c.threads);
    assert.deepEqual(keys(['2']), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(keys(['1', '2', '4']), [1, 1, 1, 1, 1, 1]);
  });
});

describe('memcrypt-bench run: the host scaling', () => {
  it('cells of 2 CPUs: each process measures 2 threads side by side, and the meta and the report say it', () => {
    const out = join(dir, 'scal.csv');
    const r = cli(['run', '-w', 'fault', '-i', 'plain-mmap', '-t', '1,2', '--time', '1', '--samples', '2', '--warmup', '1', '--warmup-cells', '0', '--repeat', '2', '--costs', 'defaults', '--format', 'none', '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const meta = parseMeta(readFileSync(join(dir, 'scal.meta.json'), 'utf8'), 'm');
    assert.equal(meta.host_scaling_threads, 2);
    assert.ok(meta.host_scaling?.length === 2 && meta.host_scaling.every((x) => Number.isFinite(x) && x > 0), String(meta.host_scaling));
    assert.match(readFileSync(join(dir, 'scal.txt'), 'utf8'), /\n {2}scaling  the host ref side by side: 2 threads did \d+\.\d\dx one thread's/);
  });
});

describe('memcrypt-bench run: repeatable counters', () => {
  it('counts the same events in single-thread cells on a second run with the same seed', () => {
    const a = join(dir, 'd1.csv');
    const b = join(dir, 'd2.csv');
    const args = ['run', '--workload', 'fault,enosys-fallback,migration', ...FAST, '--seed', '5', '--format', 'none', '--costs', 'defaults'];
    for (const out of [a, b]) assert.equal(cli([...args, '--out', out]).status, 0);
    // one process (the run's own): one host reference time
    const m1 = parseMeta(readFileSync(join(dir, 'd1.meta.json'), 'utf8'), 'm');
    assert.equal(m1.host_ref_ns?.length, 1);
    assert.equal(m1.timing_flags, ''); // timed in the run's own process, started without flags
    const ra = parseCsv(readFileSync(a, 'utf8'), a);
    const rb = parseCsv(readFileSync(b, 'utf8'), b);
    assert.equal(ra.length, rb.length);
    for (let i = 0; i < ra.length; i++) {
      assert.equal(cellKey(rb[i]), cellKey(ra[i]));
      assert.equal(rb[i].outcome, ra[i].outcome);
      for (const c of COUNTER_COLUMNS) assert.equal(rb[i][c], ra[i][c], `${cellKey(ra[i])} ${c}`);
      assert.equal(rb[i].modelled_ns_per_op, ra[i].modelled_ns_per_op);
    }
  });
});

describe('calibration', () => {
  it('calibrate writes a table run uses, and names it in every row', { skip: !has('cc') }, () => {
    const cal = join(dir, 'cal.json');
    assert.match(cli(['calibrate', '--reps', '4', '--out', cal]).stderr, /^memcrypt-bench: --reps: expected an integer in \[5, 1000\], got '4'\n$/);
    const c = cli(['calibrate', '--out', cal]);
    assert.equal(c.status, 0, c.stderr);
    assert.match(c.stdout, /^syscall +\S+ (ns|us) +measured/m);
    const table = JSON.parse(readFileSync(cal, 'utf8')) as { costs: RunMeta['costs'] };
    const out = join(dir, 'cal-run.csv');
    const r = cli(['run', '--workload', 'fault', '--interface', 'plain-mmap,memfd-secret', ...FAST, '--format', 'none', '--costs', cal, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const meta = parseMeta(readFileSync(join(dir, 'cal-run.meta.json'), 'utf8'), 'm');
    assert.deepEqual(meta.costs, table.costs);
    assert.match(meta.cost_source, new RegExp(`^calibrated on .+ \\d{4}-\\d\\d-\\d\\d \\(${cal.replace(/[.]/g, '\\.')}\\)$`));
    for (const row of parseCsv(readFileSync(out, 'utf8'), out)) assert.equal(row.cost_source, meta.cost_source);
  });

  it('without a C compiler, calibrate says so in one line', () => {
    const r = cli(['calibrate', '--out', join(dir, 'nocc.json')], { ...process.env, CC: '/nonexistent/cc' });
    assert.equal(r.status, 1);
    assert.match(r.stderr.trim(), /^memcrypt-bench: calibrate: no C compiler: '\/nonexistent\/cc' not found/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(existsSync(join(dir, 'nocc.json')), false);
  });

  it('run without --costs: the host calibration when there is one; else it calibrates first, or says why not and uses the defaults', () => {
    const auto = join(dir, 'auto', 'calibration.json');
    const saved = process.env.CC;
    process.env.CC = '/nonexistent/cc';
    try {
      const none = resolveCosts(undefined, auto);
      assert.deepEqual(none.costs, DEFAULT_COSTS);
      assert.match(none.note!, /^cannot calibrate this host \(no C compiler: .*\); the model uses the sourced defaults$/);
      assert.equal(existsSync(auto), false);
    } finally {
      if (saved === undefined) delete process.env.CC;
      else process.env.CC = saved;
    }
    if (!has('cc')) return;
    const first = resolveCosts(undefined, auto);
    assert.match(first.note!, /^no cost table yet: calibrated this host in [\d.]+ s, kept in /);
    assert.equal(existsSync(auto), true);
    assert.equal(first.costs.syscall.provenance, 'measured');
    const second = resolveCosts(undefined, auto);
    assert.equal(second.note, null);
    assert.deepEqual(second.costs, first.costs);
    assert.equal(second.source, first.source);
  });
});

describe('one-line errors', () => {
  it('answers bad arguments and bad files with one line and exit 2, before any work', () => {
    const cases: [string[], RegExp][] = [
      [['run', '--interface', 'sys-encrypt'], /--interface: interface: unknown design 'sys-encrypt'/],
      [['run', '--hardware', 'mktme2'], /--hardware: hardware: unknown profile 'mktme2'/],
      [['run', '--threads', '1,x'], /^memcrypt-bench: --threads: expected an integer in \[1, 16\], got 'x'$/],
      [['run', '--threads', '0'], /^memcrypt-bench: --threads: expected an integer in \[1, 16\], got '0'$/],
      [['run', '--seed', 'abc'], /^memcrypt-bench: --seed: expected an integer in \[1, 2147483648\], got 'abc'$/],
      [['run', '--repeat', '1.5'], /--repeat: expected an integer in \[1, 100\], got '1\.5'$/],
      [['run', '--alpha', 'high'], /--alpha: expected a number in \(0, 1\), got 'high'$/],
      [['run', '--time', '-5'], /--time: expected an integer/],
      [['run', '--out', join(dir, 'no-such-dir', 'x.csv')], /--out: directory .*no-such-dir does not exist$/],
      [['run', '--out', '/proc/x.csv'], /--out: cannot write in \/proc/],
      [['run', '--out', join(dir, 'same.csv'), '--baseline', join(dir, 'same.csv')], /same\.csv: is the baseline it would be compared with/],
      [['run', '--swap', 'zram'], /--swap: expected plain or encrypted, got 'zram'/],
      [['run', '--format', 'xml'], /Invalid values/],
      [['run', '--costs', join(dir, 'nope.json')], /nope\.json: cannot read: ENOENT/],
      [['run', '--out', dir], /--out: expected a file name ending in \.csv/],
      [['run', '--out', join(dir, 'sub.csv', 'x.csv'), '--costs', 'defaults'], /--out: .*sub\.csv/],
      [['frobnicate'], /Unknown argument: frobnicate/],
      [['report', join(dir, 'missing.csv')], /missing\.csv: cannot read: ENOENT/],
    ];
    writeFileSync(join(dir, 'sub.csv'), 'not a directory');
    const badCal = join(dir, 'badcal.json');
    writeFileSync(badCal, '{"kind": "something else"}');
    cases.push([['run', '--costs', badCal], /badcal\.json: /]);
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, '# memcrypt-bench results\nschema_version,run_id\n1,x\n');
    cases.push([['report', bad], /bad\.csv:1: comment lines before the header: a schema 1 file/]);
    const results = fileURLToPath(new URL('../../../results/', import.meta.url));
    const before = existsSync(results) ? readdirSync(results) : [];
    for (const [args, re] of cases) {
      const r = cli(args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(lines[0], re);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
    // refused before the matrix ran: no result file was written
    assert.deepEqual(existsSync(results) ? readdirSync(results) : [], before);
  });
});
