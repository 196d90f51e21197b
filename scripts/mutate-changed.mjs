#!/usr/bin/env node
// Mutation testing of the lines a change touched, bounded: what CI runs
// (.ci/run) after the tests. `npm run mutate` covers whole folders and takes
// hours (README, "Mutation testing"); this runs Stryker (quick mode) on the
// compiled lines that come from the .ts lines changed since BASE, in the
// files `npm run mutate` mutates, and fails when too few of their mutants
// are detected.
//
//   node scripts/mutate-changed.mjs [--list] [BASE]   (default HEAD~1; dist/ must be built)
//
// --list prints the line ranges it would mutate and stops.
//
// Bounds: at most MUTATE_CHANGED_LINES compiled lines (default 40, the first
// ones in file order) and MUTATE_CHANGED_MINUTES minutes (default 10), after
// which Stryker is stopped and the mutants tested so far are counted.
// Exit 1 when detected (killed + timeout) / tested is below
// MUTATE_CHANGED_BREAK percent (default 60: a few equivalent mutants in a
// change must not fail it, untested new code must).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const LIVE = join(ROOT, 'results/mutation/live.jsonl');

function fail(msg) {
  console.error(`mutate-changed: ${msg}`);
  process.exit(2);
}
function envInt(name, def) {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  if (!/^[0-9]+$/.test(v) || Number(v) < 1) fail(`${name}=${JSON.stringify(v)} is not a positive whole number`);
  return Number(v);
}
function git(args) {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ok: r.status === 0, out: r.stdout ?? '', err: (r.stderr ?? '').trim() };
}

const MAX_LINES = envInt('MUTATE_CHANGED_LINES', 40);
const MAX_MINUTES = envInt('MUTATE_CHANGED_MINUTES', 10);
const BREAK = envInt('MUTATE_CHANGED_BREAK', 60);
const args = process.argv.slice(2);
const listOnly = args[0] === '--list';
if (listOnly) args.shift();
if (args.length > 1 || (args.length === 1 && args[0].startsWith('-')))
  fail(`usage: node scripts/mutate-changed.mjs [--list] [BASE]; got ${JSON.stringify(process.argv.slice(2).join(' '))}`);
const base = args[0] ?? 'HEAD~1';
if (!git(['rev-parse', '--verify', '--quiet', `${base}^{commit}`]).ok) {
  if (args[0] === undefined) {
    console.log('mutate-changed: HEAD has no parent commit; nothing to compare with');
    process.exit(0);
  }
  fail(`${JSON.stringify(base)} is not a commit`);
}

// The files `npm run mutate` mutates, as .ts paths: dist/kernel/**/*.js -> kernel/**/*.ts
const { default: config } = await import('../stryker.config.mjs');
const pathspecs = config.mutate.map((g) => `:(glob)${g.replace(/^dist\//, '').replace(/\.js$/, '.ts')}`);

// Changed lines of the new side, from a zero-context diff (hunks "@@ -a,b +c,d @@";
// d = 0 is a pure deletion, which leaves no line to mutate)
const diff = git(['diff', '-U0', '--no-color', '--no-ext-diff', base, '--', ...pathspecs]);
if (!diff.ok) fail(`git diff ${base} failed: ${diff.err}`);
const changed = new Map(); // .ts path -> Set of 1-based lines
let cur = null;
for (const ln of diff.out.split('\n')) {
  if (ln.startsWith('+++ ')) {
    cur = ln === '+++ /dev/null' ? null : ln.slice(6);
    continue;
  }
  const h = cur === null ? null : /^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@/.exec(ln);
  if (h === null) continue;
  const start = Number(h[1]), count = h[2] === undefined ? 1 : Number(h[2]);
  let set = changed.get(cur);
  if (set === undefined) changed.set(cur, (set = new Set()));
  for (let i = 0; i < count; i++) set.add(start + i);
}

// Compiled lines whose code maps (through tsc's source map) to a changed .ts line
const ranges = []; // [dist path, first line, last line], 1-based
for (const [ts, lines] of changed) {
  const js = join('dist', ts.replace(/\.ts$/, '.js'));
  if (!existsSync(join(ROOT, js)) || !existsSync(join(ROOT, `${js}.map`)))
    fail(`${js} or its source map is missing: build first (npm run build)`);
  const map = new SourceMap(JSON.parse(readFileSync(join(ROOT, `${js}.map`), 'utf8')));
  const gen = readFileSync(join(ROOT, js), 'utf8').split('\n');
  let open = null;
  for (let g = 0; g < gen.length; g++) {
    let hit = false;
    // every column: findEntry gives the mapping at or before it
    for (let c = 0; c < gen[g].length && !hit; c++) {
      const e = map.findEntry(g, c);
      hit = e !== undefined && e.generatedLine === g && lines.has(e.originalLine + 1);
    }
    if (hit && open !== null && open[2] === g) open[2] = g + 1;
    else if (hit) ranges.push((open = [js, g + 1, g + 1]));
  }
}
const total = ranges.reduce((n, r) => n + r[2] - r[1] + 1, 0);
if (total === 0) {
  console.log(`mutate-changed: no compiled line of the mutated files changed since ${base}`);
  process.exit(0);
}
let left = MAX_LINES;
const kept = []; // [dist path, first line, last line] within the bound
for (const [js, a, b] of ranges) {
  if (left === 0) break;
  const last = Math.min(b, a + left - 1);
  kept.push([js, a, last]);
  left -= last - a + 1;
}
if (listOnly) {
  for (const r of ranges) console.log(`${r[0]}:${r[1]}-${r[2]}`);
  process.exit(0);
}
console.log(
  `mutate-changed: ${total} compiled line${total === 1 ? '' : 's'} changed since ${base}` +
    (total > MAX_LINES ? `; mutating the first ${MAX_LINES} (MUTATE_CHANGED_LINES)` : '') +
    `, at most ${MAX_MINUTES} min (MUTATE_CHANGED_MINUTES)`,
);

