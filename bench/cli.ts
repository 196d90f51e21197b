#!/usr/bin/env node
// memcrypt-bench command line. The only layer that touches process, the
// terminal and report files.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, openSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PROFILE_NAMES, getProfile } from '../hardware/profiles.js';
import { availableBackends, backendNote, defaultBackend, getBackend } from '../hardware/xts.js';
import { DESIGN_NAMES } from '../interfaces/contract.js';
import { getDesign } from '../interfaces/registry.js';
import { defaultOvercommit } from '../kernel/limits.js';
import { REPLAY_RAM_PAGES, Replayer, type ReplayHost, TraceError } from '../kernel/replay.js';
import { csvList, nonNegative, positiveInt, probability } from './args.js';
import { hostReplaySettings } from './host.js';
import { makeRunDir, onStopSignals, signalExitCode } from './tempdirs.js';
import { getWorkload } from '../workloads/registry.js';
import { WORKLOAD_NAMES } from '../workloads/workload.js';
import { CALIBRATION_FILE, formatCalibration, hostInfo } from './calibrate/calibrate.js';
import { compareRuns, formatCompare, formatCompareCsv, loadRun, type CompareResult } from './compare.js';
import { formatCore, opensslSpeed, runCoreBench } from './core.js';
import { calibrateInto } from './costs.js';
import { checkResultSet, metaPath, parseCsv, parseMeta, parseSamples, samplesPath } from './csv.js';
import { EXPORTS, EXPORT_NAMES, exportFile } from './export.js';
import { HISTORY_FILE, readHistory } from './history.js';
import { compareSpec, historySpec, renderPng, renderSvg, runFigures } from './figures.js';
import { formatFigurePage, formatHtml, htmlPath, pngPath } from './html.js';
import { InputError, readInput, writeFileAtomic } from './io.js';
import { hostScaling } from './hostref.js';
import { formatPhases, groupByCell, measureGroup, type PhaseCell } from './phases.js';
import { formatReport } from './report.js';
import { runCellsJob } from './repeat.js';
import { AB_TIME_MS, AB_WARMUP_MS, cellName, checkPair, formatAb, formatAbCsv, loadBuild, runAb, runAbJob, specOf } from './ab.js';
import { checkOut, gitSha, plan, runBench, type MatrixArgs, type RunArgs } from './run.js';
import { REPEAT, TIME_MS, WARMUP_CELLS, WARMUP_MS } from './runner.js';
import type { Row } from './schema.js';
import { formatHistory, historyTrend } from './trend.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function fail(msg: string): never {
  // one line, whatever the source (yargs writes some messages on several)
  process.stderr.write(`memcrypt-bench: ${msg.trim().replace(/\s*\n\s*/g, '; ')}\n`);
  process.exit(2);
}

interface GateArgs {
  threshold: number;
  alpha: number;
  'fail-on': string;
}

/**
 * Compare and print; the exit code CI gates on: 1 for a regression (or also
 * a behaviour change with --fail-on any; never with none).
 */
async function gate(base: string, now: string, a: GateArgs, format: string, html?: string): Promise<number> {
  const r: CompareResult = compareRuns(loadRun(base), loadRun(now), { thresholdPct: a.threshold, alpha: a.alpha });
  const text = formatCompare(r);
  process.stdout.write(format === 'csv' ? formatCompareCsv(r) : text + '\n');
  if (html !== undefined) {
    const cells = r.cells
      .filter((c) => Number.isFinite(c.baseMedian) && Number.isFinite(c.newMedian))
      .map((c) => ({ ...c, baseSamples: r.base.samples.get(c.key) ?? [], newSamples: r.now.samples.get(c.key) ?? [] }));
    const spec = compareSpec(cells);
    const facts: [string, string][] = [['base', `${r.base.file} (${r.base.meta.git_sha})`], ['new', `${r.now.file} (${r.now.meta.git_sha})`]];
    writeFileAtomic(html, formatFigurePage('memcrypt-bench compare', facts, [{ name: 'compare', title: 'Base against new', svg: await renderSvg(spec) }], text));
  }
  return failStatus(a, r);
}

