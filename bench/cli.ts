#!/usr/bin/env node
// memcrypt-bench command line. The only layer that touches process, the
// terminal and report files.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus, hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { PROFILE_NAMES, getProfile } from '../hardware/profiles.js';
import { BACKEND_NAMES, checkBackendName } from '../hardware/xts.js';
import { DESIGN_NAMES } from '../interfaces/contract.js';
import { getDesign } from '../interfaces/registry.js';
import { TraceError, replayTrace } from '../kernel/replay.js';
import { getWorkload } from '../workloads/registry.js';
import { WORKLOAD_NAMES } from '../workloads/workload.js';
import { formatCore, runCoreBench } from './core.js';
import { formatCsv, formatSamples, parseCsv } from './csv.js';
import { InputError, readInput, writeFileAtomic } from './io.js';
import { formatReport } from './report.js';
import { compareRuns, formatCompare, formatCompareCsv, loadRun, type CompareResult } from './compare.js';
import { WARMUP_MS, runMatrix, type CellPlan } from './runner.js';
import type { Row, RunMeta } from './schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function fail(msg: string): never {
  // one line, whatever the source (yargs writes some messages on several)
  process.stderr.write(`memcrypt-bench: ${msg.trim().replace(/\s*\n\s*/g, '; ')}\n`);
  process.exit(2);
}

const positiveInt = (name: string, max = Number.MAX_SAFE_INTEGER) => (v: unknown) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0 || n > max) throw new Error(`--${name}: expected an integer in [1, ${max}], got '${String(v)}'`);
  return n;
};

const nonNegative = (name: string) => (v: unknown) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number >= 0, got '${String(v)}'`);
  return n;
};

/** "a,b" or repeated flags -> unique list, each checked by `check` (which throws naming the value). */
const csvList =
  (name: string, check: (s: string) => unknown) =>
  (v: unknown): string[] => {
    const items = (Array.isArray(v) ? v : [v]).flatMap((x) => String(x).split(',')).map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new Error(`--${name}: expected at least one value`);
    for (const s of items) {
      try {
        check(s);
      } catch (e) {
        throw new Error(`--${name}: ${(e as Error).message}`);
      }
    }
    return [...new Set(items)];
  };

function gitSha(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${sha}-dirty` : sha;
  } catch {
    return 'unknown';
  }
}

interface RunArgs {
  interface: string[];
  hardware: string[];
  workload: string[];
  threads: string[];
  kernel?: string[];
  backend: string[];
  seed: number;
  time: number;
  samples: number;
  warmup: number;
  out?: string;
  format: string;
  baseline?: string;
  threshold: number;
  export?: string;
}

interface GateArgs {
  threshold: number;
  'fail-on': string;
}

/** Compare and print; the exit code CI gates on: 1 for a regression (or a behaviour change with --fail-on any). */
function gate(base: string, now: string, a: GateArgs, format: string): number {
  const r: CompareResult = compareRuns(loadRun(base), loadRun(now), { thresholdPct: a.threshold, alpha: 0.05 });
  process.stdout.write((format === 'csv' ? formatCompareCsv(r) : formatCompare(r) + '\n'));
  const failed = r.regressions > 0 || (a['fail-on'] === 'any' && r.behaviourChanges > 0);
  return failed ? 1 : 0;
}

/** github-action-benchmark's customSmallerIsBetter format: one entry per timed cell. */
function exportGab(rows: readonly Row[]): string {
  const entries = rows
    .filter((r) => r.samples > 0)
    .map((r) => ({
      name: `${r.workload}/${r.interface}/${r.kernel}/t${r.threads} (${r.hardware}, ${r.crypto_backend})`,
      unit: 'ns/op',
      value: Math.round(r.wall_ns_median * 10) / 10,
      range: `±${r.wall_rme_pct.toFixed(1)}%`,
      extra: `outcome ${r.outcome}${r.errno ? '/' + r.errno : ''}; modelled ${r.modelled_ns_per_op.toFixed(1)} ns/op; ${r.samples} samples`,
    }));
  return JSON.stringify(entries, null, 2) + '\n';
}

function plan(a: RunArgs): CellPlan[] {
  const cells: CellPlan[] = [];
  for (const backend of a.backend)
    for (const hardware of a.hardware)
      for (const wname of a.workload) {
        const workload = getWorkload(wname);
        const kernels = a.kernel ? (a.kernel as ('patched' | 'unpatched')[]) : workload.kernels;
        for (const design of a.interface)
          for (const kernel of kernels)
            for (const t of a.threads) cells.push({ backend, hardware, design, kernel, workload, threads: Number(t) });
      }
  return cells;
}

