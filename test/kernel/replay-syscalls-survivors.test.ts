// Survivors of the quick mutation run in kernel/replay.ts (the JSON-lines trace
// replayer) and kernel/syscalls.ts (the syscall table): what the replayer prints
// for register values at the edge of 64 bits, prot/flags/advice in the forms the
// README allows, blank and non-object lines, the host settings (CAP_SYS_RAWIO,
// RLIMIT_MEMLOCK/AS/DATA), and which line it refuses with which message; and what
// the file calls (openat, close, ioctl, ftruncate), keyctl and move_pages return
// for a missing fd, a bigint register, a device that refuses, an option keyctl
// does not have, a user pointer the model cannot read.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { E } from '../../kernel/errno.js';
import { OpenFile, type FileOps, type Kernel, type Task } from '../../kernel/kernel.js';
import { KVM_PATH } from '../../kernel/kvm.js';
import { Replayer, TraceError, replayTrace, type ReplayHost } from '../../kernel/replay.js';
import { AT_FDCWD, KEYCTL_INVALIDATE, NR, type SysArg } from '../../kernel/syscalls.js';
import { BASE, PAGE, boot } from './util.js';

// ---- replay ----------------------------------------------------------------

const ANON_NOREPLACE = ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED_NOREPLACE'];
const mmap = (over: Record<string, unknown> = {}): string =>
  JSON.stringify({ op: 'mmap', addr: '0x200000000', len: PAGE, prot: 'rw-', flags: ANON_NOREPLACE, ...over });
const munmap = (addr: unknown, len: unknown = PAGE): string => JSON.stringify({ op: 'munmap', addr, len });
const madvise = (advice: unknown, addr = '0x200000000'): string => JSON.stringify({ op: 'madvise', addr, len: PAGE, advice });
const MAPS = '{"op":"maps"}';
const mapped = (addr: string): string => `{"ret":"${addr}","errno":null}`;
const failed = (errno: string): string => `{"ret":-1,"errno":"${errno}"}`;
const OK0 = '{"ret":0,"errno":null}';

/** The trace is refused with exactly this message (TraceError names the line). */
function refused(lines: string[], message: string, host?: ReplayHost): void {
  assert.throws(
    () => replayTrace(lines, host),
    (e: unknown) => {
      assert.ok(e instanceof TraceError, `not a TraceError: ${String(e)}`);
      assert.equal(e.message, message);
      return true;
    },
  );
}

describe('replay: register values', () => {
  it('a string register holds 64 bits: "-0x8000000000000000" and "18446744073709551615" run; 2^64 and -(2^63)-1 are refused as not fitting', () => {
    // -2^63 is the register 0x8000000000000000, past TASK_SIZE: munmap's EINVAL, like the unsigned spelling
    assert.deepEqual(replayTrace([munmap('-0x8000000000000000'), munmap('0x8000000000000000'), munmap('18446744073709551615'), munmap('-9223372036854775808')]), [
      failed('EINVAL'),
      failed('EINVAL'),
      failed('EINVAL'),
      failed('EINVAL'),
    ]);
    refused([munmap('0x10000000000000000')], "line 1: 'addr': 0x10000000000000000 does not fit in 64 bits");
    refused([munmap('18446744073709551616')], "line 1: 'addr': 18446744073709551616 does not fit in 64 bits");
    refused([munmap('0x200000000', '0x1ffffffffffffffff')], "line 1: 'len': 0x1ffffffffffffffff does not fit in 64 bits");
    refused([munmap('-0x8000000000000001')], "line 1: 'addr': -0x8000000000000001 does not fit in 64 bits");
    refused([munmap('-9223372036854775809')], "line 1: 'addr': -9223372036854775809 does not fit in 64 bits");
  });

  it('a register given as a JSON list is refused, even a list whose only element is a number', () => {
    refused([munmap(['4096'])], `line 1: 'addr' must be an integer or a "0x..." hex string, got ["4096"]`);
    refused([munmap('0x200000000', [4096])], `line 1: 'len' must be an integer or a "0x..." hex string, got [4096]`);
  });

  it("mmap reads fd from the line: a malformed fd is refused, a fd that is not open is EBADF for a file mapping", () => {
    refused([mmap({ fd: 'x' })], `line 1: 'fd' must be an integer or a "0x..." hex string, got "x"`);
    assert.deepEqual(replayTrace([mmap({ flags: ['MAP_PRIVATE', 'MAP_FIXED'], fd: 5 }), mmap({ fd: 5 })]), [failed('EBADF'), mapped('0x200000000')]);
  });
});

