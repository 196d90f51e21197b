// Report and input files. bench/ is the only layer that touches the
// filesystem for results; everything it writes goes through writeFileAtomic
// so an interrupted run never leaves a half-written CSV where the baseline
// used to be, and everything it reads goes through readInput so a bad path is
// one line on stderr, not a stack trace.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * A problem with a file the user gave us, at a line (1-based; 0 when it is
 * not about one line). The CLI prints `memcrypt-bench: ${message}`, so the
 * message is always exactly one line.
 */
export class InputError extends Error {
  override name = 'InputError';
  constructor(
    readonly file: string,
    readonly line: number,
    msg: string,
  ) {
    super(_oneLine(line > 0 ? `${file}:${line}: ${msg}` : `${file}: ${msg}`));
  }
}

/** Control characters (newlines above all) would break the one-line contract. */
const _oneLine = (s: string): string => s.replace(/[\r\n\t\v\f]+/g, ' ');

/**
 * Write data to path so that readers see either the old file or the new one,
 * never a mix: write a temp file in the same directory (rename is only atomic
 * within one filesystem), fsync it, then rename it over path. On failure the
 * temp file is removed and the error rethrown; path is never opened itself.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  // pid + random: two runs (or two writes in one run) never share a temp file;
  // the leading dot and .tmp suffix keep it out of listings and out of git.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fd = -1;
  try {
    fd = openSync(tmp, 'wx', 0o644); // 'x': never reuse a file someone else made
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd); // the data must be on disk before the rename makes it visible
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) _try(() => closeSync(fd));
    _try(() => unlinkSync(tmp));
    throw e;
  }
  // Best effort: persist the rename itself. Not every platform can fsync a
  // directory (Windows), and the new file is already in place either way.
  _try(() => {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  });
}

function _try(f: () => void): void {
  try {
    f();
  } catch {
    // cleanup only: the error that matters is the one being rethrown
  }
}

const _WHY: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
  ENOTDIR: 'a path component is not a directory',
};

/** Read a UTF-8 text file; a filesystem error becomes a one-line InputError. */
export function readInput(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw e;
    const why = _WHY[code];
    throw new InputError(path, 0, `cannot read: ${code}${why ? ` (${why})` : ''}`);
  }
}
