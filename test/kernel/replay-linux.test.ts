// Differential test of the VMA layer: the same random syscall traces run on the real kernel
// (test/kernel/replay_linux.c, built here with gcc) and through the model (kernel/replay.ts),
// and the outputs must match line for line: return values, errno names, and the VMAs of the
// test region as /proc/self/maps shows them (compared on `start-end perms` only).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { replayTrace, type ReplayHost } from '../../kernel/replay.js';
import { hostReplaySettings } from '../../bench/host.js';
import { REGION_END, REGION_START, REPLAY_MEMLOCK, randomTrace, type TraceOptions } from './trace-gen.js';

const SEEDS = 40;
const CALLS = 60;
/** The edge-input traces: 64-bit registers, every advice, mmap flags, PROT_GROWS*, guards. */
const EDGE_SEEDS = 500;
const EDGE_CALLS = 200;
const EDGE_BATCH = 50;

/**
 * Input classes the edge traces must reach over EDGE_SEEDS seeds, each as a pattern on the
 * trace text, and errnos Linux must have answered: so a generator change cannot quietly stop
 * testing a class.
 */
const EDGE_CLASSES: ReadonlyArray<[string, RegExp]> = [
  ['negative address', /"addr":"-\d/],
  ['address above TASK_SIZE', /"addr":"0x(800000000000|8000000000000000|1000000000000000)"/],
  ['MAP_FIXED at an error-number address', /"op":"mmap","addr":"-(1|12|22|100|4095)"/],
  ['len that wraps in PAGE_ALIGN', /"len":"(-1|0xfffffffffffff001)"/],
  ['len that wraps start + len', /"len":"0xfffffffd/],
  ['mmap len past TASK_SIZE', /"op":"mmap"[^}]*"len":"0x(800000000000|8000000000000000|7fffffffffff)"/],
  ['MAP_FIXED at 0 (mmap_min_addr)', /"op":"mmap","addr":"0"/],
  ['MAP_SHARED_VALIDATE anonymous', /MAP_SHARED_VALIDATE/],
  ['MAP_DROPPABLE', /MAP_DROPPABLE/],
  ['MAP_GROWSDOWN', /MAP_GROWSDOWN/],
  ['MAP_LOCKED', /MAP_LOCKED/],
  ['MAP_NORESERVE', /MAP_NORESERVE/],
  ['mappings around RAM + swap (overcommit)', /"op":"mmap","addr":"0x200000000","len":"0x[0-9a-f]{7,}"/],
  ['MAP_STACK', /MAP_STACK/],
  ['MAP_SYNC', /MAP_SYNC/],
  ['MAP_HUGETLB (raw flags)', /"flags":"0x(4|8|c|1|6|5)[0-9a-f]*40032"|"flags":"0x40032"|"flags":"0x40022"|"flags":"0x140022"/],
  ['flag bits above 31', /"flags":"0x[0-9a-f]{9,}"/],
  ['prot bits mmap ignores', /"op":"mmap"[^}]*"prot":"0x/],
  ['PROT_GROWSDOWN', /"prot":"0x100000[13]"/],
  ['PROT_GROWSUP', /"prot":"0x2000001"/],
  ['prot bits above 31 in mprotect', /"op":"mprotect"[^}]*"prot":"0x(1|8)000000/],
  ['advice truncated to int', /"advice":"0x1000000/],
  ['invalid advice', /"advice":"(-1|0x80000000|26|99|104|5)"/],
  ...[
    'MADV_FREE', 'MADV_REMOVE', 'MADV_DONTFORK', 'MADV_DOFORK', 'MADV_MERGEABLE', 'MADV_UNMERGEABLE', 'MADV_HUGEPAGE',
    'MADV_NOHUGEPAGE', 'MADV_DONTDUMP', 'MADV_DODUMP', 'MADV_WIPEONFORK', 'MADV_KEEPONFORK', 'MADV_COLD', 'MADV_PAGEOUT',
    'MADV_POPULATE_READ', 'MADV_POPULATE_WRITE', 'MADV_DONTNEED_LOCKED', 'MADV_COLLAPSE', 'MADV_GUARD_INSTALL', 'MADV_GUARD_REMOVE',
  ].map((a): [string, RegExp] => [a, new RegExp(`"advice":"${a}"`)]),
];
const EDGE_ERRNOS = ['EINVAL', 'ENOMEM', 'EEXIST', 'EPERM', 'EFAULT', 'EBADF', 'EAGAIN'];

/** The edge generator's view of this machine (mmap_min_addr, RAM + swap), from what the model is told. */
/** This machine's settings as the model is told them: read from /proc once, on first use. */
let hostCache: ReturnType<typeof hostReplaySettings> | null = null;
const host = () => (hostCache ??= hostReplaySettings(REPLAY_MEMLOCK));

function edgeOptions(): TraceOptions {
  const h = host();
  return { edges: true, mmapMinAddr: h.mmapMinAddr, commitPages: h.overcommit.mode === 0 ? h.overcommit.totalRamPages + h.overcommit.swapPages : undefined };
}
// The compiled test runs from dist/test/kernel/; the C source stays in test/kernel/.
const SRC = fileURLToPath(new URL('../../../test/kernel/replay_linux.c', import.meta.url));
const CFLAGS = ['-O1', '-Wall', '-Werror', '-std=gnu11'];

function skipReason(): string | false {
  if (process.platform !== 'linux') return `replay_linux.c runs on Linux only (this is ${process.platform})`;
  const r = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (r.error) return `gcc not found (${r.error.message}): cannot build the real-Linux replayer`;
  return false;
}

/** Runs a trace on the real kernel; fails the test if the replayer does not exit cleanly. */
function runLinux(bin: string, trace: string[], what: string): string[] {
  const r = spawnSync(bin, { input: trace.map((l) => l + '\n').join(''), encoding: 'utf8', timeout: 30_000 });
  if (r.error) assert.fail(`${what}: running ${bin}: ${r.error.message}`);
  if (r.status !== 0) assert.fail(`${what}: replay_linux exited with ${r.status ?? r.signal}:\n${r.stderr}`);
  const out = r.stdout.split('\n');
  if (out.at(-1) === '') out.pop();
  return out;
}

const KEY_ORDER = ['ret', 'errno', 'maps'];
const keyRank = (k: string): number => (KEY_ORDER.includes(k) ? KEY_ORDER.indexOf(k) : KEY_ORDER.length);

/** JSON results canonicalised (key order fixed); maps lines cut to `start-end perms`. */
function normalise(line: string): string {
  const t = line.trim();
  if (t.startsWith('{')) {
    try {
      const o: unknown = JSON.parse(t);
      if (o !== null && typeof o === 'object' && !Array.isArray(o)) {
        const keys = Object.keys(o).sort((a, b) => keyRank(a) - keyRank(b) || (a < b ? -1 : a > b ? 1 : 0));
        return JSON.stringify(o, keys);
      }
    } catch {
      // not JSON: compared as it is
    }
    return t;
  }
  return t.split(/\s+/).slice(0, 2).join(' ');
}

/** For each output line, the index of the trace line that produced it. */
function producers(out: string[]): number[] {
  const idx: number[] = [];
  let ti = 0;
  for (const line of out) {
    idx.push(ti);
    if (line.trimStart().startsWith('{')) ti++; // a call's result or a maps terminator
  }
  return idx;
}

function sideBySide(linux: string[], model: string[], mark: number): string {
  const w = Math.max(5, ...linux.map((l) => l.length));
  const rows: string[] = [`     ${'linux'.padEnd(w)} | model`];
  for (let i = 0; i < Math.max(linux.length, model.length); i++) {
    const m = i === mark ? '>' : ' ';
    rows.push(`${m}${String(i).padStart(3)} ${(linux[i] ?? '<none>').padEnd(w)} | ${model[i] ?? '<none>'}`);
  }
  return rows.join('\n');
}

function mismatchMessage(seed: number, trace: string[], linuxRaw: string[], modelRaw: string[], linux: string[], model: string[], i: number): string {
  const lp = producers(linuxRaw);
  const mp = producers(modelRaw);
  const ti = lp[i] ?? mp[i] ?? trace.length - 1;
  const traceLines = trace.map((l, k) => `${String(k).padStart(3)} ${l}`).join('\n');
  return [
    `seed ${seed}: model and Linux differ at output line ${i}, produced by trace line ${ti}:`,
    `  trace: ${trace[ti] ?? '<past the end of the trace>'}`,
    `  linux: ${linuxRaw[i] ?? '<no line>'}`,
    `  model: ${modelRaw[i] ?? '<no line>'}`,
    mp[i] !== undefined && mp[i] !== ti ? `  (the model's line ${i} belongs to its trace line ${mp[i]})` : '',
    `Reproduce: npx tsc -p . && gcc ${CFLAGS.join(' ')} -o /tmp/replay_linux test/kernel/replay_linux.c &&`,
    `  node -e "import('./dist/test/kernel/trace-gen.js').then(m => console.log(m.randomTrace(${seed}, ${CALLS}).join('\\n')))" | /tmp/replay_linux`,
    `--- trace (seed ${seed}) ---`,
    traceLines,
    `--- outputs, normalised ('>' = first difference) ---`,
    sideBySide(linux, model, i),
  ]
    .filter((s) => s !== '')
    .join('\n');
}

const skip = skipReason();
const errnosSeen: string[] = [];

describe('VMA layer vs real Linux (differential)', { skip }, () => {
  let dir = '';
  let bin = '';

  before(() => {
    assert.ok(existsSync(SRC), `replay_linux.c not found at ${SRC}`);
    dir = mkdtempSync(join(tmpdir(), 'replay-linux-'));
    bin = join(dir, 'replay_linux');
    const r = spawnSync('gcc', [...CFLAGS, '-o', bin, SRC], { encoding: 'utf8' });
    assert.equal(r.status, 0, `gcc ${CFLAGS.join(' ')} ${SRC} failed:\n${r.stderr}`);
  });

  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('replay_linux rejects malformed input with a message', () => {
    const bad = [
      'not json',
      '{"op":"mmap","addr":"0x200000000","len":"0x1000","prot":"rw-"}',
      '{"op":"munmap","addr":"0x2000z0000","len":"0x1000"}',
      '{"op":"mprotect","addr":"0x200000000","len":"0x1000","prot":"rwq"}',
      '{"op":"madvise","addr":"0x200000000","len":"0x1000","advice":"MADV_BOGUS"}',
      '{"op":"frobnicate"}',
      '{"op":"maps"} trailing',
    ];
    for (const line of bad) {
      const r = spawnSync(bin, { input: line + '\n', encoding: 'utf8' });
      assert.notEqual(r.status, 0, `accepted malformed input: ${line}`);
      assert.match(r.stderr, /replay_linux: /, `no message for: ${line}`);
    }
  });

  it('randomTrace is deterministic, ends with maps and stays in the test region', () => {
    for (let seed = 0; seed < SEEDS; seed++) {
      const t = randomTrace(seed, CALLS);
      assert.equal(t.length, CALLS);
      assert.deepEqual(randomTrace(seed, CALLS), t, `seed ${seed}: not deterministic`);
      assert.equal(t.at(-1), '{"op":"maps"}');
      for (const line of t) {
        const c = JSON.parse(line) as { op: string; addr?: string | number; flags?: string[] };
        if (c.addr === undefined) continue;
        const a = Number(c.addr);
        assert.ok(a >= REGION_START && a < REGION_END, `seed ${seed}: addr outside the region: ${line}`);
        if (c.op === 'mmap') {
          assert.ok(c.flags?.includes('MAP_FIXED') || c.flags?.includes('MAP_FIXED_NOREPLACE'), `seed ${seed}: non-fixed mmap: ${line}`);
        }
      }
    }
  });

  it(`the edge traces (${EDGE_SEEDS} seeds x ${EDGE_CALLS} calls) reach every input class`, () => {
    const text = Array.from({ length: EDGE_SEEDS }, (_, s) => randomTrace(s + 1, EDGE_CALLS, edgeOptions()).join('\n')).join('\n');
    const missing = EDGE_CLASSES.filter(([, re]) => !re.test(text)).map(([name]) => name);
    assert.deepEqual(missing, [], 'input classes no edge trace reaches');
  });

  for (let from = 1; from <= EDGE_SEEDS; from += EDGE_BATCH) {
    const to = Math.min(EDGE_SEEDS, from + EDGE_BATCH - 1);
    it(`edge seeds ${from}-${to}: ${EDGE_CALLS} calls each give the same output`, (t) => {
      const model: ReplayHost = host();
      const errnos = new Set<string>();
      for (let seed = from; seed <= to; seed++) {
        const trace = randomTrace(seed, EDGE_CALLS, edgeOptions());
        const linuxRaw = runLinux(bin, trace, `edge seed ${seed}`);
        for (const l of linuxRaw) {
          const m = /"errno":"(E[A-Z0-9]+)"/.exec(l);
          if (m) errnos.add(m[1]!);
        }
        let modelRaw: string[];
        try {
          modelRaw = replayTrace(trace, model);
        } catch (e) {
          assert.fail(`edge seed ${seed}: replayTrace threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        }
        const linux = linuxRaw.map(normalise);
        const modelN = modelRaw.map(normalise);
        for (let i = 0; i < Math.max(linux.length, modelN.length); i++) {
          if (linux[i] !== modelN[i]) assert.fail('edge traces (randomTrace(seed, n, { edges: true, mmapMinAddr })), ' + mismatchMessage(seed, trace, linuxRaw, modelRaw, linux, modelN, i));
        }
      }
      t.diagnostic(`errnos Linux gave: ${[...errnos].sort().join(' ')}`);
      errnosSeen.push(...errnos);
    });
  }

  it('the edge traces made Linux answer every errno class they aim at', () => {
    const missing = EDGE_ERRNOS.filter((e) => !errnosSeen.includes(e));
    assert.deepEqual(missing, [], 'errnos no edge trace produced');
  });

  for (let seed = 1; seed <= SEEDS; seed++) {
    it(`seed ${seed}: ${CALLS} calls give the same output`, () => {
      const trace = randomTrace(seed, CALLS);
      const linuxRaw = runLinux(bin, trace, `seed ${seed}`);
      let modelRaw: string[];
      try {
        modelRaw = replayTrace(trace);
      } catch (e) {
        assert.fail(`seed ${seed}: replayTrace threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      }
      const linux = linuxRaw.map(normalise);
      const model = modelRaw.map(normalise);
      const n = Math.max(linux.length, model.length);
      for (let i = 0; i < n; i++) {
        if (linux[i] !== model[i]) assert.fail(mismatchMessage(seed, trace, linuxRaw, modelRaw, linux, model, i));
      }
    });
  }
});