describe('replay: prot, flags and advice', () => {
  it('prot is exactly three letters from r/w/x or -: "r-x" maps r-xp; "rw-p", "-rw-" and a list are refused', () => {
    assert.deepEqual(replayTrace([mmap({ prot: 'r-x' }), MAPS]), [mapped('0x200000000'), '200000000-200001000 r-xp 00000000 00:00 0', '{"maps":1}']);
    refused([mmap({ prot: 'rw-p' })], `line 1: 'prot' must be an integer or a "0x..." hex string, got "rw-p"`);
    refused([mmap({ prot: '-rw-' })], `line 1: 'prot' must be an integer or a "0x..." hex string, got "-rw-"`);
    refused([mmap({ prot: ['rw-'] })], `line 1: 'prot' must be like "rw-" or a number, got ["rw-"]`);
  });

  it('a prot that is neither a string nor a number is refused with the prot message', () => {
    refused([mmap({ prot: null })], `line 1: 'prot' must be like "rw-" or a number, got null`);
    refused([mmap({ prot: undefined })], `line 1: 'prot' must be like "rw-" or a number, got undefined`);
    refused([JSON.stringify({ op: 'mprotect', addr: '0x200000000', len: PAGE, prot: true })], `line 1: 'prot' must be like "rw-" or a number, got true`);
  });

  it('flags may be a raw JSON number: 34 is MAP_PRIVATE | MAP_ANONYMOUS', () => {
    assert.deepEqual(replayTrace([mmap({ flags: 34 }), MAPS]), [mapped('0x200000000'), '200000000-200001000 rw-p 00000000 00:00 0', '{"maps":1}']);
    // with MAP_FIXED (0x10) as a number: the same place again replaces the mapping
    assert.deepEqual(replayTrace([mmap({ flags: 0x32 }), mmap({ flags: 0x32, prot: 'r--' }), MAPS]), [
      mapped('0x200000000'),
      mapped('0x200000000'),
      '200000000-200001000 r--p 00000000 00:00 0',
      '{"maps":1}',
    ]);
  });

  it('flags missing, null or an object are refused with the flags message; a name nested in a list is an unknown flag', () => {
    for (const flags of [undefined, null, {}]) refused([mmap({ flags })], "line 1: 'flags' must be a list of MAP_* names or a number");
    refused([mmap({ flags: [['MAP_PRIVATE'], 'MAP_ANONYMOUS'] })], 'line 1: unknown flag ["MAP_PRIVATE"]');
  });

  it('advice: a name, a number or a decimal string runs; an unknown name, a list or a string not starting with a digit is "unknown advice"', () => {
    // MADV_DONTNEED (4) on no mapping: ENOMEM, however it is written
    assert.deepEqual(replayTrace([madvise('MADV_DONTNEED'), madvise(4), madvise('4'), madvise('-1')]), [failed('ENOMEM'), failed('ENOMEM'), failed('ENOMEM'), failed('EINVAL')]);
    refused([madvise('MADV_BOGUS')], 'line 1: unknown advice "MADV_BOGUS"');
    refused([madvise(['MADV_DONTNEED'])], 'line 1: unknown advice ["MADV_DONTNEED"]');
    refused([madvise([4])], 'line 1: unknown advice [4]');
    refused([madvise('x4')], 'line 1: unknown advice "x4"');
    refused([madvise(null)], 'line 1: unknown advice null');
  });
});

