// The plain-text report, made to be pasted into a mail to a kernel mailing
// list: plain ASCII, every line within 72 columns (bench/text.ts). It leads
// with the argument, the modelled cost per op (exact counters x a cost table
// measured on this host, itemised, against the plain-mmap control), then the
// capability matrix and the fallback cost; the simulator's own speed is a
// separate section at the end, labelled as what it is. The metadata are what
// LKP-style mails carry, and the reproduce steps start from a checkout.
import { COST_NAMES, type CostName } from '../hardware/costs.js';
import { formatCostTable } from './calibrate/calibrate.js';
import { TERM_SHORT, topTerms } from './model.js';
import { hostRefSummary, hostScalingSummary } from './hostref.js';
import { cvPct, median } from './stats.js';
import { termColumn, type Row, type RunMeta } from './schema.js';
import { DRIFT_RHO, NOISY_SHARE_PCT, hasFlag } from './stability.js';
import { allWorkloads } from '../workloads/registry.js';
import {
  REPORT_WIDTH as W,
  clean,
  cmp,
  fit,
  humanBytes,
  humanNs,
  len,
  ordered,
  shortInterface,
  shortOutcome,
  shortWorkload,
  signedNs,
  table,
  wrapWords,
  type Align,
} from './text.js';

export { REPORT_WIDTH, fit, humanBytes, humanCount, humanNs, shortInterface, shortOutcome, shortWorkload, wrapWords } from './text.js';

// Axis orders: the control first, then the designs in the order DESIGN.md
// discusses them, then anything new alphabetically (likewise workloads, hardware).
const INTERFACES = ['plain-mmap', 'encrypt-mprotect', 'dev-mktme', 'madvise-encrypt', 'memfd-secret', 'guest-memfd'];
const WORKLOADS = ['fault', 'enosys-fallback', 'swap', 'migration', 'dax-stacking', 'qemu-guest', 'qemu-nvdimm', 'key-exhaustion'];
const HARDWARE = ['mktme', 'sev', 'sgx', 'tdx', 'none'];
const SWAPS = ['none', 'plain', 'encrypted'];

/** A matrix cell: outcome and the errno that decided it ('unsup/EBUSY'), or where it leaked ('leak/swap'). */
const _cell = (r: Row): string =>
  shortOutcome(r.outcome) + (r.outcome === 'leaked' && r.leak_medium ? '/' + clean(r.leak_medium) : r.errno ? '/' + clean(r.errno) : '');

/** key-exhaustion, in the matrix: the share of its processes that got encrypted memory, before what the rest got ('88% plain/ENOKEY'). */
const _share = (r: Row): string => (r.procs > 0 ? `${Math.floor((100 * r.procs_encrypted) / r.procs)}% ` : '');

const _k = (r: Row): string => (r.kernel === 'patched' ? 'p' : r.kernel === 'unpatched' ? 'u' : '?');

interface _Axes {
  readonly hws: string[];
  readonly ifaces: string[];
  readonly wls: string[];
}

/** Rows in report order: hardware, interface, kernel, swap, threads. */
function _sorted(rows: readonly Row[], ax: _Axes): Row[] {
  return [...rows].sort(
    (a, b) =>
      ax.hws.indexOf(a.hardware) - ax.hws.indexOf(b.hardware) ||
      ax.ifaces.indexOf(a.interface) - ax.ifaces.indexOf(b.interface) ||
      cmp(a.kernel, b.kernel) ||
      SWAPS.indexOf(a.swap) - SWAPS.indexOf(b.swap) ||
      a.threads - b.threads ||
      cmp(a.crypto_backend, b.crypto_backend),
  );
}

// --- sections ------------------------------------------------------------------

const _gib = (b: number): string => (Number.isFinite(b) && b > 0 ? `${humanBytes(b)}iB` : '?');
const _load = (l: readonly number[] | undefined): string => (l && l.length ? l.map((x) => x.toFixed(2)).join(' ') : '?');