// Stryker, quick mode; the tested mutants are read back from the live log it
// writes (stryker.config.mjs, live-log), those in the ranges mutated
const bin = join(ROOT, 'node_modules/.bin/stryker');
const child = spawn(bin, ['run', '--mutate', kept.map(([js, a, b]) => `${js}:${a}-${b}`).join(','), '--timeoutMS', '3000'], {
  cwd: ROOT,
  env: { ...process.env, MUTATE_QUICK: '1' },
  stdio: ['ignore', 'inherit', 'inherit'],
  detached: true, // its own process group: the bound stops Stryker and its test processes
});
/** Signal Stryker's process group (it and its test processes); false when none is left. */
const signalGroup = (sig) => {
  try {
    process.kill(-child.pid, sig);
    return true;
  } catch {
    return false; // already gone
  }
};
// A test process that a mutant put into an endless loop never runs the
// SIGTERM handler node:test installs, so it outlived Stryker and kept a CPU
// busy after the bound (one was still running 16 minutes later): what the
// group has not ended within KILL_AFTER_MS of SIGTERM gets SIGKILL.
const KILL_AFTER_MS = 5000;
let stopped = false;
let killer = null;
const timer = setTimeout(() => {
  stopped = true;
  if (signalGroup('SIGTERM')) killer = setTimeout(() => signalGroup('SIGKILL'), KILL_AFTER_MS);
}, MAX_MINUTES * 60_000);
const code = await new Promise((res) => child.on('close', (c) => res(c)));
clearTimeout(timer);
if (stopped) {
  // Stryker is gone; a test process of its group may not be
  clearTimeout(killer);
  signalGroup('SIGKILL');
}
if (!stopped && code !== 0) {
  console.error(`mutate-changed: stryker exited with ${code}`);
  process.exit(1);
}

const inRange = (file, line) => kept.some(([js, a, b]) => file === join(ROOT, js) && line >= a && line <= b);
// A finished run: its JSON report, which also holds the mutants it reused
// from the incremental file. A stopped one: the live log, which has the
// mutants tested until the stop (the report is then an older run's).
const byMutant = new Map();
const REPORT = join(ROOT, 'results/mutation/mutation.json');
if (!stopped && existsSync(REPORT)) {
  for (const [file, f] of Object.entries(JSON.parse(readFileSync(REPORT, 'utf8')).files))
    for (const m of f.mutants) {
      const at = m.location.start;
      const rec = { file: join(ROOT, file), line: at.line, column: at.column, mutator: m.mutatorName, replacement: m.replacement, status: m.status };
      if (inRange(rec.file, rec.line)) byMutant.set(`${rec.file}#${m.id}`, rec);
    }
} else {
  for (const ln of existsSync(LIVE) ? readFileSync(LIVE, 'utf8').split('\n') : []) {
    let m;
    try {
      m = JSON.parse(ln);
    } catch {
      continue; // an empty line, or one cut by the stop
    }
    if (inRange(m.file, m.line)) byMutant.set(`${m.file}#${m.id}`, m); // ids are unique within a run
  }
}
const tested = [...byMutant.values()];
const counts = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, other: 0 };
const survivors = [];
for (const m of tested) {
  const k = m.status in counts ? m.status : 'other';
  counts[k]++;
  if (k === 'Survived' || k === 'NoCoverage')
    survivors.push(`  ${relative(ROOT, m.file)}:${m.line}:${m.column} ${m.mutator} ${JSON.stringify(m.replacement)} [${m.status}]`);
}
const valid = counts.Killed + counts.Timeout + counts.Survived + counts.NoCoverage;
const detected = counts.Killed + counts.Timeout;
if (stopped) console.log(`mutate-changed: stopped at the ${MAX_MINUTES}-minute bound after ${tested.length} mutants`);
if (survivors.length) console.log(`mutate-changed: not detected:\n${survivors.join('\n')}`);
if (valid === 0) {
  console.log('mutate-changed: no mutant was tested');
  process.exit(0);
}
const score = (100 * detected) / valid;
console.log(
  `mutate-changed: ${detected} of ${valid} mutants detected (${score.toFixed(1)}%; killed ${counts.Killed}, ` +
    `timeout ${counts.Timeout}, survived ${counts.Survived}, no coverage ${counts.NoCoverage}); break at ${BREAK}%`,
);
process.exit(score < BREAK ? 1 : 0);
