// The run's HTML page in a real headless browser (Debian's chromium, driven
// by puppeteer-core, which downloads nothing): every figure renders and is not
// blank, the console shows no error, and the page asks the network for
// nothing (file: and data: URLs only; DNS is mapped to nowhere besides).
// Without a browser the test says so and is skipped, except in CI
// (MEMCRYPT_CI=1, set by .ci/run, which installs chromium): there it fails.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import puppeteer, { type Browser } from 'puppeteer-core';
import { loadRun } from '../../bench/compare.js';
import { parseSamples, samplesPath } from '../../bench/csv.js';
import { FIGURE_NAMES, runFigures } from '../../bench/figures.js';
import { formatHtml } from '../../bench/html.js';
import { formatReport } from '../../bench/report.js';

const CANDIDATES = [process.env.CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
const browserPath = CANDIDATES.find((p) => existsSync(p));
const inCi = process.env.MEMCRYPT_CI === '1';
const BASELINE = fileURLToPath(new URL('../../../results/baseline.csv', import.meta.url));

/** Share of a PNG's pixels that are not (near) white. */
function inked(png: Buffer): number {
  const img = PNG.sync.read(png);
  let ink = 0;
  for (let i = 0; i < img.data.length; i += 4) if (img.data[i] < 235 || img.data[i + 1] < 235 || img.data[i + 2] < 235) ink++;
  return ink / (img.width * img.height);
}

describe('the HTML page in headless Chromium', () => {
  if (browserPath === undefined) {
    it('needs a browser', () => {
      if (inCi) assert.fail(`no chromium found (tried ${CANDIDATES.join(', ')}); .ci/run installs Debian's chromium`);
    });
    it.skip(`no chromium here (tried ${CANDIDATES.join(', ')}): the page is not checked in a browser`);
    return;
  }
  let dir: string, page: string, browser: Browser;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'memcrypt-html-'));
    const run = loadRun(BASELINE);
    const samples = parseSamples(readFileSync(samplesPath(BASELINE), 'utf8'), samplesPath(BASELINE)).cells;
    page = join(dir, 'run.html');
    writeFileSync(page, formatHtml(run.meta, run.rows, await runFigures(run.rows, samples), formatReport(run.meta, run.rows)));
    browser = await puppeteer.launch({
      executablePath: browserPath,
      headless: true,
      // over a pipe, not a port: a test process that is killed (a mutation
      // run's timeout) takes the browser with it instead of leaving it running
      pipe: true,
      args: ['--no-sandbox', '--disable-gpu', '--host-resolver-rules=MAP * ~NOTFOUND'],
    });
  });
  after(async () => {
    await browser?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('renders every figure, not blank, with no console error and no request beyond the file', async () => {
    const p = await browser.newPage();
    const errors: string[] = [];
    const requests: string[] = [];
    p.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    p.on('pageerror', (e) => errors.push(String(e)));
    p.on('request', (r) => requests.push(r.url()));
    await p.setViewport({ width: 1400, height: 1000 });
    await p.goto(pathToFileURL(page).href, { waitUntil: 'load' });
    for (const name of FIGURE_NAMES) {
      const svg = await p.$(`figure[data-figure="${name}"] svg`);
      assert.ok(svg, `${name}: no svg`);
      const box = await svg.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `${name}: ${JSON.stringify(box)}`);
      const shot = Buffer.from(await svg.screenshot({ type: 'png' }));
      const ink = inked(shot);
      assert.ok(ink > 0.02, `${name}: ${(ink * 100).toFixed(1)}% of its pixels drawn`);
    }
    const full = Buffer.from(await p.screenshot({ type: 'png', fullPage: true }));
    writeFileSync(join(dir, 'page.png'), full);
    assert.ok(PNG.sync.read(full).height > 2000, 'the whole page: figures, report and table');
    assert.deepEqual(errors, []);
    assert.deepEqual(
      requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:')),
      [],
    );
    await p.close();
  });
});
