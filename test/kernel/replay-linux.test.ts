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
import { replayTrace } from '../../kernel/replay.js';
import { REGION_END, REGION_START, randomTrace } from './trace-gen.js';

const SEEDS = 40;
const CALLS = 60;
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