describe('replay: lines that are not calls', () => {
  it('blank and whitespace-only lines are skipped but counted: the error names the right line', () => {
    assert.deepEqual(replayTrace(['', '   ', mmap(), ' \t ', MAPS]), [mapped('0x200000000'), '200000000-200001000 rw-p 00000000 00:00 0', '{"maps":1}']);
    const out: string[] = [];
    const r = new Replayer((l) => out.push(l));
    try {
      r.line('');
      r.line(' \t');
      assert.throws(() => r.line('{'), (e: unknown) => e instanceof TraceError && e.line === 3 && e.message === 'line 3: not valid JSON');
    } finally {
      r.close();
    }
    assert.deepEqual(out, []);
  });

  it('text that is not JSON is "not valid JSON"; JSON that is not an object is "expected a JSON object"', () => {
    for (const text of ['{', 'maps', '{"op":"maps"} trailing']) refused([text], 'line 1: not valid JSON');
    for (const text of ['1', '"mmap"', 'true', 'null', '[]', '[{"op":"maps"}]']) refused([text], 'line 1: expected a JSON object');
  });

  it('an unknown op is refused, after the output of every line before it', () => {
    const out: string[] = [];
    const r = new Replayer((l) => out.push(l));
    try {
      r.line(mmap());
      assert.throws(
        () => r.line('{"op":"frobnicate"}'),
        (e: unknown) => e instanceof TraceError && e.message === 'line 2: unknown op "frobnicate" (expected mmap, munmap, mprotect, madvise or maps)',
      );
      assert.throws(() => r.line('{"addr":0}'), (e: unknown) => e instanceof TraceError && e.message === 'line 3: unknown op undefined (expected mmap, munmap, mprotect, madvise or maps)');
    } finally {
      r.close();
    }
    assert.deepEqual(out, [mapped('0x200000000')]);
  });
});