function resolvedCommand(a: RunArgs): string {
  const parts = [
    'node dist/bench/cli.js run',
    `--interface ${a.interface.join(',')}`,
    `--hardware ${a.hardware.join(',')}`,
    `--workload ${a.workload.join(',')}`,
    `--threads ${a.threads.join(',')}`,
    ...(a.kernel ? [`--kernel ${a.kernel.join(',')}`] : []),
    `--backend ${a.backend.join(',')}`,
    `--seed ${a.seed}`,
    `--time ${a.time}`,
    `--samples ${a.samples}`,
    `--warmup ${a.warmup}`,
  ];
  return parts.join(' ');
}

async function run(a: RunArgs): Promise<void> {
  const started = new Date();
  const meta: RunMeta = {
    run_id: `${started.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`,
    started_at: started.toISOString(),
    command: resolvedCommand(a),
    seed: a.seed,
    host: hostname(),
    cpu_model: cpus()[0]?.model.trim() ?? 'unknown',
    node_version: process.version,
    git_sha: gitSha(),
  };
  const cells = plan(a);
  const tty = process.stderr.isTTY;
  const t0 = performance.now();
  const res = await runMatrix(cells, meta, {
    seed: a.seed,
    timeMs: a.time,
    minSamples: a.samples,
    warmupMs: a.warmup,
    tmpdir: tmpdir(),
    progress: (done, total, r: Row) => {
      if (!tty) return;
      const what = `${r.workload} ${r.interface} ${r.kernel} t${r.threads}`;
      process.stderr.write(`\r\x1b[K[${done}/${total}] ${what}: ${r.outcome}${r.errno ? '/' + r.errno : ''}`);
      if (done === total) process.stderr.write('\n');
    },
  });
  meta.wall_seconds = Math.round((performance.now() - t0) / 100) / 10;
  const out = resolve(a.out ?? join(ROOT, 'results', `${meta.run_id}.csv`));
  const base = out.replace(/\.csv$/, '');
  const report = formatReport(meta, res.rows);
  writeFileAtomic(out, formatCsv(meta, res.rows));
  writeFileAtomic(`${base}.samples.json`, formatSamples(meta, res.samples));
  writeFileAtomic(`${base}.txt`, report + '\n');
  if (a.export === 'github-action-benchmark') writeFileAtomic(`${base}.github-action-benchmark.json`, exportGab(res.rows));
  if (a.format === 'text') process.stdout.write(report + '\n');
  else if (a.format === 'csv') process.stdout.write(formatCsv(meta, res.rows));
  process.stderr.write(`wrote ${out} (+ .samples.json, .txt${a.export ? ', .' + a.export + '.json' : ''}) in ${meta.wall_seconds} s\n`);
  if (a.baseline !== undefined) {
    const baseline = resolve(a.baseline === '' ? join(ROOT, 'results', 'baseline.csv') : a.baseline);
    process.stdout.write('\n');
    process.exitCode = gate(baseline, out, { threshold: a.threshold, 'fail-on': 'any' }, 'text');
  }
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
  lines.push('crypto backends:', ...BACKEND_NAMES.map((b) => `  ${b}`));
  process.stdout.write(lines.join('\n') + '\n');
}