function _machine(meta: RunMeta): string[] {
  const fields: [string, string][] = [
    ['run id', meta.run_id],
    ['git', meta.git_sha],
    ['host', `${meta.host}, Linux ${meta.kernel_release}`],
    ['cpu', `${meta.cpu_model}, ${meta.nproc} CPUs, ${_gib(meta.mem_bytes)} RAM`],
    ['load', `${_load(meta.load_avg_start)} at start, ${_load(meta.load_avg_end)} at end`],
    ['node', `${meta.node_version}${meta.timing_flags ? ` ${meta.timing_flags}` : ''}, tinybench ${meta.tinybench_version}, crypto ${(meta.crypto_backends ?? []).join(',')}${meta.crypto_impl ? ` (native: ${meta.crypto_impl})` : ''}${meta.crypto_note ? ` (${meta.crypto_note})` : ''}`],
    ['costs', meta.cost_source],
    ...(meta.host_ref_ns?.length
      ? [['host ref', `${hostRefSummary(meta.host_ref_ns, meta.host_ref_impl)}: fixed native work, none of the simulator, its spread the host's own`] as [string, string]]
      : []),
    ...(meta.host_scaling?.length
      ? [['scaling', `the host ref side by side: ${hostScalingSummary(meta.host_scaling, meta.host_scaling_threads)}, the most ${meta.host_scaling_threads} CPUs can gain over one here`] as [string, string]]
      : []),
    ['started', `${meta.started_at}, seed ${meta.seed}, ${meta.wall_seconds} s`],
  ];
  if (meta.stopped) fields.push(['stopped', `${meta.stopped}: a partial result set`]);
  const out = ['memcrypt-bench report'];
  for (const [k, v] of fields) out.push(...wrapWords(String(v ?? '-'), `  ${k.padEnd(8)} `, ' '.repeat(11)));
  return out;
}

const INTRO =
  'The argument is the modelled cost per op: the exact event counters of ' +
  'each cell times the cost table below (measured on this host where it ' +
  'says so), term by term. "+plain" is what a design costs over the ' +
  'plain-mmap control (anonymous memory, no encryption) in the same cell. ' +
  "The simulator's own time is the harness's speed, a separate section at " +
  'the end: it is not the argument.';

/** The two largest terms of a row and their shares in %: 'fault 71 clflush 18'. */
function _top(r: Row, n = 2): string {
  if (!Number.isFinite(r.modelled_ns_per_op)) return '';
  const terms = {} as Record<CostName, number>;
  for (const c of COST_NAMES) terms[c] = r[termColumn(c)];
  return topTerms(terms, n)
    .map((t) => `${TERM_SHORT[t.name]} ${Math.round(t.share * 100)}`)
    .join(' ');
}

function _modelTables(rows: readonly Row[], ax: _Axes, ops: Readonly<Record<string, string>>): string[] {
  const backends = ordered(rows.map((r) => r.crypto_backend), []);
  const out: string[] = ['', 'Modelled cost per op (the argument)', ...wrapWords(INTRO, '  ')];
  for (const wl of ax.wls)
    for (const be of backends) {
      const sel = _sorted(rows.filter((r) => r.workload === wl && r.crypto_backend === be), ax);
      if (!sel.length) continue;
      // a hardware column only where this workload ran on more than one
      const multiHw = new Set(sel.map((r) => r.hardware)).size > 1;
      const op = ops[wl] ? `, op = ${ops[wl]}` : '';
      out.push('', ...wrapWords(`${clean(wl)}${backends.length > 1 ? ` on ${clean(be)}` : ''}${op}`, '', '  '));
      const head = ['interface', 'k', 'thr', ...(multiHw ? ['hw'] : []), 'outcome', 'model/op', '+plain', 'top terms %'];
      const body = sel.map((r) => [
        shortInterface(r.interface) + (r.swap === 'encrypted' ? '+dmc' : ''),
        _k(r),
        String(r.threads),
        ...(multiHw ? [fit(clean(r.hardware), 6)] : []),
        _cell(r),
        humanNs(r.modelled_ns_per_op),
        signedNs(r.model_over_plain_ns_per_op),
        _top(r),
      ]);
      const o = multiHw ? 1 : 0;
      const align: Align[] = head.map((_, i) => (i <= 1 || i === 3 + o || i === 6 + o || (multiHw && i === 3) ? 'l' : 'r'));
      out.push(...table(head, body, align, [0, 3 + o, 6 + o]));
    }
  out.push('', ...wrapWords('k = kernel (p with the design, u without it); thr = worker CPUs; +dmc = swap over dm-crypt; "-" = the cell did not run its scenario, so it has no cost.', '', '  '));
  return out;
}