describe('replay: the host settings', () => {
  const below = mmap({ addr: '0x1000', flags: ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED'] });

  it('rawio: with CAP_SYS_RAWIO MAP_FIXED below vm.mmap_min_addr maps; without it is EPERM (cap_mmap_addr)', () => {
    assert.deepEqual(replayTrace([below, MAPS], { mmapMinAddr: 0x10000, rawio: true }), [mapped('0x1000'), '00001000-00002000 rw-p 00000000 00:00 0', '{"maps":1}']);
    assert.deepEqual(replayTrace([below], { mmapMinAddr: 0x10000, rawio: false }), [failed('EPERM')]);
    assert.deepEqual(replayTrace([below], { mmapMinAddr: 0x10000 }), [failed('EPERM')]);
  });

  it('the process has CAP_SYS_ADMIN, as root has: MADV_HWPOISON is not EPERM but looks the page up (EFAULT on no mapping, 0 on one)', () => {
    assert.deepEqual(replayTrace([madvise('MADV_HWPOISON'), mmap(), madvise('MADV_HWPOISON')]), [failed('EFAULT'), mapped('0x200000000'), OK0]);
    assert.deepEqual(replayTrace([madvise('MADV_SOFT_OFFLINE')], { rawio: true }), [failed('EFAULT')]);
  });

  it('RLIMIT_MEMLOCK is 8 MiB unless told: MAP_LOCKED of one page and of 8 MiB maps, of 8 MiB + 1 page is EAGAIN', () => {
    const locked = (len: number, addr = '0x200000000') => mmap({ addr, len, flags: ['MAP_PRIVATE', 'MAP_ANONYMOUS', 'MAP_FIXED', 'MAP_LOCKED'] });
    assert.deepEqual(replayTrace([locked(PAGE)]), [mapped('0x200000000')]);
    assert.deepEqual(replayTrace([locked(8 << 20)]), [mapped('0x200000000')]);
    assert.deepEqual(replayTrace([locked((8 << 20) + PAGE)]), [failed('EAGAIN')]);
    // told 2 pages: the second page fits, a third does not
    assert.deepEqual(replayTrace([locked(PAGE), locked(PAGE, '0x300000000'), locked(PAGE, '0x400000000')], { memlock: 2 * PAGE }), [
      mapped('0x200000000'),
      mapped('0x300000000'),
      failed('EAGAIN'),
    ]);
  });

  it('as: RLIMIT_AS counts every mapping; unless told there is none', () => {
    const trace = [mmap({ len: 3 * PAGE }), mmap({ addr: '0x300000000', prot: 'r--' })];
    assert.deepEqual(replayTrace(trace, { as: 3 * PAGE }), [mapped('0x200000000'), failed('ENOMEM')]);
    assert.deepEqual(replayTrace(trace, { as: 4 * PAGE }), [mapped('0x200000000'), mapped('0x300000000')]);
    assert.deepEqual(replayTrace(trace), [mapped('0x200000000'), mapped('0x300000000')]);
  });

  it('data: RLIMIT_DATA counts private writable mappings only; unless told there is none', () => {
    const trace = [mmap({ len: 3 * PAGE }), mmap({ addr: '0x300000000', prot: 'r--' }), mmap({ addr: '0x400000000' })];
    assert.deepEqual(replayTrace(trace, { data: 3 * PAGE }), [mapped('0x200000000'), mapped('0x300000000'), failed('ENOMEM')]);
    assert.deepEqual(replayTrace(trace), [mapped('0x200000000'), mapped('0x300000000'), mapped('0x400000000')]);
  });
});

// The same lines on this machine's kernel (test/kernel/replay_linux.c, as replay-linux.test.ts builds it)
const SRC = fileURLToPath(new URL('../../../test/kernel/replay_linux.c', import.meta.url));
function linuxSkip(): string | false {
  if (process.platform !== 'linux') return `replay_linux.c runs on Linux only (this is ${process.platform})`;
  const r = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  return r.error ? `gcc not found (${r.error.message})` : false;
}

describe('replay: these lines on real Linux', { skip: linuxSkip() }, () => {
  let dir = '';
  let bin = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'replay-surv-'));
    bin = join(dir, 'replay_linux');
    const r = spawnSync('gcc', ['-O1', '-Wall', '-Werror', '-std=gnu11', '-o', bin, SRC], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });
  const linux = (lines: string[]) => spawnSync(bin, { input: lines.map((l) => l + '\n').join(''), encoding: 'utf8', timeout: 30_000 });

  it('raw-number flags and advice, -2^63, blank lines: the model prints what Linux prints', () => {
    const trace = ['', mmap({ flags: 34 }), '  ', munmap('-0x8000000000000000'), madvise(4, '0x200001000'), madvise('4'), mmap({ addr: '0x200002000', prot: 'r-x', flags: 0x32 }), MAPS];
    const r = linux(trace);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(replayTrace(trace), r.stdout.trimEnd().split('\n'));
  });

  it('the lines the model refuses, Linux\'s replayer refuses too', () => {
    for (const line of [munmap('0x10000000000000000'), munmap('-0x8000000000000001'), mmap({ prot: 'rw-p' }), madvise('MADV_BOGUS'), '1', '{"op":"frobnicate"}']) {
      assert.throws(() => replayTrace([line]), TraceError, line);
      const r = linux([line]);
      assert.notEqual(r.status, 0, `replay_linux accepted ${line}`);
      assert.match(r.stderr, /replay_linux: line 1/);
    }
  });
});

// ---- syscalls --------------------------------------------------------------

/** A file whose ops record what reaches them. */
function recordingFile(k: Kernel, t: Task, withFtruncate = true): { fd: number; ioctls: SysArg[][]; truncates: number[] } {
  const ioctls: SysArg[][] = [];
  const truncates: number[] = [];
  const ops: FileOps = {
    mmap: () => 0,
    fault: () => -E.EFAULT,
    ioctl(_k, _f, cmd, arg) {
      ioctls.push([cmd, arg]);
      return 0;
    },
    ...(withFtruncate && {
      ftruncate(_k: Kernel, _f: OpenFile, len: number) {
        truncates.push(len);
        return 0;
      },
    }),
    release() {},
  };
  return { fd: t.installFd(new OpenFile(k, '/rec', '00:2a', k.newIno(), ops)), ioctls, truncates };
}

