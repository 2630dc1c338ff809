// The DICOM outputs from the shipped browser bundle (dist/covidct.browser.js, built by build.mjs) in Debian's
// headless Chromium: the page reads the real CT fixture's files with the bundle's DICOM reader, analyses them with
// the CPU stand-in engine (test/analysis-fake.ts, bundled on its own for the page), and makes seg.dcm, sr.dcm and
// contact_sheet.dcm, which loads dcmjs's chunk (dist/chunks/browser/dcmjs.es-*.js) with import(). The files come
// back to Node: dciodvfy finds no error, and the SEG's frames equal those Node makes from the same input.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { makeDicomOutputFiles } from '../src/analysis/dicom-outputs.js';
import { loadScan } from '../src/node/scan-path.js';
import { fakeEngine } from './analysis-fake.js';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
import { dciodvfy } from './dicom-check.js';
import { ROOT } from './fixtures.js';

const REAL = join(ROOT, 'test/fixtures/scans/real/ct_3slice');
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"></head><body><script type="module">
import * as covidct from '/dist/covidct.browser.js';
import { fakeEngine } from '/fake.js';
window.run = async (names) => {
  try {
    const files = await Promise.all(names.map(async (n) => ({ path: n, bytes: new Uint8Array(await (await fetch('/fixture/' + n)).arrayBuffer()) })));
    const scan = await covidct.scanDicomFiles(files, 'ct_3slice');
    const series = covidct.chooseSeries(scan);
    const map = new Map(files.map((f) => [f.path, f.bytes]));
    const volume = await covidct.readDicomSeries(scan, series, map);
    const result = await covidct.analyzeVolume(fakeEngine({ batch: 3, size: 32 }), volume);
    const out = await covidct.makeDicomOutputFiles(result, scan, series, map);
    const b64 = (u8) => { let s = ''; for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000)); return btoa(s); };
    return { files: out.files.map((f) => ({ name: f.name, b64: b64(f.bytes) })), scripts: performance.getEntriesByType('resource').map((e) => e.name) };
  } catch (e) {
    return { error: String(e && e.stack ? e.stack : e) };
  }
};
window.ready = true;
</script></body></html>`;

let server: Server | undefined;
let tmp: string;

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.html': 'text/html; charset=utf-8', '.dcm': 'application/dicom', '.map': 'application/json' };

beforeAll(async () => {
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  tmp = mkdtempSync(join(tmpdir(), 'covidct-dicom-browser-'));
  const fake = await build({ bundle: true, format: 'esm', platform: 'browser', target: 'es2022', entryPoints: [join(ROOT, 'test/analysis-fake.ts')], write: false, logLevel: 'silent' });
  const fakeJs = fake.outputFiles[0]!.text;
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    let body: string | Buffer | undefined;
    if (path === '/') body = PAGE;
    else if (path === '/fake.js') body = fakeJs;
    else if (path.startsWith('/dist/') || path.startsWith('/fixture/')) {
      const base = path.startsWith('/dist/') ? join(ROOT, 'dist') : REAL;
      const file = normalize(join(base, path.replace(/^\/(dist|fixture)\//, '')));
      if (file.startsWith(base) && existsSync(file)) body = readFileSync(file);
    }
    if (body === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'text/html; charset=utf-8' }).end(body);
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
}, 120_000);

afterAll(async () => {
  if (server) await new Promise<void>((r) => server!.close(() => r()));
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('DICOM outputs in the browser bundle', () => {
  it('Chromium makes seg.dcm, sr.dcm and contact_sheet.dcm with dcmjs loaded from its own chunk; dciodvfy: no errors; the SEG frames equal Node\'s', { timeout: 120_000 }, async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium (scripts/install-deps.sh)`).toBe(true);
    const userDataDir = mkdtempSync(join(tmp, 'chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
      });
      await page.goto(`http://127.0.0.1:${(server!.address() as AddressInfo).port}/`, { waitUntil: 'load' });
      await page.waitForFunction('window.ready === true', undefined, { timeout: 15_000 });
      const got = (await page.evaluate(`window.run(${JSON.stringify(readdirSync(REAL))})`)) as { error?: string; files: { name: string; b64: string }[]; scripts: string[] };
      expect(got.error).toBeUndefined();
      expect(problems).toEqual([]);
      expect(got.files.map((f) => f.name)).toEqual(['seg.dcm', 'sr.dcm', 'contact_sheet.dcm']);
      // dcmjs came as its own chunk, by import(), not inside the main bundle
      expect(got.scripts.some((s) => /\/dist\/chunks\/browser\/dcmjs\.es-[\w-]+\.js$/.test(s))).toBe(true);
      expect(readFileSync(join(ROOT, 'dist/covidct.browser.js'), 'utf8')).not.toMatch(/DicomMessage\.readFile = |function DicomDict\(/);
      for (const f of got.files) {
        writeFileSync(join(tmp, f.name), Buffer.from(f.b64, 'base64'));
        expect(dciodvfy(join(tmp, f.name)).errors, f.name).toEqual([]);
      }
      // the same input in Node: the same SEG frames
      const scan = await loadScan(REAL);
      const r = await analyzeVolume(fakeEngine({ batch: 3, size: 32 }), scan.volume);
      const node = await makeDicomOutputFiles(r, scan.dicom!.scan, scan.dicom!.chosen, (p) => Promise.resolve(readFileSync(p)));
      writeFileSync(join(tmp, 'node-seg.dcm'), node.files[0]!.bytes);
      const py = `import sys, pydicom, numpy as np
a = pydicom.dcmread(sys.argv[1]).pixel_array; b = pydicom.dcmread(sys.argv[2]).pixel_array
print(a.shape == b.shape and bool((a == b).all()), int(a.sum()))`;
      const [same, ones] = execFileSync('/usr/bin/python3', ['-c', py, join(tmp, 'seg.dcm'), join(tmp, 'node-seg.dcm')], { encoding: 'utf8' }).trim().split(' ');
      expect(same).toBe('True');
      expect(Number(ones)).toBeGreaterThan(0);
    } finally {
      await context.close();
    }
  });
});
