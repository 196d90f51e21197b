// Replay a JSON-lines trace of mmap/munmap/mprotect/madvise calls in one
// fresh process, printing one result line per call ({"ret":..,"errno":..})
// and, for {"op":"maps"}, the VMAs as /proc/self/maps lines then {"maps":N}.
// The same format is produced by test/kernel/replay_linux.c on real Linux.
// The model answers as Linux 6.18 on x86-64 (4-level paging) does.
import { Machine } from '../hardware/machine.js';
import { errnoName } from './errno.js';
import { Kernel, NO_FEATURES } from './kernel.js';
import { defaultOvercommit, type Overcommit } from './limits.js';
import { NR } from './syscalls.js';
import { CAP_SYS_ADMIN, CAP_SYS_RAWIO, MADV_NAMES, MAP_FLAG_NAMES } from './uapi.js';

/** A malformed trace line: names the line and what is wrong with it. */
export class TraceError extends Error {
  constructor(
    readonly line: number,
    msg: string,
  ) {
    super(`line ${line}: ${msg}`);
  }
}

type Json = Record<string, unknown>;

/**
 * The settings of the machine a trace is compared with, where Linux's answer
 * depends on them: vm.mmap_min_addr, and whether the process has
 * CAP_SYS_RAWIO (root has; it may map below mmap_min_addr).
 */
export interface ReplayHost {
  readonly mmapMinAddr?: number;
  readonly rawio?: boolean;
  /** the CPU has 1 GiB pages (pdpe1gb): MAP_HUGE_1GB names a known size */
  readonly gigantic?: boolean;
  /** the OS enabled protection keys (ospke): PROT_EXEC-only memory gets the execute-only key */
  readonly pku?: boolean;
  /** overcommit settings; default Linux's for REPLAY_RAM_PAGES of RAM and no swap */
  readonly overcommit?: Overcommit;
  /** RLIMIT_MEMLOCK in bytes (the process has no CAP_IPC_LOCK); default 8 MiB */
  readonly memlock?: number;
  /** RLIMIT_AS and RLIMIT_DATA in bytes; default unlimited (Infinity) */
  readonly as?: number;
  readonly data?: number;
}

/** RAM the replayed process's machine has, unless told (4 GiB): it only matters to overcommit. */
export const REPLAY_RAM_PAGES = 1 << 20;

const U64_LIMIT = 1n << 64n;
const I64_MIN_MAG = 1n << 63n;

/**
 * A register value: a JSON integer within +-2^53 (beyond that JSON numbers
 * are not exact), or a string "0x..." / "-0x..." / decimal, within 64 bits
 * (unsigned, or down to -2^63). Negative values are two's complement, so
 * "-1" and "0xffffffffffffffff" are the same register.
 */
function reg(o: Json, key: string, line: number): bigint {
  const v = o[key];
  if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) return BigInt.asUintN(64, BigInt(v));
    throw new TraceError(line, `'${key}' must be an integer within +-2^53 or a string, got ${JSON.stringify(v)} (write larger values as "0x..." strings)`);
  }
  if (typeof v === 'string' && /^-?(0[xX][0-9a-fA-F]+|[0-9]+)$/.test(v)) {
    const neg = v.startsWith('-');
    const mag = BigInt(neg ? v.slice(1) : v);
    if (neg ? mag > I64_MIN_MAG : mag >= U64_LIMIT) throw new TraceError(line, `'${key}': ${v} does not fit in 64 bits`);
    return BigInt.asUintN(64, neg ? -mag : mag);
  }
  throw new TraceError(line, `'${key}' must be an integer or a "0x..." hex string, got ${JSON.stringify(v)}`);
}

/** An optional register (mmap's fd and offset). */
const opt = (o: Json, key: string, dflt: bigint, line: number): bigint => (o[key] === undefined ? dflt : reg(o, key, line));

function prot(o: Json, line: number): bigint {
  const v = o.prot;
  if (typeof v === 'string' && /^[r-][w-][x-]$/.test(v))
    return BigInt((v[0] === 'r' ? 1 : 0) | (v[1] === 'w' ? 2 : 0) | (v[2] === 'x' ? 4 : 0));
  if (typeof v === 'number' || typeof v === 'string') return reg(o, 'prot', line);
  throw new TraceError(line, `'prot' must be like "rw-" or a number, got ${JSON.stringify(v)}`);
}

