import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { REPORT_WIDTH, formatReport, humanBytes, humanCount, humanNs } from '../../bench/report.js';
import type { Row } from '../../bench/schema.js';
import { mkMeta, mkRow, notRun } from './fixtures.js';

type Spec = [outcome: string, errno: string];
const ENC: Spec = ['encrypted', ''];

/**
 * The run DESIGN.md describes on MKTME: 4 designs x 5 workloads x threads 1,2,
 * patched kernel, plus the unpatched kernel for enosys-fallback.
 */
function realisticRows(): Row[] {
  const patched: Record<string, Record<string, Spec>> = {
    'encrypt-mprotect': { fault: ENC, 'enosys-fallback': ENC, swap: ENC, migration: ENC, 'dax-stacking': ['unsupported', 'EINVAL'] },
    'dev-mktme': { fault: ENC, 'enosys-fallback': ENC, swap: ['unsupported', 'ENOMEM'], migration: ['unsupported', 'EBUSY'], 'dax-stacking': ['unsupported', 'ENODEV'] },
    'madvise-encrypt': { fault: ENC, 'enosys-fallback': ENC, swap: ENC, migration: ENC, 'dax-stacking': ENC },
    'memfd-secret': { fault: ['secret', ''], 'enosys-fallback': ['secret', ''], swap: ['secret', ''], migration: ['unsupported', 'EBUSY'], 'dax-stacking': ['unsupported', 'EINVAL'] },
  };
  const unpatched: Record<string, Spec> = {
    'encrypt-mprotect': ['crashed', 'ENOSYS'],
    'dev-mktme': ['plaintext-fallback', 'ENOENT'],
    'madvise-encrypt': ['plaintext-fallback', 'EINVAL'],
    'memfd-secret': ['plaintext-fallback', 'ENOSYS'],
  };
  const rows: Row[] = [];
  let i = 0;
  const add = (iface: string, workload: string, kernel: Row['kernel'], threads: number, [outcome, errno]: Spec) => {
    i++;
    const timed = outcome !== 'unsupported' && outcome !== 'crashed';
    rows.push(
      mkRow({
        interface: iface,
        workload,
        kernel,
        threads,
        outcome,
        errno,
        ...(timed ? { sim_ns_per_op_median: 850 * i * threads, sim_ns_per_op_p99: 1200 * i, sim_rme_pct: (i % 7) + 0.4 } : notRun),
        faults: 64 * threads,
        pages_encrypted: outcome === 'encrypted' ? 64 * threads : 0,
        clflush_lines: outcome === 'encrypted' ? 4096 * threads : 0,
        enosys: kernel === 'unpatched' ? 1 : 0,
        swap_out: workload === 'swap' && outcome === 'encrypted' ? 48 : 0,
        swap_in: workload === 'swap' && outcome === 'encrypted' ? 48 : 0,
        plaintext_exposed_bytes: workload === 'swap' && outcome === 'encrypted' ? 49152 : 0,
        migrated: workload === 'migration' && timed ? 64 : 0,
        migrate_failed: workload === 'migration' && !timed ? 64 : 0,
        tlb_shootdowns: workload === 'migration' ? 64 * threads : 1,
      }),
    );
  };
  for (const iface of Object.keys(patched))
    for (const [wl, spec] of Object.entries(patched[iface])) for (const t of [1, 2]) add(iface, wl, 'patched', t, spec);
  for (const [iface, spec] of Object.entries(unpatched)) for (const t of [1, 2]) add(iface, 'enosys-fallback', 'unpatched', t, spec);
  return rows;
}

const width = (l: string) => [...l].length;

function assertFits(report: string): void {
  for (const [i, l] of report.split('\n').entries())
    assert.ok(width(l) <= REPORT_WIDTH, `line ${i + 1} is ${width(l)} wide: ${JSON.stringify(l)}`);
}

/** The capability matrix rows of one hardware section, as whitespace-split cells. */
function matrix(report: string, hw: string): Map<string, string[]> {
  const lines = report.split('\n');
  const start = lines.indexOf(`Capabilities on ${hw} hardware`);
  assert.ok(start >= 0, `no matrix for ${hw}`);
  const m = new Map<string, string[]>();
  for (let i = start + 1; i < lines.length && lines[i] !== ''; i++) {
    const [label, ...cells] = lines[i].trim().split(/\s+/);
    m.set(i === start + 1 ? 'header' : label, i === start + 1 ? [label, ...cells] : cells);
  }
  return m;
}

