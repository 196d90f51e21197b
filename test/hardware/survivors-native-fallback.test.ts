// The backend registry where the native addon is missing or broken. The
// compiled hardware/ modules are copied into a temporary tree
// (<tmp>/dist/hardware/, <tmp>/node_modules -> the project's), so that their
// '../../build/xts_native.node' is absent, a file that is no addon, or (a
// symlink to) the real one. Each tree is a separate module instance in this
// process, running the same code as dist/hardware/.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type * as XtsModule from '../../hardware/xts.js';
import type * as NativeModule from '../../hardware/xts-native.js';
import type * as MachineModule from '../../hardware/machine.js';
import { dataBuf, type DataBuf } from '../../hardware/backend.js';
import { asPfn } from '../../hardware/types.js';

const HW = fileURLToPath(new URL('../../hardware/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ADDON = join(ROOT, 'build', 'xts_native.node');
// The node_modules the project resolves its packages from: usually ROOT's own,
// but a tree nested below the project (Stryker's sandbox) has none of its own
// and resolves through a parent directory's, as node does.
const NODE_MODULES = ((): string => {
  for (let dir = ROOT; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', '@noble', 'ciphers'))) return join(dir, 'node_modules');
    if (dirname(dir) === dir) throw new Error(`no node_modules with @noble/ciphers above ${ROOT}`);
  }
})();
const tmp = mkdtempSync(join(tmpdir(), 'memcrypt-native-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const NOT_BUILT = 'build/xts_native.node was not built (npm ci builds it with cc)';

/**
 * An addon as a build from an older checkout would be: it loads and has the
 * named functions, nothing more (before the call registers: importKey and
 * crypt; before yieldCpu: setRegs too; before schedstat: yieldCpu and rekey
 * too; before bind: schedstat and copy too; before hostCpu and moveOff: bind
 * and the rest up to boundCount too). Its path, or why not where there is
 * no C compiler or no node headers.
 */
function oldAddon(name: string, fns: readonly string[]): string | { why: string } {
  const inc = join(dirname(dirname(process.execPath)), 'include', 'node');
  if (!existsSync(join(inc, 'node_api.h'))) return { why: `no node headers under ${inc}` };
  const src = join(tmp, `${name}.c`);
  const out = join(tmp, `${name}.node`);
  writeFileSync(
    src,
    [
      '#include <node_api.h>',
      'static napi_value nop(napi_env env, napi_callback_info info) { (void)env; (void)info; return NULL; }',
      'static napi_value init(napi_env env, napi_value exports) {',
      `  napi_property_descriptor p[] = { ${fns.map((f) => `{ "${f}", NULL, nop, NULL, NULL, NULL, napi_default, NULL }`).join(', ')} };`,
      `  napi_define_properties(env, exports, ${fns.length}, p);`,
      '  return exports;',
      '}',
      `NAPI_MODULE(${name}, init)`,
      '',
    ].join('\n'),
  );
  const r = spawnSync(process.env.CC || 'cc', ['-shared', '-fPIC', '-I', inc, '-o', out, src], { encoding: 'utf8' });
  return r.status === 0 ? out : { why: `cc: ${r.error?.message ?? r.stderr.split('\n')[0]}` };
}

/** A copy of dist/hardware/ whose build/xts_native.node is absent, junk, the real addon, or another .node file. */
async function tree(
  name: string,
  addon: 'absent' | 'junk' | 'real',
  other?: string,
): Promise<{ xts: typeof XtsModule; native: typeof NativeModule; machine: () => Promise<typeof MachineModule> }> {
  const root = join(tmp, name);
  mkdirSync(join(root, 'dist', 'hardware'), { recursive: true });
  for (const f of readdirSync(HW)) if (f.endsWith('.js')) copyFileSync(join(HW, f), join(root, 'dist', 'hardware', f));
  symlinkSync(NODE_MODULES, join(root, 'node_modules'));
  if (addon !== 'absent') mkdirSync(join(root, 'build'));
  if (addon === 'junk') writeFileSync(join(root, 'build', 'xts_native.node'), 'not a shared object\n');
  if (addon === 'real') symlinkSync(other ?? ADDON, join(root, 'build', 'xts_native.node'));
  const url = (f: string) => pathToFileURL(join(root, 'dist', 'hardware', f)).href;
  return { xts: await import(url('xts.js')), native: await import(url('xts-native.js')), machine: () => import(url('machine.js')) };
}

const key = Uint8Array.from({ length: 32 }, (_, i) => i);

describe('native backend not built', () => {
  it('says so in one line, and the registry falls back to openssl', async () => {
    const { xts, native } = await tree('absent', 'absent');
    assert.equal(native.nativeStatus(), NOT_BUILT);
    assert.deepEqual(xts.availableBackends(), ['openssl', 'noble']);
    assert.equal(xts.defaultBackend(), 'openssl');
    assert.equal(xts.backendNote(), `native crypto backend unavailable (${NOT_BUILT}); using node:crypto (openssl)`);
  });

  it('getBackend refuses native saying why, and still gives the others', async () => {
    const { xts } = await tree('absent2', 'absent');
    assert.throws(
      () => xts.getBackend('native'),
      (e: Error) => e instanceof RangeError && e.message === `backend: native is not available: ${NOT_BUILT}`,
    );
    for (const name of ['openssl', 'noble']) {
      const be = xts.getBackend(name);
      assert.equal(be.name, name);
      assert.equal(be.importKey(key).backend, name);
    }
  });

  it('the native backend object itself refuses keys saying why', async () => {
    const { native } = await tree('absent3', 'absent');
    assert.throws(
      () => native.nativeBackend.importKey(key),
      (e: Error) => e.constructor === Error && e.message === `native backend: ${NOT_BUILT}`,
    );
  });
});

describe('the engine without the native addon', () => {
  it('copies a page through KeyIDs that do not encrypt frame to frame all the same', async () => {
    const { native, machine } = await tree('absent4', 'absent');
    assert.equal(native.hostCopy(), null, 'no native copy');
    const { Machine } = await machine();
    const m = Machine.create({ profile: 'mktme', backend: 'openssl', memory: { nodeFrames: [8, 8], daxFrames: 0 }, nrCpus: 1 });
    const u8 = m.memory.buf.u8;
    const pt = Uint8Array.from({ length: 4096 }, (_, i) => (i * 7 + 3) & 0xff);
    u8.set(pt, 2 * 4096);
    u8.fill(0xee, 0, 2 * 4096);
    u8.fill(0xee, 3 * 4096);
    assert.equal(m.engine.copy(asPfn(2), 0, asPfn(5), 0), true);
    assert.deepEqual(u8.subarray(5 * 4096, 6 * 4096), pt);
    assert.deepEqual(u8.subarray(2 * 4096, 3 * 4096), pt, 'the source is left as it was');
    assert.ok(u8.subarray(4 * 4096, 5 * 4096).every((b) => b === 0xee) && u8.subarray(6 * 4096, 7 * 4096).every((b) => b === 0xee), 'nothing beside the destination changed');
  });
});

describe('native backend built but not loadable', () => {
  it('says the addon did not load, with the loader\'s first line of error', async () => {
    const { xts, native } = await tree('junk', 'junk');
    const s = native.nativeStatus();
    assert.ok(s !== null);
    assert.match(s, /^build\/xts_native\.node did not load: \/.*xts_native\.node: \S.+$/);
    assert.ok(!s.includes('\n'));
    assert.deepEqual(xts.availableBackends(), ['openssl', 'noble']);
    assert.equal(xts.backendNote(), `native crypto backend unavailable (${s}); using node:crypto (openssl)`);
    assert.throws(() => xts.getBackend('native'), /^RangeError: backend: native is not available: build\/xts_native\.node did not load: /);
  });
});

describe('native backend built from an older checkout', () => {
  for (const [name, fns] of [
    ['old', ['importKey', 'crypt']],
    ['noyield', ['importKey', 'crypt', 'setRegs']],
    ['noschedstat', ['importKey', 'rekey', 'crypt', 'setRegs', 'yieldCpu']],
    ['nocopy', ['importKey', 'rekey', 'crypt', 'setRegs', 'yieldCpu', 'schedstat']],
    ['nobind', ['importKey', 'rekey', 'crypt', 'setRegs', 'yieldCpu', 'schedstat', 'copy']],
    ['nocompare', ['importKey', 'rekey', 'crypt', 'setRegs', 'yieldCpu', 'schedstat', 'copy', 'bind', 'unbind', 'cryptBound', 'copyBound']],
    ['nocount', ['importKey', 'rekey', 'crypt', 'setRegs', 'yieldCpu', 'schedstat', 'copy', 'bind', 'unbind', 'cryptBound', 'copyBound', 'compareBound', 'unbindAll']],
    ['nomove', ['importKey', 'rekey', 'crypt', 'setRegs', 'yieldCpu', 'schedstat', 'copy', 'bind', 'unbind', 'cryptBound', 'copyBound', 'compareBound', 'unbindAll', 'boundCount']],
  ] as const) {
    const old = oldAddon(name, fns);
    it(`is not used, and the one line says npm ci rebuilds it: one with only ${fns.join(', ')}`, { skip: typeof old === 'string' ? false : old.why }, async () => {
      const { xts, native } = await tree(name, 'real', old as string);
      const s = native.nativeStatus();
      assert.equal(s, 'build/xts_native.node did not load: it was built from an older checkout (npm ci rebuilds it)');
      assert.deepEqual(xts.availableBackends(), ['openssl', 'noble']);
      assert.equal(xts.defaultBackend(), 'openssl');
      assert.equal(native.hostYield(), null);
      assert.equal(native.hostSchedstat(), null);
      assert.equal(native.hostPlacement(), null);
      assert.equal(native.hostCopy(), null);
      assert.equal(native.hostCompare(), null);
      assert.equal(native.boundCount(), 0);
      native.releaseBound(); // nothing to let go
    });
  }
});

describe('native backend built', { skip: existsSync(ADDON) ? false : 'build/xts_native.node was not built' }, () => {
  it('is available, the default, and named in its keys', async () => {
    const { xts, native } = await tree('real', 'real');
    assert.equal(native.nativeStatus(), null);
    const y = native.hostYield();
    assert.equal(typeof y, 'function');
    assert.equal(y!(), undefined, 'sched_yield, nothing returned');
    assert.equal(typeof native.hostSchedstat(), 'function');
    const copy = native.hostCopy()!;
    // b on an ArrayBuffer: the addon is asked for both arrays' bytes each call
    // (a SharedArrayBuffer's are bound once; test/hardware/native-bind.test.ts)
    const a = dataBuf(new Uint8Array(new SharedArrayBuffer(16)));
    a.u8.forEach((_, i) => (a.u8[i] = i));
    const b = dataBuf(new Uint8Array(8));
    copy(a, 4, b, 2, 4);
    assert.deepEqual([...b.u8], [0, 0, 4, 5, 6, 7, 0, 0]);
    copy(a, 0, a, 2, 8); // one buffer, overlapping: memmove
    assert.deepEqual([...a.u8], [0, 1, 0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15]);
    copy(a, 16, b, 8, 0);
    for (const [so, d, doff, len] of [[10, b, 0, 8], [0, b, 1, 8], [0, b, 0, 9], [-1, b, 0, 1], [0.5, b, 0, 1]] as const)
      assert.throws(() => copy(a, so, d, doff, len), { name: 'RangeError', message: 'copy: range out of bounds' }, `${so} ${doff} ${len}`);
    assert.deepEqual([...b.u8], [0, 0, 4, 5, 6, 7, 0, 0], 'a refused copy copies nothing');
    assert.throws(() => copy({ u8: new Float64Array(2) } as unknown as DataBuf, 0, b, 0, 1), { name: 'TypeError', message: 'copy: src and dst: expected Uint8Arrays' });
    assert.deepEqual(xts.availableBackends(), ['native', 'openssl', 'noble']);
    assert.equal(xts.defaultBackend(), 'native');
    assert.equal(xts.backendNote(), null);
    assert.equal(xts.getBackend('native').importKey(key).backend, 'native');
    assert.equal(xts.getBackend('openssl').name, 'openssl');
  });
});