async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('memcrypt-bench')
    .usage('$0 <command> [options]')
    .command(
      'run',
      'run the benchmark matrix; writes CSV, samples and a text report to results/',
      (y) =>
        y
          .option('interface', { alias: 'i', type: 'string', array: true, default: [...DESIGN_NAMES], describe: 'designs (comma list)', coerce: csvList('interface', (s) => getDesign(s)) })
          .option('hardware', { alias: 'H', type: 'string', array: true, default: ['mktme'], describe: 'hardware profiles', coerce: csvList('hardware', (s) => getProfile(s)) })
          .option('workload', { alias: 'w', type: 'string', array: true, default: [...WORKLOAD_NAMES], describe: 'workloads', coerce: csvList('workload', (s) => getWorkload(s)) })
          .option('threads', { alias: 't', type: 'string', array: true, default: ['1', '2'], describe: 'worker CPUs per cell', coerce: csvList('threads', positiveInt('threads', 16)) })
          .option('kernel', { type: 'string', array: true, describe: "kernels (patched,unpatched); default: each workload's own", coerce: csvList('kernel', (s: string) => { if (s !== 'patched' && s !== 'unpatched') throw new Error(`expected patched or unpatched, got '${s}'`); }) })
          .option('backend', { type: 'string', array: true, default: ['openssl'], describe: 'crypto backends', coerce: csvList('backend', (s) => checkBackendName(s)) })
          .option('seed', { type: 'number', default: 1, describe: 'seed for data and keys', coerce: positiveInt('seed', 2 ** 31) })
          .option('time', { type: 'number', default: 300, describe: 'minimum timing per cell, ms', coerce: positiveInt('time', 600_000) })
          .option('samples', { type: 'number', default: 10, describe: 'minimum timed rounds per cell', coerce: positiveInt('samples', 100_000) })
          .option('warmup', { type: 'number', default: WARMUP_MS, describe: 'warm-up per timed cell, ms (the JIT keeps speeding rounds up for ~0.5 s)', coerce: positiveInt('warmup', 600_000) })
          .option('out', { alias: 'o', type: 'string', describe: 'CSV path (default results/<run id>.csv)' })
          .option('format', { alias: 'f', choices: ['text', 'csv', 'none'], default: 'text', describe: 'what to print on stdout' })
          .option('baseline', { type: 'string', describe: 'compare with a baseline CSV when done (default results/baseline.csv); exit 1 on a regression or behaviour change' })
          .option('threshold', { type: 'number', default: 5, describe: 'with --baseline: regression threshold, %', coerce: nonNegative('threshold') })
          .option('export', { choices: ['github-action-benchmark'], describe: 'also write <out>.github-action-benchmark.json (customSmallerIsBetter)' }),
      (a) => run(a as unknown as RunArgs),
    )
    .command(
      'compare <base> <new>',
      'compare two results CSVs (each with its .samples.json): exact counters, Mann-Whitney U on times',
      (y) =>
        y
          .positional('base', { type: 'string', demandOption: true })
          .positional('new', { type: 'string', demandOption: true })
          .option('threshold', { type: 'number', default: 5, describe: 'a significant slowdown above this % is a regression', coerce: nonNegative('threshold') })
          .option('fail-on', { choices: ['regression', 'any'], default: 'any', describe: 'exit 1 on a regression only, or also on any behaviour change' })
          .option('format', { alias: 'f', choices: ['text', 'csv'], default: 'text' }),
      (a) => {
        process.exitCode = gate(a.base, a.new, a as unknown as GateArgs, a.format);
      },
    )
    .command('list', 'list interfaces, hardware profiles, workloads and backends', {}, () => listAll())
    .command(
      'report <csv>',
      'print the text report of a results CSV',
      (y) => y.positional('csv', { type: 'string', demandOption: true }),
      (a) => {
        const { meta, rows } = parseCsv(readInput(a.csv), a.csv);
        const m: RunMeta = {
          run_id: meta.run_id ?? rows[0]?.run_id ?? '',
          started_at: meta.started_at ?? '',
          command: meta.command ?? '',
          seed: Number(meta.seed ?? 0),
          host: meta.host ?? '',
          cpu_model: meta.cpu_model ?? '',
          node_version: meta.node_version ?? '',
          git_sha: meta.git_sha ?? '',
        };
        process.stdout.write(formatReport(m, rows) + '\n');
      },
    )
    .command(
      'core',
      'AES-XTS throughput of each crypto backend vs the node:crypto ceiling',
      (y) =>
        y
          .option('time', { type: 'number', default: 1000, describe: 'minimum time per task, ms', coerce: positiveInt('time') })
          .option('frames', { type: 'number', default: 1024, describe: 'frames cycled through', coerce: positiveInt('frames', 65536) }),
      async (a) => {
        const res = await runCoreBench({ timeMs: a.time, frames: a.frames });
        process.stdout.write(formatCore(res) + '\n');
      },
    )
    .command(
      'replay <file>',
      'run a JSON-lines trace of mmap/munmap/mprotect/madvise calls in one process ({"op":"maps"} prints /proc/self/maps)',
      (y) => y.positional('file', { type: 'string', demandOption: true, describe: "trace file, '-' for stdin" }),
      (a) => {
        // yargs hands '-' over as ''
        const stdin = a.file === '-' || a.file === '';
        const name = stdin ? 'stdin' : a.file;
        let text: string;
        try {
          text = readFileSync(stdin ? 0 : a.file, 'utf8');
        } catch (e) {
          fail(`${name}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}`);
        }
        try {
          process.stdout.write(replayTrace(text.split('\n')).join('\n') + '\n');
        } catch (e) {
          if (e instanceof TraceError) fail(`${name}: ${e.message}`);
          throw e;
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
