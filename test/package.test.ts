// The package as users get it: `npm pack` (its prepack script builds dist and the declarations), the tarball
// installed into an empty folder with npm, offline, and then:
// - the tarball: its size (printed), the declarations, the default weights package.json names, and none of the
//   repository's test fixtures, training logs, evaluation JSONs, bench or web build;
// - `tsc --strict` in that fresh project, which imports covidct and covidct/testing with nothing else installed
//   (no @webgpu/types, no @types/node, no dicom-parser);
// - an app bundled for the browser from the installed package by esbuild (--platform=browser), run in headless
//   Chromium (Debian's, WebGPU on SwiftShader): it reads a JPEG-LS and a JPEG 2000 series through the codec chunks of
//   the app's own bundle, voxel for voxel equal to the sources' reader, and gets a WebGPU device;
// - its `covidct` bin: --version, inspect on a compressed series, analyze on the bundled sample with no --weights
//   (the trained default), whose result is PyTorch's for that file (samples/synthetic-covid.expected.json, as
//   test/sample.test.ts holds the sources to it).
// dawn.node: the package's only dependency is optional (`webgpu`), and CI has no registry. The install omits it
// (--omit=optional), and the test copies the project's own node_modules/webgpu into the fresh project's
// node_modules, which is what npm would have put there. The bin finds it there as it would after a normal install.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseSeries, readDicomSeries, scanDicomFiles } from '../src/io/dicom/index.js';
import { runChild } from './child.js';
import { relL2, ROOT, TOL } from './fixtures.js';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
// @ts-expect-error plain ESM server without types
import { serveDir } from '../web/serve.mjs';

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; covidct: { defaultWeights: string } };
const DICOM = join(ROOT, 'test/fixtures/scans/dicom');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

let tmp = '';
/** The fresh project the tarball is installed into. */
let app = '';
let tarball = '';
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string; size: number }[] };
let server: Server | null = null;

async function npm(args: string[], cwd: string): Promise<string> {
  const r = await runChild('npm', args, { cwd, timeoutMs: 400_000, env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (r.code !== 0) throw new Error(`npm ${args.join(' ')} exited ${r.code ?? r.signal}: ${r.err.slice(-2000)}`);
  return r.out;
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'covidct-package-'));
  const t0 = performance.now();
  // `npm pack` runs the prepack script (npm run build: dist and dist/types made afresh) and prints the file list.
  const out = JSON.parse(await npm(['pack', '--json', '--pack-destination', tmp], ROOT)) as [{ filename: string; size: number; unpackedSize: number; files: { path: string; size: number }[] }];
  packed = out[0];
  tarball = join(tmp, packed.filename);
  const t1 = performance.now();
  app = join(tmp, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true, type: 'module' }));
  await npm(['install', '--offline', '--no-audit', '--no-fund', '--omit=optional', tarball], app);
  const t2 = performance.now();
  const mb = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
  const largest = [...packed.files].sort((a, b) => b.size - a.size).slice(0, 5).map((f) => `${f.path} ${mb(f.size)}`);
  console.log(`npm pack: ${packed.filename} ${mb(packed.size)} (unpacked ${mb(packed.unpackedSize)}, ${packed.files.length} files; largest: ${largest.join(', ')}) in ${((t1 - t0) / 1000).toFixed(1)} s; installed offline in ${((t2 - t1) / 1000).toFixed(1)} s`);
}, 600_000);