/** The exit status --fail-on asks for: 1 for a regression (or also a behaviour change with any; never with none). */
function failStatus(a: GateArgs, r: { regressions: number; behaviourChanges: number }): number {
  if (a['fail-on'] === 'none') return 0;
  return r.regressions > 0 || (a['fail-on'] === 'any' && r.behaviourChanges > 0) ? 1 : 0;
}

const alphaOption = {
  type: 'string',
  default: 0.05,
  describe: 'significance level of the U test, after Holm',
  coerce: (v: unknown) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n >= 1) throw new Error(`--alpha: expected a number in (0, 1), got '${String(v)}'`);
    return n;
  },
} as const;
const failOnOption = { choices: ['regression', 'any', 'none'], default: 'any', describe: 'exit 1 on a regression only, also on any behaviour change, or never' } as const;

/** The options that choose the cells: run and ab share them. */
function matrixOptions<T>(y: Argv<T>) {
  return y
    .option('interface', { alias: 'i', type: 'string', array: true, default: [...DESIGN_NAMES], describe: 'designs (comma list)', coerce: csvList('interface', (s) => getDesign(s)) })
    .option('hardware', { alias: 'H', type: 'string', array: true, default: ['mktme'], describe: 'hardware profiles', coerce: csvList('hardware', (s) => getProfile(s)) })
    .option('workload', { alias: 'w', type: 'string', array: true, default: [...WORKLOAD_NAMES], describe: 'workloads', coerce: csvList('workload', (s) => getWorkload(s)) })
    .option('threads', { alias: 't', type: 'string', array: true, default: ['1', '2'], describe: 'worker CPUs per cell', coerce: csvList('threads', positiveInt('threads', 16)) })
    .option('kernel', { type: 'string', array: true, describe: "kernels (patched,unpatched); default: each workload's own", coerce: csvList('kernel', (s: string) => { if (s !== 'patched' && s !== 'unpatched') throw new Error(`expected patched or unpatched, got '${s}'`); }) })
    .option('swap', { type: 'string', array: true, default: ['plain', 'encrypted'], describe: 'swap devices for workloads that swap: plain, encrypted (dm-crypt)', coerce: csvList('swap', (s: string) => { if (s !== 'plain' && s !== 'encrypted') throw new Error(`expected plain or encrypted, got '${s}'`); }) })
    .option('backend', { type: 'string', array: true, default: [defaultBackend()], describe: 'crypto backends: native (N-API addon built by npm ci, in place: its own VAES XTS where the CPU has VAES and AVX-512, else OpenSSL EVP), openssl (node:crypto), noble (pure JS)', coerce: csvList('backend', (s) => getBackend(s)) })
    .option('seed', { type: 'string', default: 1, describe: 'seed for data and keys', coerce: positiveInt('seed', 2 ** 31) });
}

