#!/usr/bin/env node
// memcrypt-bench command line. The only layer that touches process, the
// terminal and report files.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { readFileSync } from 'node:fs';
import { TraceError, replayTrace } from '../kernel/replay.js';
import { formatCore, runCoreBench } from './core.js';

function fail(msg: string): never {
  process.stderr.write(`memcrypt-bench: ${msg}\n`);
  process.exit(2);
}

const positiveInt = (name: string) => (v: unknown) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name}: expected a positive integer, got '${String(v)}'`);
  return n;
};

async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('memcrypt-bench')
    .usage('$0 <command> [options]')
    .command(
      'core',
      'AES-XTS throughput of each crypto backend vs the node:crypto ceiling',
      (y) =>
        y
          .option('time', { type: 'number', default: 1000, describe: 'minimum time per task, ms', coerce: positiveInt('time') })
          .option('frames', { type: 'number', default: 1024, describe: 'frames cycled through', coerce: positiveInt('frames') }),
      async (a) => {
        const res = await runCoreBench({ timeMs: a.time, frames: a.frames });
        process.stdout.write(formatCore(res) + '\n');
      },
    )
    .command(
      'replay <file>',
      'run a JSON-lines trace of mmap/munmap/mprotect/madvise calls in one process ({"op":"maps"} prints /proc/self/maps)',
      (y) => y.positional('file', { type: 'string', demandOption: true, describe: "trace file, '-' for stdin" }),
      (a) => {
        // yargs hands '-' over as ''
        const stdin = a.file === '-' || a.file === '';
        const name = stdin ? 'stdin' : a.file;
        let text: string;
        try {
          text = readFileSync(stdin ? 0 : a.file, 'utf8');
        } catch (e) {
          fail(`${name}: ${(e as NodeJS.ErrnoException).code ?? 'cannot read'}`);
        }
        try {
          process.stdout.write(replayTrace(text.split('\n')).join('\n') + '\n');
        } catch (e) {
          if (e instanceof TraceError) fail(`${name}: ${e.message}`);
          throw e;
        }
      },
    )
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .help()
    .fail((msg, err) => {
      fail(err ? err.message : msg);
    })
    .parseAsync();
}

main(hideBin(process.argv)).catch((e: unknown) => fail(e instanceof Error ? e.message : String(e)));