describe('syscalls: openat', () => {
  it('openat hands the open flags to the device, 0 when the call gives none', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const seen: number[] = [];
    k.registerDevice({
      path: '/dev/rec',
      open(kk, _t, flags) {
        seen.push(flags);
        return new OpenFile(kk, '/dev/rec', '0a:01', kk.newIno(), { mmap: () => 0, fault: () => -E.EFAULT, release() {} });
      },
    });
    assert.equal(k.syscall(t, NR.openat, AT_FDCWD, '/dev/rec', 2), 3);
    assert.equal(k.syscall(t, NR.openat, AT_FDCWD, '/dev/rec'), 4);
    assert.equal(k.syscall(t, NR.openat, AT_FDCWD, '/dev/rec', 2n), 5);
    assert.deepEqual(seen, [2, 0, 2]);
    done();
  });

  it("a device's refusal (-errno from its open) is openat's answer, and no fd is used up", () => {
    const { k, done } = boot();
    const t = k.spawn();
    k.registerDevice({ path: '/dev/no', open: () => -E.EACCES });
    assert.equal(k.syscall(t, NR.openat, AT_FDCWD, '/dev/no', 2), -E.EACCES);
    assert.equal(t.files.size, 0);
    assert.equal(k.syscall(t, NR.openat, AT_FDCWD, KVM_PATH, 2), 3, 'the next open gets the lowest fd');
    done();
  });
});

describe('syscalls: close, ioctl, ftruncate', () => {
  it('close: an fd that is not open is EBADF, so is the second close of one and a close with no fd', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = k.syscall(t, NR.openat, AT_FDCWD, KVM_PATH, 2);
    assert.equal(k.syscall(t, NR.close, 99), -E.EBADF);
    assert.equal(k.syscall(t, NR.close, fd), 0);
    assert.equal(k.syscall(t, NR.close, fd), -E.EBADF);
    assert.equal(k.syscall(t, NR.close), -E.EBADF);
    done();
  });

  it('a bigint register is the fd it holds: close(BigInt(fd)) closes it', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const fd = k.syscall(t, NR.openat, AT_FDCWD, KVM_PATH, 2);
    assert.equal(k.syscall(t, NR.close, BigInt(fd)), 0);
    assert.equal(t.files.has(fd), false);
    assert.equal(k.syscall(t, NR.close, fd), -E.EBADF);
    done();
  });

  it('ioctl: EBADF for an fd that is not open; a bigint argument reaches the driver as its signed 64-bit value, a struct as it is', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const { fd, ioctls } = recordingFile(k, t);
    assert.equal(k.syscall(t, NR.ioctl, 99, 1, 0), -E.EBADF);
    assert.equal(k.syscall(t, NR.ioctl, fd, 7, 5n), 0);
    assert.equal(k.syscall(t, NR.ioctl, fd, 7, (1n << 64n) - 1n), 0);
    const struct = [1, 2, 3];
    assert.equal(k.syscall(t, NR.ioctl, fd, 7, struct), 0);
    assert.equal(k.syscall(t, NR.ioctl, fd, 7), 0);
    assert.deepEqual(ioctls, [[7, 5], [7, -1], [7, struct], [7, 0]]);
    assert.equal(ioctls[2]![1], struct);
    done();
  });

  it('ftruncate: EBADF for an fd that is not open; length 0 is a length like any other; a file without ftruncate (a character device) is EINVAL', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const { fd, truncates } = recordingFile(k, t);
    assert.equal(k.syscall(t, NR.ftruncate, 99, PAGE), -E.EBADF);
    assert.equal(k.syscall(t, NR.ftruncate, fd, 0), 0);
    assert.equal(k.syscall(t, NR.ftruncate, fd, PAGE), 0);
    assert.equal(k.syscall(t, NR.ftruncate, fd, -1), -E.EINVAL);
    assert.deepEqual(truncates, [0, PAGE]);
    // do_ftruncate: !S_ISREG is EINVAL
    const kvm = k.syscall(t, NR.openat, AT_FDCWD, KVM_PATH, 2);
    assert.equal(k.syscall(t, NR.ftruncate, kvm, PAGE), -E.EINVAL);
    const bare = recordingFile(k, t, false);
    assert.equal(k.syscall(t, NR.ftruncate, bare.fd, PAGE), -E.EINVAL);
    done();
  });
});