async function run(a: RunArgs & GateArgs & { baseline?: string }): Promise<void> {
  // the baseline must be readable before an hour of work, not after
  const baseline = a.baseline === undefined ? undefined : resolve(a.baseline === '' ? join(ROOT, 'results', 'baseline.csv') : a.baseline);
  if (baseline !== undefined) {
    if (a.out !== undefined && resolve(a.out) === baseline) fail(`--out ${a.out}: is the baseline it would be compared with; write the run elsewhere`);
    loadRun(baseline);
  }
  const tty = process.stderr.isTTY;
  const t0 = performance.now();
  const say = (line: string) => process.stderr.write(`${tty ? '\n' : ''}memcrypt-bench: ${line}\n`);
  const stop = onStopSignals(say);
  const res = await runBench(a, {
    root: ROOT,
    say: (line) => process.stderr.write(`memcrypt-bench: ${line}\n`),
    stop: () => stop.reason,
    progress: (done, total, r: Row) => {
      if (!tty) return;
      const what = `${r.workload} ${r.interface} ${r.kernel} ${r.swap === 'none' ? '' : r.swap + ' swap '}t${r.threads}`;
      process.stderr.write(`\r\x1b[K[${done}/${total}] ${what}: ${r.outcome}${r.errno ? '/' + r.errno : ''}`);
      if (done === total) process.stderr.write('\n');
    },
  });
  const stopped = stop.reason;
  stop.dispose();
  if (a.format === 'text') process.stdout.write(res.report + '\n');
  else if (a.format === 'csv') process.stdout.write(res.csv);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  process.stderr.write(`wrote ${res.out} (+ .meta.json, .samples.json, .txt, .html${a.png ? ', figure PNGs' : ''}${a.export ? ', ' + EXPORTS[a.export].suffix : ''}) in ${secs} s\n`);
  if (res.history) process.stderr.write(`appended ${res.history.records} record${res.history.records === 1 ? '' : 's'} to ${res.history.file}\n`);
  if (res.stopped) {
    // a partial set: no gate, and the exit status of the signal
    process.stderr.write(`stopped by ${stopped}: ${res.stopped}; no history record, no baseline comparison\n`);
    process.exitCode = signalExitCode(stopped ?? 'SIGTERM');
    return;
  }
  if (baseline !== undefined) {
    process.stdout.write('\n');
    process.exitCode = await gate(baseline, res.out, a, 'text');
  }
}

type AbArgs = MatrixArgs &
  Pick<RunArgs, 'seed' | 'time' | 'warmup' | 'out' | 'format'> &
  GateArgs & {
    vs: string;
    repeat?: number;
    'order-seed'?: number;
  };

async function ab(a: AbArgs): Promise<void> {
  const what = `--vs ${a.vs}`;
  const base = resolve(a.vs);
  checkPair(ROOT, base, what);
  await loadBuild(base, what); // a checkout that is not a build: one line now, not a failed child later
  const out = a.out === undefined ? undefined : resolve(a.out);
  if (out !== undefined) checkOut(out, a.out);
  const cells = plan({ ...a, guestHardware: [] })
    .filter((c) => c.timed !== false)
    .map(specOf);
  const orderSeed = a['order-seed'] ?? randomBytes(4).readUInt32LE(0) % 1_000_000_007;
  const say = (line: string): void => void process.stderr.write(`memcrypt-bench: ${line}\n`);
  const stop = onStopSignals(say);
  const t0 = performance.now();
  const r = await runAb({
    now: ROOT,
    base,
    cells,
    processes: a.repeat ?? null,
    seed: a.seed,
    orderSeed,
    timeMs: a.time,
    warmupMs: a.warmup,
    thresholdPct: a.threshold,
    alpha: a.alpha,
    tmpdir: makeRunDir(),
    say,
    stop: () => stop.reason,
  });
  const stopped = stop.reason;
  stop.dispose();
  if (r === null) {
    process.stderr.write(`stopped by ${stopped ?? 'a signal'} before two processes finished: no verdict\n`);
    process.exitCode = signalExitCode(stopped ?? 'SIGTERM');
    return;
  }
  const h = hostInfo();
  const text = formatAb(r, [
    ['new', `${gitSha(ROOT)} ${ROOT}`],
    ['base', `${gitSha(base)} ${base}`],
    ['machine', `${h.hostname}, ${h.cpu_model}, ${h.nproc} CPUs, ${h.kernel_release}, node ${h.node}`],
    ['settings', `--time ${a.time} --warmup ${a.warmup} (ms a cell and process, for both builds together), --seed ${a.seed}, --order-seed ${orderSeed}${stopped ? `; stopped by ${stopped} after ${r.processes} processes` : ''}`],
  ]);
  if (out !== undefined) writeFileAtomic(out, formatAbCsv(r));
  process.stdout.write(a.format === 'csv' ? formatAbCsv(r) : text + '\n');
  process.stderr.write(`${r.processes} processes in ${((performance.now() - t0) / 1000).toFixed(1)} s${out !== undefined ? `; wrote ${out}` : ''}\n`);
  if (stopped) process.exitCode = signalExitCode(stopped);
  else process.exitCode = failStatus(a, r);
}