afterAll(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('carries the declarations and the default weights, and nothing of the repository\'s tests, logs or bench', () => {
    const paths = packed.files.map((f) => f.path);
    for (const p of ['package.json', 'README.md', 'dist/cli.js', 'dist/index.js', 'dist/covidct.browser.js', 'dist/types/index.d.ts', 'dist/types/testing.d.ts', 'dist/types/webgpu-globals.d.ts', PKG.covidct.defaultWeights]) expect(paths, p).toContain(p);
    for (const p of paths) {
      expect(p, 'not for users').not.toMatch(/^(test|samples|bench|scripts|web|src|docs)\/|^dist\/(web|bench)|\.(eval\.json|txt)$|train_log/);
      // The weights folder: the default weights and their README (npm adds README files; it is their model card).
      if (p.startsWith('weights/') && p !== 'weights/README.md') expect(p, 'the only weights file is the default').toBe(PKG.covidct.defaultWeights);
    }
    // The installed copy: the same default weights, byte for byte.
    const installed = join(app, 'node_modules/covidct', PKG.covidct.defaultWeights);
    expect(createHash('sha256').update(readFileSync(installed)).digest('hex')).toBe(createHash('sha256').update(readFileSync(join(ROOT, PKG.covidct.defaultWeights))).digest('hex'));
    // Sensible: the f16 weights are most of it.
    expect(packed.size).toBeLessThan(16 * 2 ** 20);
  });

  it('type-checks with tsc --strict in a fresh project with nothing but covidct installed', async () => {
    expect(readdirSync(join(app, 'node_modules')).filter((n) => !n.startsWith('.'))).toEqual(['covidct']);
    writeFileSync(
      join(app, 'main.ts'),
      `import { analyzeVolume, createGpu, makeOutputFiles, openWeights, readNifti, scanDicomFiles, chooseSeries, readDicomSeries, TwoStageEngine, type AnalysisResult, type GpuContext } from 'covidct';
import { runOp, OPS } from 'covidct/testing';

export async function analyse(scan: Uint8Array, weights: Uint8Array, signal: AbortSignal): Promise<string[]> {
  const gpu: GpuContext = await createGpu({ forceSoftware: true });
  const engine = await TwoStageEngine.load(gpu, openWeights(weights, 'w.safetensors'), { batch: 2 });
  const volume = await readNifti(scan, 'ct.nii.gz');
  const result: AnalysisResult = await analyzeVolume(engine, volume, { signal });
  const files = await makeOutputFiles(result);
  engine.destroy();
  gpu.destroy();
  return [result.report.patient.label ?? 'none', ...files.map((f) => f.name), gpu.adapterName, String(Object.keys(OPS).length), typeof runOp];
}

export async function dicom(files: { path: string; bytes: Uint8Array }[]): Promise<number> {
  const scan = await scanDicomFiles(files, 'study');
  const volume = await readDicomSeries(scan, chooseSeries(scan), new Map(files.map((f) => [f.path, f.bytes])));
  return volume.dims[2];
}
`,
    );
    for (const [module, resolution, lib] of [
      ['NodeNext', 'NodeNext', ['ES2022', 'DOM']],
      ['ESNext', 'Bundler', ['ES2022']],
    ] as const) {
      writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, target: 'ES2022', module, moduleResolution: resolution, lib, noEmit: true }, files: ['main.ts'] }));
      const r = await runChild(process.execPath, [TSC, '-p', '.'], { cwd: app });
      expect(r.out + r.err, `tsc --strict (${module}, ${resolution}, lib ${lib.join('+')})`).toBe('');
      expect(r.code).toBe(0);
    }
  });

  it('bundles into a browser app (esbuild --platform=browser) that reads compressed DICOM and gets a GPU in Chromium', async () => {
    const web = join(tmp, 'browser-app');
    mkdirSync(web);
    writeFileSync(
      join(app, 'browser-app.js'),
      `import { chooseSeries, createGpu, readDicomSeries, scanDicomFiles, SOFTWARE_VERSION } from 'covidct';
async function series(name, files) {
  const list = [];
  for (const f of files) list.push({ path: f, bytes: new Uint8Array(await (await fetch(name + '/' + f)).arrayBuffer()) });
  const scan = await scanDicomFiles(list, name);
  const v = await readDicomSeries(scan, chooseSeries(scan), new Map(list.map((f) => [f.path, f.bytes])));
  const bytes = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  const hash = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
  return { dims: [...v.dims], type: v.data.constructor.name, sha256: hash };
}
window.result = (async () => {
  const out = { version: SOFTWARE_VERSION };
  for (const [name, files] of Object.entries(await (await fetch('series.json')).json())) out[name] = await series(name, files);
  const gpu = await createGpu();
  out.adapter = gpu.adapterName;
  gpu.destroy();
  return out;
})().catch((e) => ({ error: String(e && e.stack || e) }));
`,
    );
    const r = await build({ absWorkingDir: app, entryPoints: ['browser-app.js'], bundle: true, platform: 'browser', format: 'esm', splitting: true, outdir: web, logLevel: 'silent', write: true });
    expect(r.errors).toEqual([]);
    expect(r.warnings.map((w) => w.text)).toEqual([]);
    // The codecs' chunks are the app's own chunks now, loaded when a series needs them.
    expect(readdirSync(web).filter((f) => /decode|lossless/.test(f)).length).toBeGreaterThanOrEqual(3);
    const series: Record<string, string[]> = {};
    for (const name of ['jpegls', 'j2k', 'jpeg_lossless']) {
      cpSync(join(DICOM, name), join(web, name), { recursive: true });
      series[name] = readdirSync(join(DICOM, name)).sort();
    }
    writeFileSync(join(web, 'series.json'), JSON.stringify(series));
    // Served by web/serve.mjs, so under the page's Content-Security-Policy too: no inline script.
    writeFileSync(join(web, 'index.html'), '<!doctype html><meta charset="utf-8"><title>app</title><script type="module" src="browser-app.js"></script>');
    const s = await serveDir(web, { port: 0 });
    server = s.server;
    const context = await chromium.launchPersistentContext(mkdtempSync(join(tmp, 'chromium-')), { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 30_000 });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(s.url);
      const result = (await page.evaluate('window.result')) as Record<string, any>;
      console.log(`browser app bundled from the installed package: ${JSON.stringify({ ...result, jpegls: result.jpegls?.dims, j2k: result.j2k?.dims, jpeg_lossless: result.jpeg_lossless?.dims })}`);
      expect(result.error).toBeUndefined();
      expect(errors).toEqual([]);
      expect(result.version).toBe(PKG.version);
      expect(result.adapter).toMatch(/swiftshader/i);
      for (const name of Object.keys(series)) {
        const dir = join(DICOM, name);
        const files = series[name]!.map((n) => ({ path: n, bytes: new Uint8Array(readFileSync(join(dir, n))) }));
        const scan = await scanDicomFiles(files, name);
        const v = await readDicomSeries(scan, chooseSeries(scan), new Map(files.map((f) => [f.path, f.bytes])));
        const sha256 = createHash('sha256').update(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)).digest('hex');
        expect(result[name], name).toEqual({ dims: [...v.dims], type: v.data.constructor.name, sha256 });
      }
    } finally {
      await context.close();
    }
  });

  it('its covidct bin: --version, inspect on JPEG 2000, analyze on the sample with the default weights gives PyTorch\'s result', async () => {
    // dawn.node from the project's own copy (see the top of this file).
    cpSync(join(ROOT, 'node_modules/webgpu'), join(app, 'node_modules/webgpu'), { recursive: true, dereference: true });
    const bin = join(app, 'node_modules/.bin/covidct');
    const run = (args: string[]) => runChild(bin, args, { cwd: app });
    const v = await run(['--version']);
    expect(v.code).toBe(0);
    expect(v.out).toMatch(new RegExp(`^covidct ${PKG.version.replace(/\./g, '\\.')}\\b`));
    const i = await run(['inspect', join(DICOM, 'j2k')]);
    expect(i.code, i.err).toBe(0);
    expect(i.out).toMatch(/1\.2\.840\.10008\.1\.2\.4\.90 \(JPEG 2000/);
    expect(i.out).toMatch(/HU range: -?\d+ \.\. -?\d+/);
    const t0 = performance.now();
    const a = await run(['analyze', join(ROOT, 'samples/synthetic-covid.nii.gz'), '--out', 'result', '--software=lavapipe']);
    console.log(`installed covidct analyze (${((performance.now() - t0) / 1000).toFixed(1)} s):\n${a.out}${a.err}`);
    expect(a.code, a.err).toBe(0);
    expect(a.err).toBe('');
    const report = JSON.parse(readFileSync(join(app, 'result/report.json'), 'utf8'));
    expect(report.weights.name).toBe(`${PKG.covidct.defaultWeights} (covidct's default)`);
    expect(report.weights.trained).toBe(true);
    expect(report.software.version).toBe(PKG.version);
    const expected = JSON.parse(readFileSync(join(ROOT, 'samples/synthetic-covid.expected.json'), 'utf8')) as { patient: { label: string; probabilities: Record<string, number> } };
    const names = Object.keys(expected.patient.probabilities);
    expect(report.patient.label).toBe(expected.patient.label);
    expect(relL2(new Float32Array(names.map((n) => report.patient.probabilities[n])), new Float32Array(names.map((n) => expected.patient.probabilities[n]!)))).toBeLessThanOrEqual(TOL);
    expect(existsSync(join(app, 'result/lung_mask.nii.gz'))).toBe(true);
  });
});
