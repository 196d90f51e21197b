// Stryker mutation testing (`npm run mutate`); see README, "Mutation testing".
//
// Stryker mutates the compiled JS in dist/ (npm run mutate builds it first), so
// the tests run exactly as under `npm test`: worker threads load
// dist/workloads/cpu-worker.js, the CLI tests spawn dist/bench/cli.js, and the
// C sources are found relative to dist/. No TS loader is involved.
//
// Besides the options, this file holds two small pieces that Stryker loads:
// - a test runner plugin, "tap-ordered": the tap runner with the test files
//   in a fixed order, fast ones first (see orderTestFiles);
// - a coverage forwarder: the tap runner loads this file with `-r` into every
//   test process (tap.nodeArgs), and during Stryker's initial (dry) run only,
//   it adds the mutant coverage of worker threads and of child processes (the
//   CLI) to the test process's. Without it, code that only runs in a worker
//   or in a spawned CLI counts as "no coverage", and the test files that
//   exercise code that way are not run against its mutants. The mutants
//   themselves are active in workers and children anyway: they read the active
//   mutant from the __STRYKER_ACTIVE_MUTANT__ env variable.
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getEnvironmentData, isMainThread, setEnvironmentData } from 'node:worker_threads';

const SELF = fileURLToPath(import.meta.url);
// MUTATE_QUICK=1 leaves out the three end-to-end test files (bench/cli,
// bench/compare, workloads/workloads: about 80% of the suite's time). A mutant
// that survives all other files then costs ~4x less; some of those survivors
// would have been killed by the end-to-end files. See README.
const QUICK = process.env.MUTATE_QUICK === '1';

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
const config = {
  mutate: [
    'dist/hardware/**/*.js',
    'dist/kernel/**/*.js',
    'dist/interfaces/**/*.js',
    'dist/bench/stats.js',
    'dist/bench/compare.js',
    'dist/bench/csv.js',
    'dist/bench/ab.js',
  ],
  // The tap runner, with the test files put in order (see orderTestFiles)
  testRunner: 'tap-ordered',
  appendPlugins: [SELF],
  tap: {
    testFiles: QUICK ? ['dist/test/*/!(cli|compare|workloads).test.js'] : ['dist/test/*/*.test.js'],
    // node:test prints TAP with --test-reporter=tap; one node process per file
    nodeArgs: ['--test-reporter=tap', '-r', '{{hookFile}}', '-r', SELF, '{{testFile}}'],
    forceBail: true,
  },
  coverageAnalysis: 'perTest',
  concurrency: 2,
  // timeout = timeoutFactor * (dry-run time of the files run) + timeoutMS: the
  // worker-CPU and CLI files slow down a lot when two runners share two cores
  timeoutFactor: 2,
  timeoutMS: 30000,
  dryRunTimeoutMinutes: 15,
  incremental: true,
  incrementalFile: 'results/mutation/stryker-incremental.json',
  reporters: ['clear-text', 'progress', 'html', 'json', 'live-log'],
  htmlReporter: { fileName: 'results/mutation/index.html' },
  jsonReporter: { fileName: 'results/mutation/mutation.json' },
  clearTextReporter: { allowColor: false, logTests: false },
  // copied to the sandbox: dist/, test/ and bench/ (the C files, test data),
  // results/baseline* (read by tests); node_modules is symlinked
  ignorePatterns: ['/results/mutation', '/.stryker-tmp', '*.log'],
  tempDirName: '.stryker-tmp',
};
export default config;

// The tap runner treats each test file as one test and runs the files that
// cover a mutant in the order of its initial run, which is the order its glob
// happens to return (workloads/ first). Put the fast unit tests first and the
// slow end-to-end files last, so that most mutants are killed in a second.
// (Stryker's own `testFiles` option would order them too, but it hands the
// runner absolute sandbox paths, which become the test names: a new name every
// run, so the incremental mode could never reuse a result.)
const FAST = [/\/hardware\//, /\/kernel\//, /\/interfaces\//, /\/bench\//]; // then new folders
const SLOW = [
  /\/bench\/calibrate\.test/,
  /\/bench\/compare\.test/,
  /\/workloads\/(?!workloads\.test)/,
  /\/workloads\/workloads\.test/,
  /\/bench\/cli\.test/,
];
const rank = (file) => {
  const slow = SLOW.findIndex((re) => re.test(file));
  if (slow >= 0) return FAST.length + 1 + slow;
  const fast = FAST.findIndex((re) => re.test(file));
  return fast >= 0 ? fast : FAST.length;
};
const orderTestFiles = (files) => [...files].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));

// loaded lazily: this file is also preloaded into every test process
function createOrderedTap(injector) {
  const { createTapTestRunnerFactory } = createRequire(import.meta.url)('@stryker-mutator/tap-runner');
  const runner = createTapTestRunnerFactory()(injector);
  const init = runner.init.bind(runner);
  runner.init = async () => {
    await init();
    runner.testFiles = orderTestFiles(runner.testFiles);
  };
  return runner;
}
createOrderedTap.inject = ['$injector'];