/**
 * enosys-fallback, stated outright: what a careful program pays for its
 * fallback on a kernel without the design, against the same program on a
 * kernel with it and against plain memory.
 */
function _fallback(rows: readonly Row[], ax: _Axes): string[] {
  const sel = rows.filter((r) => r.workload === 'enosys-fallback');
  if (!sel.length) return [];
  const threads = Math.min(...sel.map((r) => r.threads));
  const out: string[] = [
    '',
    ...wrapWords(
      `Fallback cost (enosys-fallback, ${threads} CPU${threads > 1 ? 's' : ''}, modelled per allocation): ` +
        'a careful program on a kernel without the design pays "without"; ' +
        '"-plain" is that minus plain memory on the same kernel (the price of ' +
        'asking), "-with" minus the same program on a kernel that has it.',
      '',
      '  ',
    ),
  ];
  const pick = (iface: string, kernel: string, hw: string, be: string) =>
    sel.find((r) => r.interface === iface && r.kernel === kernel && r.threads === threads && r.hardware === hw && r.crypto_backend === be);
  const body: string[][] = [];
  const multiHw = new Set(sel.map((r) => r.hardware)).size > 1;
  for (const hw of ax.hws)
    for (const be of ordered(sel.map((r) => r.crypto_backend), []))
      for (const iface of ax.ifaces) {
        if (iface === 'plain-mmap') continue;
        const u = pick(iface, 'unpatched', hw, be);
        if (!u) continue;
        const p = pick(iface, 'patched', hw, be);
        const plain = pick('plain-mmap', 'unpatched', hw, be);
        const d = (a: Row | undefined, b: Row | undefined) => (a && b ? signedNs(a.modelled_ns_per_op - b.modelled_ns_per_op) : '-');
        body.push([
          shortInterface(iface) + (multiHw ? ` ${fit(clean(hw), 5)}` : ''),
          _cell(u),
          humanNs(u.modelled_ns_per_op),
          p ? humanNs(p.modelled_ns_per_op) : '-',
          d(u, plain),
          d(u, p),
        ]);
      }
  if (!body.length) return [];
  out.push(...table(['interface', 'without', 'model/op', 'with', '-plain', '-with'], body, ['l', 'l', 'r', 'r', 'r', 'r'], [0, 1]));
  return out;
}

/** The row shown in a matrix cell; `other` when only the non-preferred kernel has one. */
function _pick(cands: readonly Row[], workload: string): { row: Row; other: boolean } | undefined {
  const want = workload === 'enosys-fallback' ? 'unpatched' : 'patched';
  const best = (k: string) => cands.filter((r) => r.kernel === k).sort((a, b) => a.threads - b.threads || cmp(a.crypto_backend, b.crypto_backend))[0];
  const r = best(want);
  if (r) return { row: r, other: false };
  const o = best(want === 'patched' ? 'unpatched' : 'patched');
  return o && { row: o, other: true };
}

/** One entry of a capability matrix: what the text matrix shows, and the row it comes from. */
export interface MatrixCell {
  readonly hardware: string;
  readonly iface: string;
  /** the column: the workload's short name, '-dmc' for swap over dm-crypt */
  readonly column: string;
  readonly row: Row;
  /** the text of the cell ('88% plain/ENOKEY', 'leak/swap'), '*' when only the other kernel ran */
  readonly text: string;
}

