// replay streams: each call's result is out before the next line is read,
// a malformed line is one error after everything before it, and no input
// (a prototype key as a flag name, a directory, a missing file) makes it end
// otherwise.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Replayer, TraceError, replayTrace } from '../../kernel/replay.js';
import { mulberry32 } from '../kernel/trace-gen.js';

const CLI = fileURLToPath(new URL('../../bench/cli.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'memcrypt-replay-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const mmap = (addr: number, pages: number, prot = 'rw-') =>
  JSON.stringify({ op: 'mmap', addr: '0x' + addr.toString(16), len: pages * 4096, prot, flags: ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED_NOREPLACE'] });
const replay = (file: string, input?: string) => spawnSync(process.execPath, [CLI, 'replay', file], { encoding: 'utf8', input, maxBuffer: 1 << 26 });

describe('replay, line by line', () => {
  it('emits each result before it reads the next line, and a bad line after all before it', () => {
    const out: string[] = [];
    const r = new Replayer((l) => out.push(l));
    r.line(mmap(0x200000000, 2));
    assert.deepEqual(out, ['{"ret":"0x200000000","errno":null}']);
    r.line('{"op":"maps"}');
    assert.equal(out.length, 3);
    assert.throws(() => r.line('{"op":"mmap","addr":0,"len":4096,"prot":"rw-","flags":["toString"]}'), (e: unknown) => e instanceof TraceError && e.message === 'line 3: unknown flag "toString"');
    r.close();
    assert.equal(out.length, 3, 'nothing emitted for the bad line');
  });

  it('the CLI prints every result before the bad line, then one error line naming it, exit 2', () => {
    const f = join(dir, 'bad.jsonl');
    writeFileSync(f, [mmap(0x200000000, 1), mmap(0x200002000, 1), '{"op":"maps"}', '{"op":"munmap","addr":"0x200000000"}', mmap(0x300000000, 1)].join('\n') + '\n');
    const r = replay(f);
    assert.equal(r.status, 2);
    assert.deepEqual(r.stdout.trimEnd().split('\n'), [
      '{"ret":"0x200000000","errno":null}',
      '{"ret":"0x200002000","errno":null}',
      '200000000-200001000 rw-p 00000000 00:00 0',
      '200002000-200003000 rw-p 00000000 00:00 0',
      '{"maps":2}',
    ]);
    assert.equal(r.stderr, `memcrypt-bench: ${f}: line 4: 'len' must be an integer or a "0x..." hex string, got undefined\n`);
  });

  it('a directory, a missing file: one line naming it, exit 2', () => {
    for (const [file, code] of [[dir, 'EISDIR'], [join(dir, 'none.jsonl'), 'ENOENT']]) {
      const r = replay(file);
      assert.equal(r.status, 2);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `memcrypt-bench: ${file}: ${code}\n`);
    }
  });

  it('a long trace with many maps dumps streams through, the same as replayTrace gives', () => {
    const lines: string[] = [];
    // 3000 one-page VMAs that cannot merge (every other page), a maps dump every 150 calls
    for (let i = 0; i < 3000; i++) {
      lines.push(mmap(0x200000000 + i * 2 * 4096, 1, i % 2 === 0 ? 'rw-' : 'r--'));
      if (i % 150 === 149) lines.push('{"op":"maps"}');
    }
    const f = join(dir, 'long.jsonl');
    writeFileSync(f, lines.join('\n') + '\n');
    const r = replay(f);
    assert.equal(r.status, 0, r.stderr);
    const want = replayTrace(lines);
    assert.equal(r.stdout, want.join('\n') + '\n');
    assert.equal(want.filter((l) => l.startsWith('{"maps":')).length, 20);
    assert.ok(want.includes('{"maps":3000}'));
  });

  it('--pku: exactly PROT_EXEC takes the execute-only key, so it no longer merges with --x memory mapped otherwise', () => {
    // 0x100000004: --x as well, but not exactly PROT_EXEC (mmap ignores bit 32 for the flags)
    const trace = [mmap(0x200000000, 2, '--x'), mmap(0x200002000, 2, '0x100000004'), '{"op":"maps"}'].join('\n') + '\n';
    const maps = (args: string[]) => {
      const r = spawnSync(process.execPath, [CLI, 'replay', '-', ...args], { encoding: 'utf8', input: trace });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.split('\n').filter((l) => l.startsWith('2000'));
    };
    assert.deepEqual(maps([]), ['200000000-200004000 --xp 00000000 00:00 0']);
    assert.deepEqual(maps(['--pku']), ['200000000-200002000 --xp 00000000 00:00 0', '200002000-200004000 --xp 00000000 00:00 0']);
    assert.deepEqual(maps(['--host', '--no-pku']), ['200000000-200004000 --xp 00000000 00:00 0']);
  });

  it('reads stdin with -', () => {
    const r = replay('-', mmap(0x200000000, 1) + '\n{"op":"maps"}\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '{"ret":"0x200000000","errno":null}\n200000000-200001000 rw-p 00000000 00:00 0\n{"maps":1}\n');
  });
});

describe('replay, hostile input', () => {
  it('20000 random lines: each is run or is one TraceError naming its line, nothing else is thrown', () => {
    const rnd = mulberry32(7); // seeded: a failing line can be replayed
    const pick = <T,>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
    const values: readonly unknown[] = [
      0, 1, -1, 4096, -4096, 0.5, 1e300, -1e300, 2 ** 53, 2 ** 64, Number.MAX_SAFE_INTEGER, '0x200000000', '0x', '-0x1', '0xffffffffffffffff',
      '0x10000000000000000', '-0x8000000000000000', '-0x8000000000000001', '18446744073709551615', '18446744073709551616', '-1', '',
      'rw-', 'rwx', 'r', null, true, [], {}, ['MAP_PRIVATE', 'MAP_ANONYMOUS'], ['toString'], ['__proto__'], ['MAP_FIXED', 3],
      'MADV_DONTNEED', 'constructor', 'hasOwnProperty', 'NaN', 'Infinity', '1e3', ' 1', '0x1 ',
    ];
    const keys = ['op', 'addr', 'len', 'prot', 'flags', 'advice', 'fd', 'offset', '__proto__', 'constructor'];
    const ops = ['mmap', 'munmap', 'mprotect', 'madvise', 'maps', 'toString', '', 42, null];
    let ran = 0, refused = 0;
    const r = new Replayer(() => {});
    try {
      for (let n = 1; n <= 20000; n++) {
        let text: string;
        const v = rnd();
        if (v < 0.05) text = pick(['', ' ', 'null', '[]', '"x"', '{', '{"op":', '1', '{}', 'true', '\u0000']);
        else {
          const o: Record<string, unknown> = { op: pick(ops) };
          for (const k of keys) if (k !== 'op' && rnd() < 0.7) o[k] = pick(values);
          text = JSON.stringify(o);
        }
        try {
          r.line(text);
          ran++;
        } catch (e) {
          if (!(e instanceof TraceError)) assert.fail(`line ${n} ${text}: threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
          assert.equal(e.line, n);
          assert.match(e.message, new RegExp(`^line ${n}: [^\\n]+$`));
          refused++;
        }
      }
    } finally {
      r.close();
    }
    assert.ok(ran > 1000 && refused > 1000, `both kinds seen: ${ran} run, ${refused} refused`);
  });
});