// A reporter that appends every tested mutant to LIVE_LOG as it finishes (one
// JSON line: file, line, mutator, replacement, status, killing test). A full
// run takes hours and Stryker writes its reports only at the end; with this
// the survivors can be reviewed while it is still running, and a stopped run
// leaves what it got through.
const LIVE_LOG = 'results/mutation/live.jsonl';
function createLiveLog() {
  mkdirSync(dirname(LIVE_LOG), { recursive: true });
  writeFileSync(LIVE_LOG, '');
  return {
    onMutantTested(m) {
      const at = m.location.start;
      const rec = { id: m.id, file: m.fileName, line: at.line, column: at.column, mutator: m.mutatorName, replacement: m.replacement, status: m.status, killedBy: m.killedBy, statusReason: m.statusReason };
      appendFileSync(LIVE_LOG, `${JSON.stringify(rec)}\n`);
    },
  };
}
createLiveLog.inject = [];
export const strykerPlugins = [
  { kind: 'TestRunner', name: 'tap-ordered', factory: createOrderedTap },
  { kind: 'Reporter', name: 'live-log', factory: createLiveLog },
];

if (process.env.STRYKER_NAMESPACE !== undefined && isMainThread && process.env.MEMCRYPT_TEMP_NOTED === undefined) removeTempDirsWhenStopped();
if (process.env.STRYKER_DRY_RUN === 'true' && process.env.STRYKER_NAMESPACE !== undefined) forwardCoverage();

// The runner stops a test process at its first failure with SIGTERM
// (forceBail), and then no `after` hook of it runs: the temporary directories
// its tests made stayed in the system's (three mutation runs of engine.js left
// six of survivors-native-fallback.test.js's in /tmp). So in a test process
// mkdtempSync notes what it makes, and a SIGTERM removes those before the
// signal's own action ends the process as before (no exit handlers). Only
// the test process itself: a CLI it spawns (which gets this file through
// NODE_OPTIONS in the dry run) keeps its own SIGTERM handling untouched.
function removeTempDirsWhenStopped() {
  process.env.MEMCRYPT_TEMP_NOTED = '1';
  const require = createRequire(import.meta.url);
  const fs = require('node:fs');
  const made = new Set();
  const mkdtemp = fs.mkdtempSync;
  fs.mkdtempSync = function mkdtempSyncNoted(...args) {
    const dir = mkdtemp.apply(this, args);
    made.add(dir);
    return dir;
  };
  require('node:module').syncBuiltinESMExports(); // `import { mkdtempSync } from 'node:fs'` sees it too
  process.once('SIGTERM', () => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
    process.kill(process.pid, 'SIGTERM'); // no listener now: the default action
  });
}

function forwardCoverage() {
  const NS = process.env.STRYKER_NAMESPACE || '__stryker__';
  const KEY = 'stryker-forwarded-coverage';
  const SLOTS = 1 << 18; // mutant ids are 0, 1, 2, ...: one hit counter each
  if (!isMainThread) {
    // a worker thread: count hits into its main thread's shared array
    const hits = getEnvironmentData(KEY);
    if (!(hits instanceof Int32Array)) return;
    // The instrumented code counts `static[id] = (static[id] || 0) + 1`. The
    // first count of an id goes through the prototype (a proxy) and marks it
    // in the shared array; later counts stay in this thread, at full speed.
    const firstHit = new Proxy({}, {
      set: (_, id, n, counts) => {
        hits[id] = 1;
        return Reflect.defineProperty(counts, id, { value: n, writable: true, enumerable: true, configurable: true });
      },
    });
    (globalThis[NS] ??= {}).mutantCoverage = { static: Object.create(firstHit), perTest: {} };
    return;
  }
  // the main thread of a test process or of a process that a test spawned
  const hits = new Int32Array(new SharedArrayBuffer(SLOTS * 4));
  setEnvironmentData(KEY, hits);
  const top = process.env.STRYKER_FORWARDED_COVERAGE_DIR === undefined;
  if (top) {
    process.env.STRYKER_FORWARDED_COVERAGE_DIR = mkdtempSync(join(tmpdir(), 'stryker-coverage-'));
    process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} -r ${JSON.stringify(SELF)}`.trim();
  }
  const dir = process.env.STRYKER_FORWARDED_COVERAGE_DIR;
  // before the tap runner's own exit handler, which writes the namespace out
  process.prependListener('exit', () => {
    const ns = (globalThis[NS] ??= {});
    const cov = (ns.mutantCoverage ??= { static: {}, perTest: {} }).static;
    const add = (id, n) => n > 0 && (cov[id] = (cov[id] ?? 0) + n);
    hits.forEach((n, id) => add(id, n));
    try {
      if (!top) writeFileSync(join(dir, `${process.pid}.json`), JSON.stringify(cov));
      else {
        for (const f of readdirSync(dir)) for (const [id, n] of Object.entries(JSON.parse(readFileSync(join(dir, f), 'utf8')))) add(id, n);
        rmSync(dir, { recursive: true, force: true });
      }
    } catch {
      // coverage is best effort: a missing child file only makes it narrower
    }
  });
}