/** Every entry of every hardware's capability matrix, in the text matrix's order and with its text. */
export function matrixCells(rows: readonly Row[]): MatrixCell[] {
  const ax = _axes(rows);
  const out: MatrixCell[] = [];
  for (const hw of ax.hws)
    for (const wl of ax.wls)
      for (const swap of SWAPS)
        for (const iface of ax.ifaces) {
          const p = _pick(rows.filter((r) => r.hardware === hw && r.interface === iface && r.workload === wl && r.swap === swap), wl);
          if (p) out.push({ hardware: hw, iface, column: shortWorkload(wl, swap as never), row: p.row, text: _share(p.row) + _cell(p.row) + (p.other ? '*' : '') });
        }
  return out;
}

function _matrices(rows: readonly Row[], ax: _Axes): string[] {
  const byCell = new Map<string, Row[]>();
  for (const r of rows) {
    const k = `${r.hardware}\0${r.interface}\0${r.workload}\0${r.swap}`;
    byCell.set(k, [...(byCell.get(k) ?? []), r]);
  }
  const out: string[] = [];
  let starred = false;
  for (const hw of ax.hws) {
    // a workload with several swap kinds gets a column each; only what ran on this hardware
    const cols: { wl: string; swap: string }[] = [];
    for (const wl of ax.wls)
      for (const swap of SWAPS) if (rows.some((r) => r.hardware === hw && r.workload === wl && r.swap === swap)) cols.push({ wl, swap });
    out.push('', fit(`Capabilities on ${clean(hw)} hardware`, W));
    const labels = ax.ifaces.map(shortInterface);
    const cells = cols.map(({ wl, swap }) =>
      ax.ifaces.map((iface) => {
        const p = _pick(byCell.get(`${hw}\0${iface}\0${wl}\0${swap}`) ?? [], wl);
        if (!p) return '-';
        starred ||= p.other;
        return _share(p.row) + _cell(p.row) + (p.other ? '*' : '');
      }),
    );
    const heads = cols.map(({ wl, swap }) => shortWorkload(wl, swap as never));
    // Too many columns for one 72-column block: continue in further blocks,
    // each repeating the interface column, rather than shrinking every cell.
    const labelW = Math.max(...labels.map(len));
    const widthOf = (c: number) => Math.min(Math.max(len(heads[c]), ...cells[c].map(len)), W - 2 - labelW - 1);
    let c = 0;
    while (c < cols.length) {
      const group: number[] = [];
      let used = 2 + labelW;
      while (c < cols.length && (group.length === 0 || used + 1 + widthOf(c) <= W)) {
        used += 1 + widthOf(c);
        group.push(c++);
      }
      const head = ['', ...group.map((g) => heads[g])];
      const body = labels.map((l, i) => [l, ...group.map((g) => cells[g][i])]);
      out.push(...(c > group.length ? [''] : []), ...table(head, body, head.map(() => 'l'), [0, ...group.map((_, i) => i + 1)]));
    }
  }
  const legend =
    'enc=encrypted, secret=plaintext the kernel cannot reach ' +
    '(memfd_secret), leak=it would be one of those, but the plaintext was ' +
    'found on /medium (swap file, dax image, free-ram), clear=no protection ' +
    '(the control), plain=plaintext fallback, unsup=unsupported, ' +
    'CRASH=crashed, LOSS=data loss; /Exxx=errno; -=not run. swap-dmc = swap ' +
    'over dm-crypt (--swap encrypted). qemu = a QEMU guest\'s RAM and ' +
    'virtio I/O through the design; nvdimm = a guest NVDIMM on Device DAX ' +
    'that QEMU maps; keys = more processes than the hardware has keys: the ' +
    'share that got encrypted memory, then what the rest got. Smallest thread count; enosys column ' +
    'on the kernel without the design, the others on the one with it' +
    (starred ? ' (* = only the other kernel was run).' : '.');
  out.push('', ...wrapWords(legend, 'Legend: ', '  '));
  return out;
}

function _costs(meta: RunMeta): string[] {
  if (!meta.costs) return [];
  return ['', ...wrapWords(`Cost table (${meta.cost_source}); ns per event:`, '', '  '), ...formatCostTable(meta.costs)];
}

