// Hostile and unlucky input to the readers of a result set: each refused
// with one line naming the file and exit 2, never a stack trace or a quiet
// wrong answer. One small real run is the material.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { formatCsv, parseCsv } from '../../bench/csv.js';
import type { Row } from '../../bench/schema.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memcrypt-hostile-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

/** A copy of a result set (CSV, meta, samples) under another name. */
function copySet(from: string, to: string): void {
  for (const ext of ['.csv', '.meta.json', '.samples.json']) copyFileSync(from.replace(/\.csv$/, ext), to.replace(/\.csv$/, ext));
}

function refused(args: string[], re: RegExp): void {
  const r = cli(args);
  assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}: ${r.stdout}${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, re);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

describe('hostile result sets', () => {
  const a = join(dir, 'a.csv');
  const b = join(dir, 'b.csv');
  before(() => {
    for (const out of [a, b]) {
      const r = cli(['run', '-w', 'fault', '-i', 'plain-mmap,encrypt-mprotect', '-t', '1', '--repeat', '1', '--time', '20', '--warmup', '10', '--costs', 'defaults', '--out', out, '--no-history', '-f', 'none']);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  it('a CSV cut at a row boundary: it still parses, its count does not match', () => {
    const cut = join(dir, 'cut.csv');
    copySet(a, cut);
    const lines = readFileSync(cut, 'utf8').trimEnd().split('\n');
    writeFileSync(cut, lines.slice(0, -1).join('\n') + '\n');
    refused(['report', cut], /cut\.csv: 1 rows, but .*cut\.meta\.json says the run wrote 2: the CSV is cut short or not this run's$/);
    refused(['compare', a, cut], /cut\.csv: 1 rows, but/);
  });

  it('a CSV edited in place: the digest differs', () => {
    const ed = join(dir, 'edited.csv');
    copySet(a, ed);
    writeFileSync(ed, readFileSync(ed, 'utf8').replace(/,plaintext,/, ',encrypted,'));
    refused(['report', ed], /edited\.csv: the CSV is not the one .*edited\.meta\.json was written with/);
  });

  it('a mixed set: the CSV of one run beside the meta or samples of another', () => {
    const mix = join(dir, 'mix.csv');
    copySet(a, mix);
    copyFileSync(b.replace(/\.csv$/, '.meta.json'), mix.replace(/\.csv$/, '.meta.json'));
    refused(['report', mix], /mix\.csv: run \S+ in the CSV, but .*mix\.meta\.json is of run \S+: not one result set$/);
    const mix2 = join(dir, 'mix2.csv');
    copySet(a, mix2);
    copyFileSync(b.replace(/\.csv$/, '.samples.json'), mix2.replace(/\.csv$/, '.samples.json'));
    refused(['compare', a, mix2], /mix2\.samples\.json: samples of run \S+, but .* is of run \S+: not one result set$/);
  });

  it('values out of range: a negative time, a fractional counter', () => {
    for (const [name, edit, re] of [
      ['neg', (r: Row) => (r.sim_ns_per_op_median = -5), /neg\.csv:2: sim_ns_per_op_median: expected a number >= 0, got '-5'$/],
      ['frac', (r: Row) => (r.faults = 0.5), /frac\.csv:2: faults: expected an integer >= 0, got '0\.5'$/],
    ] as const) {
      const f = join(dir, `${name}.csv`);
      copySet(a, f);
      const rows = parseCsv(readFileSync(f, 'utf8'), f);
      edit(rows[0]!);
      writeFileSync(f, formatCsv(rows));
      refused(['report', f], re);
    }
  });

  it('run refuses to overwrite the baseline it compares with, before any work', () => {
    const bl = join(dir, 'bl.csv');
    copySet(a, bl);
    const before = readFileSync(bl, 'utf8');
    refused(['run', '--out', bl, '--baseline', bl], /--out .*bl\.csv: is the baseline it would be compared with/);
    assert.equal(readFileSync(bl, 'utf8'), before);
  });
});
