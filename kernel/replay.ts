// Replay a JSON-lines trace of mmap/munmap/mprotect/madvise calls in one
// fresh process, printing one result line per call ({"ret":..,"errno":..})
// and, for {"op":"maps"}, the VMAs as /proc/self/maps lines then {"maps":N}.
// The same format is produced by test/kernel/replay_linux.c on real Linux.
import { Machine } from '../hardware/machine.js';
import { errnoName } from './errno.js';
import { Kernel, NO_FEATURES } from './kernel.js';
import { NR } from './syscalls.js';
import { MADV_NAMES, MAP_FLAG_NAMES } from './uapi.js';

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

function num(o: Json, key: string, line: number): number {
  const v = o[key];
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'string' && /^-?0x[0-9a-fA-F]+$/.test(v)) {
    const neg = v.startsWith('-');
    const b = BigInt(neg ? v.slice(1) : v);
    const n = Number(neg ? -b : b);
    return n;
  }
  if (typeof v === 'string' && /^-?[0-9]+$/.test(v)) return Number(v);
  throw new TraceError(line, `'${key}' must be an integer or a "0x..." hex string, got ${JSON.stringify(v)}`);
}

/** An optional integer field (mmap's fd and offset). */
const opt = (o: Json, key: string, dflt: number, line: number): number => (o[key] === undefined ? dflt : num(o, key, line));

function prot(o: Json, line: number): number {
  const v = o.prot;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^[r-][w-][x-]$/.test(v))
    return (v[0] === 'r' ? 1 : 0) | (v[1] === 'w' ? 2 : 0) | (v[2] === 'x' ? 4 : 0);
  throw new TraceError(line, `'prot' must be like "rw-" or a number, got ${JSON.stringify(v)}`);
}

function flags(o: Json, line: number): number {
  const v = o.flags;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (!Array.isArray(v)) throw new TraceError(line, `'flags' must be a list of MAP_* names`);
  let f = 0;
  for (const name of v) {
    const bit = typeof name === 'string' && Object.hasOwn(MAP_FLAG_NAMES, name) ? MAP_FLAG_NAMES[name] : undefined;
    if (bit === undefined) throw new TraceError(line, `unknown flag ${JSON.stringify(name)}`);
    f |= bit;
  }
  return f;
}

function advice(o: Json, line: number): number {
  const v = o.advice;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && Object.hasOwn(MADV_NAMES, v)) return MADV_NAMES[v];
  throw new TraceError(line, `unknown advice ${JSON.stringify(v)}`);
}

const result = (ret: number, asAddr: boolean): string =>
  JSON.stringify({ ret: ret < 0 ? -1 : asAddr ? '0x' + ret.toString(16) : ret, errno: errnoName(ret) });

/**
 * A trace run line by line: each call's result goes to emit as soon as the
 * call is made, so a malformed line (TraceError) comes after everything
 * before it, and no output is held in memory.
 */
export class Replayer {
  private readonly k: Kernel;
  private readonly task: ReturnType<Kernel['spawn']>;
  private n = 0;

  constructor(private readonly emit: (line: string) => void) {
    const machine = Machine.create({ profile: 'none', backend: 'openssl', memory: { nodeFrames: [256] }, nrCpus: 1 });
    this.k = new Kernel(machine, { features: NO_FEATURES, pgtableSlots: 64 });
    this.task = this.k.spawn();
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
        emit(result(k.syscall(task, NR.mmap, num(o, 'addr', line), num(o, 'len', line), prot(o, line), flags(o, line), opt(o, 'fd', -1, line), opt(o, 'offset', 0, line)), true));
        break;
      case 'munmap':
        emit(result(k.syscall(task, NR.munmap, num(o, 'addr', line), num(o, 'len', line)), false));
        break;
      case 'mprotect':
        emit(result(k.syscall(task, NR.mprotect, num(o, 'addr', line), num(o, 'len', line), prot(o, line)), false));
        break;
      case 'madvise':
        emit(result(k.syscall(task, NR.madvise, num(o, 'addr', line), num(o, 'len', line), advice(o, line)), false));
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
export function replayTrace(lines: readonly string[]): string[] {
  const out: string[] = [];
  const r = new Replayer((l) => out.push(l));
  try {
    for (const text of lines) r.line(text);
  } finally {
    r.close();
  }
  return out;
}