/** The harness's own speed: simulator time per op, for tracking across commits. */
function _harness(rows: readonly Row[], ax: _Axes, meta: RunMeta): string[] {
  const ref = meta.host_ref_ns ?? [];
  const timed = _sorted(rows.filter((r) => r.sim_rounds > 0), ax).sort((a, b) => ax.wls.indexOf(a.workload) - ax.wls.indexOf(b.workload));
  const out: string[] = [
    '',
    "Harness speed (not the argument)",
    ...wrapWords(
      'Simulator time per op: the real AES-XTS work plus the model\'s own ' +
        'overhead in JavaScript: the median over fresh processes (procs) of ' +
        'each process\'s median round, with the spread between processes (cv) ' +
        'and the largest CPU share other processes took meanwhile (load). It ' +
        'tracks the harness and its crypto core across commits (compare, ' +
        '--baseline); it does not rank the designs.' +
        (ref.length > 1
          ? ` Fixed native work timed in the same processes (host ref, above) spread ${cvPct(ref).toFixed(1)}% between them: no cell can be expected steadier on this host.`
          : '') +
        (meta.host_scaling?.length && meta.host_scaling_threads
          ? ` ${meta.host_scaling_threads} threads of it side by side did ${median(meta.host_scaling).toFixed(2)}x one thread's work (scaling, above): a cell of ${meta.host_scaling_threads} CPUs can take no less than ${(1 / median(meta.host_scaling)).toFixed(2)} of its 1-CPU time per op here.`
          : ''),
      '  ',
    ),
  ];
  if (!timed.length) return [...out, '', '  No cell was timed.'];
  const multiHw = ax.hws.length > 1;
  const multiBe = new Set(rows.map((r) => r.crypto_backend)).size > 1;
  const head = ['workload', 'interface', 'k', 'thr', ...(multiHw ? ['hw'] : []), ...(multiBe ? ['crypto'] : []), 'sim/op', 'cv', 'procs', 'load'];
  const body = timed.map((r) => [
    shortWorkload(r.workload, r.swap),
    shortInterface(r.interface),
    _k(r),
    String(r.threads),
    ...(multiHw ? [fit(clean(r.hardware), 6)] : []),
    ...(multiBe ? [fit(clean(r.crypto_backend), 7)] : []),
    humanNs(r.sim_ns_per_op_median),
    Number.isFinite(r.sim_cv_pct) ? `${r.sim_cv_pct.toFixed(1)}%` : '-',
    String(r.sim_processes),
    Number.isFinite(r.other_cpu_pct) ? `${r.other_cpu_pct.toFixed(0)}%` : '-',
  ]);
  const nText = 4 + (multiHw ? 1 : 0) + (multiBe ? 1 : 0);
  const align: Align[] = head.map((_, i) => (i < nText && i !== 3 ? 'l' : 'r'));
  out.push('', ...table(head, body, align, [0, 1]));
  out.push(..._stability(timed));
  return out;
}

/** Stability warnings: cells whose time should not be trusted, and why. */
function _stability(timed: readonly Row[]): string[] {
  const flagged = (f: string) => timed.filter((r) => hasFlag(r, f));
  const name = (r: Row) => `${shortWorkload(r.workload, r.swap)} ${shortInterface(r.interface)} t${r.threads}`;
  const why: Record<string, string> = {
    noisy: `timed while other processes took more than ${NOISY_SHARE_PCT}% of the machine, after retries; left out of compare's test`,
    drift: `rounds kept getting faster or slower within a process (|Spearman rho| > ${DRIFT_RHO} over batch medians)`,
    bimodal: 'two clusters of times (bimodality coefficient > 5/9)', // BIMODAL_BC
    'unstable-counters': 'processes disagreed on exact counters: a model bug',
  };
  const out: string[] = [];
  for (const f of Object.keys(why)) {
    const cells = flagged(f);
    if (cells.length) out.push(...wrapWords(`${f} (${cells.length}): ${why[f]}: ${cells.map(name).join(', ')}`, '  ', '    '));
  }
  return out.length ? ['', 'Stability warnings:', ...out] : ['', 'Stability: no warnings.'];
}