describe('syscalls: ftruncate checks the length before the fd', () => {
  it('a negative length is EINVAL even on an fd that is not open (fs/open.c do_sys_ftruncate: length < 0 before fdget)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.ftruncate, 99, -1), -E.EINVAL);
    assert.equal(k.syscall(t, NR.ftruncate, 99, -1n), -E.EINVAL, 'a register of all ones is the loff_t -1');
    assert.equal(k.syscall(t, NR.ftruncate, 99, 0), -E.EBADF);
    done();
  });
});

describe('syscalls: keyctl and move_pages', () => {
  it('keyctl with an option Linux does not have is EOPNOTSUPP (security/keys/keyctl.c: the default of its switch) and leaves the key alone', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const serial = k.syscall(t, NR.add_key, 'mktme', 'k', 'type=cpu algorithm=aes-xts-128');
    assert.ok(serial > 0);
    // 6.18's options are 0..32 (include/uapi/linux/keyctl.h): -1, 999 and 1000 are none of them
    for (const op of [-1, 999, 1000n]) assert.equal(k.syscall(t, NR.keyctl, op, serial), -E.EOPNOTSUPP, `option ${op}`);
    assert.equal(k.keys.keyidsInUse, 1);
    assert.equal(k.syscall(t, NR.keyctl, KEYCTL_INVALIDATE, serial), 0, 'still there to invalidate');
    done();
  });

  it('keyctl takes its option and the serial as C ints: only the low 32 bits of each register count (security/keys/keyctl.c)', () => {
    const { k, done } = boot();
    const t = k.spawn();
    const serial = k.syscall(t, NR.add_key, 'mktme', 'k', 'type=cpu algorithm=aes-xts-128');
    assert.ok(serial > 0);
    // an option with bits above 31 set is the option of its low 32 bits; so is the serial
    assert.equal(k.syscall(t, NR.keyctl, BigInt(KEYCTL_INVALIDATE) + (1n << 32n), BigInt(serial) + (5n << 40n)), 0);
    assert.equal(k.keys.keyidsInUse, 0, 'the key went');
    // the serial as a negative int: the register's low 32 bits are 0xffffffff, no such key
    assert.equal(k.syscall(t, NR.keyctl, KEYCTL_INVALIDATE, 0xffffffffn), -E.ENOKEY);
    done();
  });

  it('move_pages whose pages or status is not an array (a pointer the model cannot read) is EFAULT, before nodes are checked', () => {
    const { k, done } = boot();
    const t = k.spawn();
    assert.equal(k.syscall(t, NR.mmap, BASE, PAGE, 3, 0x32, -1, 0), BASE);
    assert.equal(k.syscall(t, NR.move_pages, 0, 0, [1], []), -E.EFAULT);
    assert.equal(k.syscall(t, NR.move_pages, 0, 0, [7], []), -E.EFAULT);
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [1], 0), -E.EFAULT);
    assert.equal(k.syscall(t, NR.move_pages, 0, 'pages', [1], 'status'), -E.EFAULT);
    // the same call with arrays: the page is not resident yet, status says so
    const status: number[] = [];
    assert.equal(k.syscall(t, NR.move_pages, 0, [BASE], [1], status), 0);
    assert.deepEqual(status, [-E.ENOENT]);
    done();
  });
});