function listAll(): void {
  const lines = ['interfaces:'];
  for (const n of DESIGN_NAMES) lines.push(`  ${n.padEnd(18)} ${getDesign(n).summary}`);
  lines.push('hardware:');
  for (const n of PROFILE_NAMES) lines.push(`  ${n.padEnd(18)} ${getProfile(n).description}`);
  lines.push('workloads:');
  for (const n of WORKLOAD_NAMES) {
    const w = getWorkload(n);
    lines.push(`  ${n.padEnd(18)} ${w.description} (op = ${w.op}; kernels: ${w.kernels.join(', ')})`);
  }
  lines.push('crypto backends:', ...availableBackends().map((b) => `  ${b}${b === defaultBackend() ? ' (default)' : ''}`));
  const note = backendNote();
  if (note) lines.push(`  (${note})`);
  process.stdout.write(lines.join('\n') + '\n');
}

async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('memcrypt-bench')
    .usage('$0 <command> [options]')
    .command(
      'run',
      'run the matrix; writes <run id>.csv, .meta.json, .samples.json and .txt to results/. The argument is the modelled cost per op (exact counters x this host\'s calibrated cost table, itemised); the simulator time is the harness\'s own speed',
      (y) =>
        matrixOptions(y)
          .option('guest-hardware', { type: 'string', array: true, default: ['sev', 'tdx'], describe: 'hardware profiles the guest workloads (qemu-guest, qemu-nvdimm, key-exhaustion) also run on, beyond --hardware: counted and modelled, not timed', coerce: csvList('guest-hardware', (s) => getProfile(s)) })
          .option('costs', { type: 'string', describe: `cost table: a calibration file, or 'defaults' (the sourced defaults); default ${CALIBRATION_FILE}, made by calibrating this host first if missing` })
          .option('time', { type: 'string', default: TIME_MS, describe: 'minimum timing per cell and process, ms', coerce: positiveInt('time', 600_000) })
          .option('samples', { type: 'string', default: 10, describe: 'minimum timed rounds per cell and process', coerce: positiveInt('samples', 100_000) })
          .option('warmup', { type: 'string', default: WARMUP_MS, describe: 'warm-up per timed cell and process, ms', coerce: positiveInt('warmup', 600_000) })
          .option('warmup-cells', { type: 'string', default: WARMUP_CELLS, describe: 'cells each process runs first and throws away (its warm-up lap: the first cells of a fresh process run slower): the first cell of each workload in its order, then the next ones', coerce: positiveInt('warmup-cells', 1000, 0) })
          .option('repeat', { type: 'string', default: REPEAT, describe: 'fresh processes that time every timed cell, each in its own shuffled order (compare tests their medians)', coerce: positiveInt('repeat', 100) })
          .option('order-seed', { type: 'string', describe: 'seed of the shuffled cell orders (default: random; recorded in the meta file)', coerce: positiveInt('order-seed', 2 ** 31, 0) })
          .option('out', { alias: 'o', type: 'string', describe: 'CSV path (default results/<run id>.csv)' })
          .option('format', { alias: 'f', choices: ['text', 'csv', 'none'], default: 'text', describe: 'what to print on stdout' })
          .option('baseline', { type: 'string', describe: 'compare with a baseline CSV when done (default results/baseline.csv); exit 1 on a regression or behaviour change' })
          .option('threshold', { type: 'string', default: 5, describe: 'with --baseline: regression threshold, %', coerce: nonNegative('threshold') })
          .option('alpha', alphaOption)
          .option('fail-on', failOnOption)
          .option('png', { type: 'boolean', default: false, describe: 'also write each figure of <run id>.html as <run id>.<figure>.png' })
          .option('export', { choices: EXPORT_NAMES, describe: 'also write <out>.github-action-benchmark.json (customSmallerIsBetter) or <out>.bmf.json (Bencher Metric Format): see the export command' })
          .option('history', { type: 'string', describe: `append one record per cell to this history store (default ${HISTORY_FILE} beside the CSV); --no-history: none` }),
      (a) => run({ ...(a as unknown as RunArgs & GateArgs & { baseline?: string }), orderSeed: a['order-seed'], guestHardware: a['guest-hardware'] }),
    )
    .command(
      'compare <base> <new>',
      'compare two results CSVs (each with its .meta.json and .samples.json): exact counters and outcomes, Mann-Whitney U on the simulator times',
      (y) =>
        y
          .positional('base', { type: 'string', demandOption: true })
          .positional('new', { type: 'string', demandOption: true })
          .option('threshold', { type: 'string', default: 5, describe: 'a significant slowdown above this % is a regression', coerce: nonNegative('threshold') })
          .option('alpha', alphaOption)
          .option('fail-on', failOnOption)
          .option('format', { alias: 'f', choices: ['text', 'csv'], default: 'text' })
          .option('html', { type: 'string', describe: 'also write a self-contained page with base against new per cell, and the verdicts, to this file' }),
      async (a) => {
        process.exitCode = await gate(a.base, a.new, a as unknown as GateArgs, a.format, a.html === undefined ? undefined : resolve(a.html));
      },
    )
    .command(
      'export <csv>',
      'write an existing results CSV for a tracker: github-action-benchmark (customSmallerIsBetter) or bencher (BMF JSON); every cell keeps an outcome code, beside its modelled cost and simulator time where it has them',
      (y) =>
        y
          .positional('csv', { type: 'string', demandOption: true })
          .option('to', { choices: EXPORT_NAMES, demandOption: true, describe: 'the tracker' })
          .option('out', { alias: 'o', type: 'string', describe: 'where to write (default: the CSV with .csv replaced by .github-action-benchmark.json or .bmf.json)' }),
      (a) => {
        process.stdout.write(exportFile(a.csv, a.to, a.out) + '\n');
      },
    )
    .command(
      'history',
      'the trend of every cell over the last N commits of the history store (appended by run), with its change points',
      (y) =>
        y
          .option('file', { type: 'string', describe: `the history store (JSON lines); default results/${HISTORY_FILE} of this checkout` })
          .option('last', { type: 'string', default: 10, describe: 'the last N commits', coerce: positiveInt('last', 10_000) })
          .option('threshold', { type: 'string', default: 5, describe: 'a significant change beyond this % is a change point', coerce: nonNegative('threshold') })
          .option('alpha', { type: 'string', default: 0.05, describe: 'significance level, after Holm', coerce: probability('alpha') })
          .option('html', { type: 'string', describe: 'also write a self-contained page with a trend line per cell, change points marked, to this file' }),
      async (a) => {
        const file = a.file === undefined ? join(ROOT, 'results', HISTORY_FILE) : resolve(a.file);
        const { records, warnings } = readHistory(file);
        for (const w of warnings) process.stderr.write(`memcrypt-bench: ${w}\n`);
        if (records.length === 0) process.stderr.write(`memcrypt-bench: ${file}: no history records (run appends them)\n`);
        const t = historyTrend(records, { last: a.last, thresholdPct: a.threshold, alpha: a.alpha });
        const text = formatHistory(t);
        process.stdout.write(text + '\n');
        if (a.html !== undefined) {
          const svg = await renderSvg(historySpec(t.cells));
          const facts: [string, string][] = [['store', file], ['commits', t.shas.map((s) => s.sha.slice(0, 12)).join(' ')]];
          writeFileAtomic(resolve(a.html), formatFigurePage('memcrypt-bench history', facts, [{ name: 'history', title: 'Trend per cell', svg }], text));
        }
      },
    )
    .command(
      'ab',
      'this build against another checkout (--vs DIR, built), both timed in turn in the same processes: batches of one, then the other, so the host\'s changes of speed hit both alike. Counting rounds compared exactly; per cell a ratio new/base from each process, the signed-rank test over the processes',
      (y) =>
        matrixOptions(y)
          .option('vs', { type: 'string', demandOption: true, describe: 'the base: another memcrypt-bench checkout with its build (git worktree add DIR COMMIT; cd DIR; npm ci)' })
          .option('time', { type: 'string', default: AB_TIME_MS, describe: 'timed pairs per cell and process, ms (both builds together)', coerce: positiveInt('time', 600_000) })
          .option('warmup', { type: 'string', default: AB_WARMUP_MS, describe: 'warm-up per cell and process, ms (both builds, in turns)', coerce: positiveInt('warmup', 600_000) })
          .option('repeat', { type: 'string', describe: 'fresh processes (default: enough that every cell can reach --alpha after Holm, at least 6)', coerce: positiveInt('repeat', 100, 2) })
          .option('order-seed', { type: 'string', describe: 'seed of the shuffled cell orders and of the pairs\' order (default: random; printed)', coerce: positiveInt('order-seed', 2 ** 31, 0) })
          .option('threshold', { type: 'string', default: 5, describe: 'a significant slowdown above this % is a regression', coerce: nonNegative('threshold') })
          .option('alpha', { ...alphaOption, describe: 'significance level of the signed-rank test, after Holm' })
          .option('fail-on', failOnOption)
          .option('out', { alias: 'o', type: 'string', describe: 'also write the verdicts as CSV here' })
          .option('format', { alias: 'f', choices: ['text', 'csv'], default: 'text', describe: 'what to print on stdout' }),
      (a) => ab(a as unknown as AbArgs),
    )
    .command(
      '_ab <job>',
      false,
      (y) => y.positional('job', { type: 'string', demandOption: true }),
      async (a) => {
        const tty = process.stderr.isTTY;
        await runAbJob(a.job, (done, total, key) => {
          if (tty) process.stderr.write(`\r\x1b[K  [${done}/${total}] ${cellName(key)}${done === total ? '\n' : ''}`);
        });
      },
    )
    .command(
      'phases',
      "where a timed round's time goes at each worker-CPU count: the kernel thread's own work, the slowest CPU's, what the kernel waited beyond it; and the best more CPUs could do with free hand-offs (one process, the CPU counts timed in turns of 40 ms)",
      (y) =>
        matrixOptions(y)
          .option('time', { type: 'string', default: 1000, describe: 'timed rounds per cell and CPU count, ms', coerce: positiveInt('time', 600_000) })
          .option('warmup', { type: 'string', default: 300, describe: 'warm-up per cell and CPU count, ms', coerce: positiveInt('warmup', 600_000, 0) }),
      async (a) => {
        const o = { seed: a.seed, timeMs: a.time, warmupMs: a.warmup, tmpdir: makeRunDir() };
        const cells: PhaseCell[] = [];
        const planned = plan({ ...(a as unknown as MatrixArgs), guestHardware: [] });
        // what the host gives that many threads of native work side by side, in this process
        const scaling = new Map<number, number>();
        for (const n of new Set(planned.map((p) => p.threads))) if (n > 1) scaling.set(n, await hostScaling(n));
        for (const g of groupByCell(planned)) {
          cells.push({ name: g.name, rows: await measureGroup(g.cells, o) });
        }
        process.stdout.write(formatPhases(cells, scaling) + '\n');
      },
    )
    .command('list', 'list interfaces, hardware profiles, workloads and backends', {}, () => listAll())
    // run --repeat's child: one process's share of the cells (bench/repeat.ts); not for people
    .command(
      '_cells <job>',
      false,
      (y) => y.positional('job', { type: 'string', demandOption: true }),
      async (a) => {
        const tty = process.stderr.isTTY;
        await runCellsJob(a.job, plan, (done, total, r: Row) => {
          if (tty) process.stderr.write(`\r\x1b[K  [${done}/${total}] ${r.workload} ${r.interface} t${r.threads}${done === total ? '\n' : ''}`);
        });
      },
    )
    .command(
      'report <csv>',
      'print the text report of a results CSV (with its .meta.json); --html writes <run id>.html beside it again, with its figures',
      (y) =>
        y
          .positional('csv', { type: 'string', demandOption: true })
          .option('html', { type: 'boolean', default: false, describe: 'write the self-contained page <run id>.html beside the CSV (needs its .samples.json)' })
          .option('png', { type: 'boolean', default: false, describe: 'with --html: also each figure as <run id>.<figure>.png' }),
      async (a) => {
        const text = readInput(a.csv);
        const rows = parseCsv(text, a.csv);
        const meta = parseMeta(readInput(metaPath(a.csv)), metaPath(a.csv));
        checkResultSet(a.csv, text, rows, meta, metaPath(a.csv));
        const report = formatReport(meta, rows);
        if (!a.html) {
          if (a.png) throw new InputError(a.csv, 0, '--png: only with --html');
          process.stdout.write(report + '\n');
          return;
        }
        const sfile = samplesPath(a.csv);
        const { runId, cells } = parseSamples(readInput(sfile), sfile);
        if (runId !== meta.run_id) throw new InputError(sfile, 0, `samples of run ${runId}, but ${metaPath(a.csv)} is of run ${meta.run_id}: not one result set`);
        const figures = await runFigures(rows, cells);
        writeFileAtomic(htmlPath(a.csv), formatHtml(meta, rows, figures, report));
        const wrote = [htmlPath(a.csv)];
        if (a.png)
          for (const f of figures) {
            writeFileAtomic(pngPath(a.csv, f.name), renderPng(f.svg));
            wrote.push(pngPath(a.csv, f.name));
          }
        process.stdout.write(`wrote ${wrote.join(', ')}\n`);
      },
    )
    .command(
      'calibrate',
      `measure this host's costs with a C probe (cc) and write ${CALIBRATION_FILE}; run uses it`,
      (y) =>
        y
          .option('reps', { type: 'string', default: 5, describe: 'repetitions of each figure, at least 5 (the median is kept, with the spread)', coerce: positiveInt('reps', 1000, 5) })
          .option('out', { alias: 'o', type: 'string', describe: `where to write the calibration (default ${CALIBRATION_FILE})` }),
      (a) => {
        const out = a.out === undefined ? join(ROOT, CALIBRATION_FILE) : resolve(a.out);
        const r = calibrateInto(out, a.reps);
        if (!r.ok) {
          process.stderr.write(`memcrypt-bench: calibrate: ${r.why}\n`);
          process.exitCode = 1;
          return;
        }
        process.stdout.write(formatCalibration(r.calibration) + '\n');
        process.stderr.write(`wrote ${out}\n`);
      },
    )
    .command(
      'core',
      'AES-XTS throughput of each crypto backend vs the node:crypto ceiling and openssl speed, measured in the same run',
      (y) =>
        y
          .option('time', { type: 'string', default: 1000, describe: 'minimum time per task, ms', coerce: positiveInt('time') })
          .option('frames', { type: 'string', default: 1024, describe: 'frames cycled through', coerce: positiveInt('frames', 65536) }),
      async (a) => {
        const res = await runCoreBench({ timeMs: a.time, frames: a.frames });
        process.stdout.write(formatCore(res, opensslSpeed()) + '\n');
      },
    )
    .command(
      'replay <file>',
      'run a JSON-lines trace of mmap/munmap/mprotect/madvise calls in one process ({"op":"maps"} prints /proc/self/maps); the model answers as Linux 6.18 on x86-64 does',
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: "trace file, '-' for stdin" })
          .option('host', {
            type: 'boolean',
            default: false,
            describe: "take this machine's settings (/proc/sys/vm/mmap_min_addr, overcommit_*, MemTotal, SwapTotal, pdpe1gb, ospke, RLIMIT_MEMLOCK); the flags below override them",
          })
          .option('mmap-min-addr', {
            type: 'string',
            describe: 'vm.mmap_min_addr (default 65536)',
            coerce: positiveInt('mmap-min-addr', 2 ** 47, 0),
          })
          .option('rawio', { type: 'boolean', describe: 'the process has CAP_SYS_RAWIO (as root has): MAP_FIXED below mmap_min_addr is allowed' })
          .option('pku', { type: 'boolean', describe: 'the CPU has protection keys the kernel enabled (ospke): PROT_EXEC-only memory gets the execute-only key (default no)' })
          .option('memlock', { type: 'string', describe: 'RLIMIT_MEMLOCK in bytes (default 8388608); the process has no CAP_IPC_LOCK', coerce: positiveInt('memlock', Number.MAX_SAFE_INTEGER, 0) })
          .option('rlimit-as', { type: 'string', describe: 'RLIMIT_AS in bytes (default unlimited)', coerce: positiveInt('rlimit-as', Number.MAX_SAFE_INTEGER, 0) })
          .option('rlimit-data', { type: 'string', describe: 'RLIMIT_DATA in bytes (default unlimited)', coerce: positiveInt('rlimit-data', Number.MAX_SAFE_INTEGER, 0) })
          .option('overcommit', { type: 'string', describe: 'vm.overcommit_memory: 0, 1 or 2 (default 0, against 4 GiB of RAM and no swap)', coerce: positiveInt('overcommit', 2, 0) }),
      async (a) => {
        // yargs hands '-' over as ''
        const stdin = a.file === '-' || a.file === '';
        const name = stdin ? 'stdin' : a.file;
        let input: NodeJS.ReadableStream;
        try {
          input = stdin ? process.stdin : createReadStream('', { fd: openSync(a.file, 'r'), encoding: 'utf8' });
        } catch (e) {
          fail(`${name}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}`);
        }
        // One line in, its results out at once (respecting the pipe's
        // backpressure): a long trace never sits in memory, and an error
        // comes after every line before it has been printed.
        let pending = '';
        const flush = async (): Promise<void> => {
          if (pending === '') return;
          const chunk = pending;
          pending = '';
          if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
        };
        let host: ReplayHost = {};
        try {
          if (a.host) host = hostReplaySettings();
        } catch (e) {
          fail(`--host: ${(e as Error).message}`);
        }
        const oc = host.overcommit ?? defaultOvercommit(REPLAY_RAM_PAGES, 0);
        host = {
          ...host,
          ...(a['mmap-min-addr'] !== undefined && { mmapMinAddr: a['mmap-min-addr'] }),
          ...(a.rawio !== undefined && { rawio: a.rawio }),
          ...(a.pku !== undefined && { pku: a.pku }),
          ...(a.memlock !== undefined && { memlock: a.memlock }),
          ...(a['rlimit-as'] !== undefined && { as: a['rlimit-as'] }),
          ...(a['rlimit-data'] !== undefined && { data: a['rlimit-data'] }),
          ...(a.overcommit !== undefined && { overcommit: { ...oc, mode: a.overcommit as 0 | 1 | 2 } }),
        };
        const r = new Replayer((l) => (pending += l + '\n'), host);
        try {
          for await (const text of createInterface({ input, crlfDelay: Infinity })) {
            r.line(text);
            if (pending.length >= 1 << 16) await flush();
          }
          await flush();
        } catch (e) {
          await flush();
          if (e instanceof TraceError) fail(`${name}: ${e.message}`);
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== undefined) fail(`${name}: ${code}`);
          throw e;
        } finally {
          r.close();
        }
      },
    )
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .fail((msg, err) => {
      fail(err ? err.message : msg);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((e: unknown) => {
  if (e instanceof InputError) fail(e.message);
  fail(e instanceof Error ? e.message : String(e));
});