/** Shell words of a command line, quotes kept, so it is only ever wrapped between words. */
function _shellWords(cmd: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i];
    if (quote) {
      cur += c;
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"' && i + 1 < cmd.length) cur += cmd[++i];
      continue;
    }
    if (c === ' ') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    cur += c;
    if (c === '\\' && i + 1 < cmd.length) cur += cmd[++i];
    else if (c === '"' || c === "'") quote = c;
  }
  if (inWord) words.push(cur);
  return words;
}

/**
 * 'Reproduce:' (with why no commit reproduces the run, where none does) and
 * the command, wrapped between words with ` \` so it can be
 * pasted back into a shell. A word longer than a line is split with a bare
 * `\` and continued at column 0, which a shell joins back (except inside
 * single quotes, where no line can be split without changing the word).
 */
function _reproduce(command: string, why: string | null = null): string[] {
  const out = why === null ? ['Reproduce:'] : [...wrapWords(`Reproduce (${why}):`, '', '  ')];
  const words = _shellWords(clean(command));
  let line = '  ';
  let empty = true;
  words.forEach((w, i) => {
    const room = i === words.length - 1 ? 0 : 2; // ' \' if more follows
    if (!empty && len(line) + 1 + len(w) + room > W) {
      out.push(line + ' \\');
      line = '    ';
      empty = true;
    }
    let rest = [...w];
    while (len(line) + (empty ? 0 : 1) + rest.length + room > W) {
      let n = W - len(line) - (empty ? 0 : 1) - 1;
      if (rest[n - 1] === '\\') n--; // never split an escape from what it escapes
      out.push(line + (empty ? '' : ' ') + rest.slice(0, n).join('') + '\\');
      rest = rest.slice(n);
      line = '';
      empty = true;
    }
    line += (empty ? '' : ' ') + rest.join('');
    empty = false;
  });
  if (!empty) out.push(line);
  if (!words.length) out.push('  (command not recorded)');
  return out;
}

/** What one op is, per workload of the registry. */
const WORKLOAD_OPS: Readonly<Record<string, string>> = Object.fromEntries(allWorkloads().map((w) => [w.name, w.op]));

/**
 * The report of a run: machine, the modelled cost (the argument), the
 * fallback cost, the capability matrices, the cost table, the harness's
 * speed, how to reproduce. `ops` names what one op is, per workload.
 */
/** Hardware, interfaces and workloads of rows, the known ones in their usual order first. */
const _axes = (rows: readonly Row[]): _Axes => ({
  hws: ordered(rows.map((r) => r.hardware), HARDWARE),
  ifaces: ordered(rows.map((r) => r.interface), INTERFACES),
  wls: ordered(rows.map((r) => r.workload), WORKLOADS),
});

/**
 * Why no commit reproduces a run of git_sha (run.ts gitSha: '<sha>-dirty'
 * for a tree with uncommitted changes, 'unknown' where the tree is no git
 * checkout or git is missing), or null when its commit does.
 */
export function noCommitReason(sha: string): string | null {
  if (sha.endsWith('-dirty')) return 'the tree had uncommitted changes, so no commit reproduces it exactly';
  if (sha === 'unknown') return 'no git commit was found for the run, so none reproduces it exactly';
  return null;
}

export function formatReport(meta: RunMeta, rows: readonly Row[], ops: Readonly<Record<string, string>> = WORKLOAD_OPS): string {
  const ax = _axes(rows);
  const lines = _machine(meta);
  if (rows.length) lines.push(..._modelTables(rows, ax, ops), ..._fallback(rows, ax), ..._matrices(rows, ax), ..._costs(meta), ..._harness(rows, ax, meta));
  else lines.push('', 'No cells in this run.');
  lines.push('', ..._reproduce(String(meta.reproduce ?? meta.command ?? ''), noCommitReason(String(meta.git_sha))));
  return lines.join('\n') + '\n';
}