/** The command as the shell will see it: the Reproduce lines with continuations joined. */
function reproduced(report: string): string {
  const lines = report.split('\n');
  const from = lines.indexOf('Reproduce:');
  assert.ok(from >= 0, 'Reproduce: present');
  return lines
    .slice(from + 1)
    .join('\n')
    .replace(/\\\n/g, '') // what sh does with backslash-newline
    .trim();
}

describe('formatReport', () => {
  const command =
    'node dist/bench/cli.js run --hardware mktme --threads 1,2 --seed 42 ' +
    '--interfaces encrypt-mprotect,dev-mktme,madvise-encrypt,memfd-secret --out results/run.csv';

  it('fits 72 columns for a realistic run and shows the machine', () => {
    const r = formatReport(mkMeta({ command, reproduce: command }), realisticRows());
    assertFits(r);
    for (const s of [
      'host     testhost, Linux 6.18.44',
      'cpu      Test CPU @ 3.0GHz, 2 CPUs, 24GiB RAM',
      'load     0.50 0.40 0.30 at start, 0.70 0.50 0.30 at end',
      'node     v20.20.2, tinybench 6.2.5, crypto openssl',
      'costs    sourced defaults',
      'git      abc1234',
      'started  2025-11-25T11:00:00Z, seed 42, 12.5 s',
      'run id   run-1',
    ])
      assert.ok(r.includes(s), s);
    assert.match(r, /^[\x0a\x20-\x7e]*$/, 'plain ASCII');
  });

  it('matrix: abbreviations, errno, kernel per column, smallest thread count', () => {
    const m = matrix(formatReport(mkMeta(), realisticRows()), 'mktme');
    assert.deepEqual(m.get('header'), ['fault', 'enosys', 'swap', 'migrate', 'dax']);
    assert.deepEqual(m.get('enc-mprot'), ['enc', 'CRASH/ENOSYS', 'enc', 'enc', 'unsup/EINVAL']);
    assert.deepEqual(m.get('dev-mktme'), ['enc', 'plain/ENOENT', 'unsup/ENOMEM', 'unsup/EBUSY', 'unsup/ENODEV']);
    assert.deepEqual(m.get('madv-enc'), ['enc', 'plain/EINVAL', 'enc', 'enc', 'enc']);
    assert.deepEqual(m.get('memfd-sec'), ['secret', 'plain/ENOSYS', 'secret', 'unsup/EBUSY', 'unsup/EINVAL']);
  });

  it('matrix: - for missing cells, LOSS, and the other kernel marked', () => {
    const rows = realisticRows()
      .filter((r) => !(r.interface === 'memfd-secret' && r.workload === 'migration'))
      .filter((r) => !(r.interface === 'dev-mktme' && r.workload === 'enosys-fallback' && r.kernel === 'unpatched'))
      .map((r): Row => (r.interface === 'madvise-encrypt' && r.workload === 'dax-stacking' && r.threads === 1 ? { ...r, outcome: 'data-loss', errno: '' } : r));
    // a 2-thread row must not win over the 1-thread one
    rows.push(mkRow({ interface: 'encrypt-mprotect', workload: 'fault', threads: 4, outcome: 'crashed', errno: 'EFAULT' }));
    const r = formatReport(mkMeta(), rows);
    const m = matrix(r, 'mktme');
    assert.deepEqual(m.get('memfd-sec'), ['secret', 'plain/ENOSYS', 'secret', '-', 'unsup/EINVAL']);
    assert.deepEqual(m.get('dev-mktme')?.[1], 'enc*');
    assert.deepEqual(m.get('madv-enc')?.[4], 'LOSS');
    assert.deepEqual(m.get('enc-mprot')?.[0], 'enc');
    assert.match(r, /\*\s+=\s+only\s+the\s+other\s+kernel\s+was\s+run/);
  });

  it('one matrix per hardware profile, other interfaces and workloads after the known ones', () => {
    const rows = [
      mkRow({ hardware: 'sev', interface: 'memfd-secret', workload: 'fault', outcome: 'secret' }),
      mkRow({ hardware: 'sev', interface: 'zz-new', workload: 'aaa-new' }),
      mkRow({ hardware: 'mktme', interface: 'dev-mktme', workload: 'swap', outcome: 'unsupported', errno: 'ENOMEM' }),
      mkRow({ hardware: 'mktme', interface: 'aa-new', workload: 'fault' }),
    ];
    const r = formatReport(mkMeta(), rows);
    assertFits(r);
    assert.ok(r.indexOf('Capabilities on mktme') < r.indexOf('Capabilities on sev'));
    // a profile's matrix has the workloads that ran on it (swap ran on mktme only)
    const m = matrix(r, 'sev');
    assert.deepEqual(m.get('header'), ['fault', 'aaa-new']);
    assert.deepEqual([...m.keys()].slice(1), ['dev-mktme', 'memfd-sec', 'aa-new', 'zz-new']);
    assert.deepEqual(m.get('memfd-sec'), ['secret', '-']);
    assert.deepEqual(m.get('zz-new'), ['-', 'enc']);
    assert.deepEqual(matrix(r, 'mktme').get('header'), ['fault', 'swap']);
    // fault ran on two profiles: its table gets a hardware column; swap's does not
    assert.match(r, /^fault[^\n]*\n *interface +k +thr +hw +outcome/m);
    assert.match(r, /^swap[^\n]*\n *interface +k +thr +outcome/m);
  });

  it('model tables first: the modelled cost, over plain, the two largest terms; - for cells that did not run', () => {
    const rows = [
      mkRow({ workload: 'swap', swap: 'plain', interface: 'plain-mmap', outcome: 'plaintext', swap_out: 12, swap_in: 7, clflush_lines: 0, model_over_plain_ns_per_op: 0 }),
      mkRow({ workload: 'swap', swap: 'plain', outcome: 'leaked', leak_medium: 'swap', leak_bytes: 49152, swap_out: 12, swap_in: 7, model_over_plain_ns_per_op: 1234.5 }),
      mkRow({ workload: 'swap', swap: 'encrypted', swap_out: 12, swap_in: 7, model_over_plain_ns_per_op: 1234.5 }),
      mkRow({ workload: 'swap', swap: 'plain', interface: 'dev-mktme', outcome: 'unsupported', errno: 'ENOMEM', ...notRun }),
    ];
    const r = formatReport(mkMeta(), rows, { swap: 'page' });
    const lines = r.split('\n');
    const head = lines.indexOf('swap, op = page');
    assert.ok(head >= 0 && head < lines.indexOf('Capabilities on mktme hardware'));
    assert.deepEqual(lines[head + 1].trim().split(/\s+/), ['interface', 'k', 'thr', 'outcome', 'model/op', '+plain', 'top', 'terms', '%']);
    // default costs: 19 swap I/Os of 10 us, 64 faults of 2.55 us, 64 zaps, a
    // syscall each, one IPI and one PCONFIG, over 64 ops; 4096 lines flushed for the design
    assert.deepEqual(lines[head + 2].trim().split(/\s+/), ['plain-mmap', 'p', '1', 'clear', '5.66', 'us', '0', 'swap-io', '52', 'fault', '45']);
    assert.deepEqual(lines[head + 3].trim().split(/\s+/), ['enc-mprot', 'p', '1', 'leak/swap', '5.96', 'us', '+1.23', 'us', 'swap-io', '50', 'fault', '43']);
    assert.deepEqual(lines[head + 4].trim().split(/\s+/), ['enc-mprot+dmc', 'p', '1', 'enc', '5.96', 'us', '+1.23', 'us', 'swap-io', '50', 'fault', '43']);
    assert.deepEqual(lines[head + 5].trim().split(/\s+/), ['dev-mktme', 'p', '1', 'unsup/ENOMEM', '-', '-']);
    const m = matrix(r, 'mktme');
    assert.deepEqual(m.get('header'), ['swap', 'swap-dmc']);
    assert.deepEqual(m.get('enc-mprot'), ['leak/swap', 'enc']);
    assert.deepEqual(m.get('plain-mmap'), ['clear', '-']);
    // the cost table it used, with provenance, and the harness's speed after it
    assert.match(r, /^fault +2\.55 us +literature +anon first-touch fault$/m);
    assert.ok(r.indexOf('Cost table') < r.indexOf('Harness speed (not the argument)'));
    assert.match(r, /^ *swap +enc-mprot +p +1 +1\.23 us +- +1 +0%$/m);
  });

  it('fallback cost: without the design, with it, and over plain memory, per design', () => {
    const fb = (iface: string, kernel: 'patched' | 'unpatched', o: Partial<Row>) =>
      mkRow({ workload: 'enosys-fallback', interface: iface, kernel, ops: 1, ...o });
    const rows = [
      fb('plain-mmap', 'unpatched', { outcome: 'plaintext', syscalls: 2, key_programs: 0, clflush_lines: 0, faults: 8, pages_zapped: 8 }),
      fb('encrypt-mprotect', 'unpatched', { outcome: 'plaintext-fallback', errno: 'ENOSYS', syscalls: 4, enosys: 1, key_programs: 1, clflush_lines: 0, faults: 8, pages_zapped: 8 }),
      fb('encrypt-mprotect', 'patched', { syscalls: 4, key_programs: 1, clflush_lines: 512, faults: 8, pages_zapped: 8 }),
    ];
    const lines = formatReport(mkMeta(), rows).split('\n');
    const at = lines.findIndex((l) => l.startsWith('Fallback cost (enosys-fallback, 1 CPU'));
    assert.ok(at >= 0);
    const head = lines.findIndex((l, i) => i > at && /^ *interface +without/.test(l));
    assert.deepEqual(lines[head].trim().split(/\s+/), ['interface', 'without', 'model/op', 'with', '-plain', '-with']);
    // default costs, each with 8 faults, 8 zaps and one IPI: without = 3 syscalls,
    // 1 ENOSYS, 1 PCONFIG (23.96 us); plain = 2 syscalls (22.61 us); with = 4
    // syscalls, 1 PCONFIG, 512 lines flushed (26.42 us)
    assert.deepEqual(lines[head + 1].trim().split(/\s+/), ['enc-mprot', 'plain/ENOSYS', '24.0', 'us', '26.4', 'us', '+1.35', 'us', '-2.46', 'us']);
  });

  it('reproduce: the command, wrapped with continuations a shell reads back', () => {
    const r = formatReport(mkMeta({ command, reproduce: command }), realisticRows());
    const lines = r.split('\n');
    const from = lines.indexOf('Reproduce:');
    assert.ok(lines.slice(from + 1, -2).every((l) => l.endsWith(' \\')), 'continuations');
    assert.equal(reproduced(r).replace(/\s+/g, ' '), command);
  });

  it('reproduce: says why no commit reproduces a run from a dirty tree or from no git checkout', () => {
    const head = (git_sha: string) => {
      const lines = formatReport(mkMeta({ command, reproduce: command, git_sha }), realisticRows()).split('\n');
      const from = lines.findIndex((l) => l.startsWith('Reproduce'));
      return lines.slice(from, lines.findIndex((l, i) => i > from && l.startsWith('  node dist/bench/cli.js'))).join(' ').replace(/\s+/g, ' ');
    };
    assert.equal(head('0123456789abcdef0123456789abcdef01234567'), 'Reproduce:');
    assert.match(head('0123456789abcdef0123456789abcdef01234567-dirty'), /^Reproduce \(the tree had uncommitted changes, so no commit reproduces it exactly\):$/);
    assert.match(head('unknown'), /^Reproduce \(no git commit was found for the run, so none reproduces it exactly\):$/);
  });

  it('fits 72 columns for adversarial names, numbers and commands', () => {
    const longPath = '/very/long/' + 'directory-name/'.repeat(12) + 'results.csv';
    const meta = mkMeta({
      host: 'build-host-' + 'x'.repeat(300) + '.example.org',
      cpu_model: 'Intel(R) Xeon(R) Platinum 8480+ with\ta very\nlong model string '.repeat(5),
      git_sha: 'f'.repeat(40) + '-dirty-and-then-some-more-text-to-make-it-long',
      run_id: 'r'.repeat(100),
      command: `node dist/bench/cli.js run --out ${longPath} --note "a quoted  argument with spaces" ` + '--threads 1,2,4,8,16,32,64 '.repeat(6),
    });
    meta.reproduce = meta.command;
    const rows: Row[] = [];
    for (const hw of ['mktme', 'sev', 'hardware-profile-with-a-long-name'])
      for (const be of ['openssl', 'noble'])
        for (const iface of ['encrypt-mprotect', 'memfd-secret', 'some-future-interface-with-a-long-name'])
          for (const wl of ['fault', 'dax-stacking', 'workload-with-a-very-long-name-indeed', 'w2', 'w3', 'w4', 'w5'])
            for (const kernel of ['patched', 'unpatched'] as const)
              rows.push(
                mkRow({
                  hardware: hw,
                  crypto_backend: be,
                  interface: iface,
                  workload: wl,
                  kernel,
                  threads: 1024,
                  outcome: kernel === 'patched' ? 'an-outcome-nobody-expected' : 'unsupported',
                  errno: 'EKEYREVOKED',
                  sim_ns_per_op_median: 9.87e13,
                  sim_rme_pct: 512.5,
                  modelled_ns_per_op: 0.25,
                  model_over_plain_ns_per_op: -1e12,
                  faults: 1e15,
                  pages_encrypted: 123456789,
                  clflush_lines: 999999,
                  plaintext_exposed_bytes: 2 ** 60,
                  syscalls: -5,
                }),
              );
    const r = formatReport(meta, rows);
    assertFits(r);
    assert.match(r, /host {5}build-host-x+~/);
    assert.match(r, /^[\x0a\x20-\x7e]*$/, 'plain ASCII whatever the names');
    assert.ok(!r.includes('\t'));
    // every matrix shows every workload, even when they need two blocks
    assert.equal((r.match(/Capabilities on /g) ?? []).length, 3);
    assert.equal(reproduced(r).replace(/\s+/g, ' '), meta.command.trim().replace(/\s+/g, ' '));
  });

  it('the wrapped command gives the shell the same words', { skip: process.platform === 'win32' }, () => {
    const longPath = '/very/long/' + 'directory-name/'.repeat(10) + 'results.csv';
    const cmd = `run --out ${longPath} --note "a quoted  argument, with spaces" --x 'single quoted' ` + '--threads 1,2,4,8 '.repeat(8);
    const r = formatReport(mkMeta({ command: cmd, reproduce: cmd }), []);
    assertFits(r);
    const wrapped = r.split('\n').slice(r.split('\n').indexOf('Reproduce:') + 1).join('\n');
    const words = (script: string) => execFileSync('sh', ['-c', `set -- ${script}\nprintf '%s\\n' "$@"`], { encoding: 'utf8' });
    assert.equal(words(wrapped), words(cmd));
  });

  it('reports a run with no rows', () => {
    const r = formatReport(mkMeta({ command: '', reproduce: '' }), []);
    assertFits(r);
    assert.match(r, /No cells in this run/);
    assert.match(r, /Reproduce:\n {2}\(command not recorded\)/);
  });
});

