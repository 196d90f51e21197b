// The install step's native build: compile hardware/xts-native.c into
// build/xts_native.node with the system C compiler ($CC or cc) against the
// running node's own headers (node_api.h and OpenSSL's, which node ships and
// whose symbols it exports), so nothing is downloaded or linked. It never
// fails the install: where it cannot build, it says why in one line and the
// harness uses the node:crypto backend.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'xts_native.node');
const src = join(root, 'hardware', 'xts-native.c');
const cc = process.env.CC || 'cc';

/** Where this node's headers are: <prefix>/include/node, from the binary and from its build config. */
function headers() {
  const prefixes = [dirname(dirname(process.execPath)), process.config?.variables?.node_prefix].filter(Boolean);
  for (const p of prefixes) {
    const inc = join(p, 'include', 'node');
    if (existsSync(join(inc, 'node_api.h')) && existsSync(join(inc, 'openssl', 'evp.h'))) return inc;
  }
  return null;
}

function say(line) {
  process.stdout.write(`memcrypt-bench: ${line}\n`);
}

mkdirSync(join(root, 'build'), { recursive: true });
rmSync(out, { force: true });
const inc = headers();
const status = join(root, 'build', 'native-status.txt');
let why = null;
if (inc === null) why = `no node headers with OpenSSL under ${dirname(dirname(process.execPath))}/include/node`;
else
  try {
    execFileSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-std=gnu11', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=xts_native', '-I', inc, '-o', out, src], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 120_000,
    });
  } catch (e) {
    why = e.code === 'ENOENT' ? `no C compiler '${cc}'` : `${cc} failed: ${String(e.stderr || e.message).split('\n').find((l) => l.trim()) ?? 'no output'}`;
  }
if (why === null) {
  writeFileSync(status, 'built\n');
  say('built the native crypto backend (build/xts_native.node)');
} else {
  writeFileSync(status, `${why}\n`);
  say(`native crypto backend not built (${why}); the node:crypto backend is used`);
}