function flags(o: Json, line: number): bigint {
  const v = o.flags;
  if (!Array.isArray(v)) {
    if (typeof v === 'number' || typeof v === 'string') return reg(o, 'flags', line);
    throw new TraceError(line, `'flags' must be a list of MAP_* names or a number`);
  }
  let f = 0n;
  for (const name of v) {
    const bit = typeof name === 'string' && Object.hasOwn(MAP_FLAG_NAMES, name) ? MAP_FLAG_NAMES[name] : undefined;
    if (bit === undefined) throw new TraceError(line, `unknown flag ${JSON.stringify(name)}`);
    f |= BigInt(bit);
  }
  return f;
}

function advice(o: Json, line: number): bigint {
  const v = o.advice;
  if (typeof v === 'string' && Object.hasOwn(MADV_NAMES, v)) return BigInt(MADV_NAMES[v]);
  if (typeof v === 'number' || (typeof v === 'string' && /^-?[0-9]/.test(v))) return reg(o, 'advice', line);
  throw new TraceError(line, `unknown advice ${JSON.stringify(v)}`);
}

/** errno's name as replay_linux.c prints it: the name, or E<n> for a number without one here. */
const nameOf = (ret: number): string | null => {
  if (ret >= 0) return null;
  try {
    return errnoName(ret);
  } catch {
    return `E${-ret}`;
  }
};

const result = (ret: number, asAddr: boolean): string =>
  JSON.stringify({ ret: ret < 0 ? -1 : asAddr ? '0x' + ret.toString(16) : ret, errno: nameOf(ret) });

/**
 * A trace run line by line: each call's result goes to emit as soon as the
 * call is made, so a malformed line (TraceError) comes after everything
 * before it, and no output is held in memory.
 */
export class Replayer {
  private readonly k: Kernel;
  private readonly task: ReturnType<Kernel['spawn']>;
  private n = 0;

  constructor(
    private readonly emit: (line: string) => void,
    host: ReplayHost = {},
  ) {
    const machine = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [256] }, nrCpus: 1 });
    this.k = new Kernel(machine, {
      features: NO_FEATURES,
      pgtableSlots: 64,
      mmapMinAddr: host.mmapMinAddr,
      gigantic: host.gigantic,
      pku: host.pku,
      overcommit: host.overcommit ?? defaultOvercommit(REPLAY_RAM_PAGES, 0),
    });
    this.task = this.k.spawn({
      caps: host.rawio === true ? [CAP_SYS_ADMIN, CAP_SYS_RAWIO] : [CAP_SYS_ADMIN],
      rlimits: {
        ...(host.memlock !== undefined && { memlock: host.memlock }),
        ...(host.as !== undefined && { as: host.as }),
        ...(host.data !== undefined && { data: host.data }),
      },
    });
  }

  /** The next line of the trace. Throws TraceError when it is malformed. */
  line(text: string): void {
    const line = ++this.n;
    if (text.trim() === '') return;
    let o: Json;
    try {
      o = JSON.parse(text) as Json;
    } catch {
      throw new TraceError(line, 'not valid JSON');
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new TraceError(line, 'expected a JSON object');
    const { k, task, emit } = this;
    switch (o.op) {
      case 'mmap':
        emit(result(k.syscall(task, NR.mmap, reg(o, 'addr', line), reg(o, 'len', line), prot(o, line), flags(o, line), opt(o, 'fd', -1n, line), opt(o, 'offset', 0n, line)), true));
        break;
      case 'munmap':
        emit(result(k.syscall(task, NR.munmap, reg(o, 'addr', line), reg(o, 'len', line)), false));
        break;
      case 'mprotect':
        emit(result(k.syscall(task, NR.mprotect, reg(o, 'addr', line), reg(o, 'len', line), prot(o, line)), false));
        break;
      case 'madvise':
        emit(result(k.syscall(task, NR.madvise, reg(o, 'addr', line), reg(o, 'len', line), advice(o, line)), false));
        break;
      case 'maps': {
        let n = 0;
        for (const l of task.mm.vmas.maps()) {
          emit(l.trimEnd());
          n++;
        }
        emit(JSON.stringify({ maps: n }));
        break;
      }
      default:
        throw new TraceError(line, `unknown op ${JSON.stringify(o.op)} (expected mmap, munmap, mprotect, madvise or maps)`);
    }
  }

  close(): void {
    this.k.shutdown();
  }
}

/** Run a whole trace; returns the output lines. Throws TraceError on a malformed line. */
export function replayTrace(lines: readonly string[], host: ReplayHost = {}): string[] {
  const out: string[] = [];
  const r = new Replayer((l) => out.push(l), host);
  try {
    for (const text of lines) r.line(text);
  } finally {
    r.close();
  }
  return out;
}