describe('human units', () => {
  it('humanNs: 3 significant digits, unit changes after rounding', () => {
    assert.equal(humanNs(850), '850 ns');
    assert.equal(humanNs(1234.5), '1.23 us');
    assert.equal(humanNs(999.7), '1.00 us');
    assert.equal(humanNs(12_345_678), '12.3 ms');
    assert.equal(humanNs(2.5e9), '2.50 s');
    assert.equal(humanNs(0), '0 ns');
    assert.equal(humanNs(0.25), '0.25 ns');
    assert.equal(humanNs(NaN), '-');
  });

  it('humanBytes: binary units like ls -h', () => {
    assert.equal(humanBytes(512), '512');
    assert.equal(humanBytes(49152), '48K');
    assert.equal(humanBytes(1.5 * 2 ** 20), '1.5M');
    assert.equal(humanBytes(1023.9 * 1024), '1024K');
    assert.equal(humanBytes(2 ** 60), '1E');
    assert.equal(humanBytes(NaN), '-');
  });

  it('humanCount: exact up to 6 digits', () => {
    assert.equal(humanCount(999999), '999999');
    assert.equal(humanCount(1234567), '1.23M');
    assert.equal(humanCount(1e15), '1P');
    assert.equal(humanCount(-5), '-5');
  });
});
