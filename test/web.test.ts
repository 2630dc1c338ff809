// The web page end to end in Debian's headless Chromium (playwright-core with executablePath, never a downloaded
// browser; WebGPU on SwiftShader, flags as test/browser.test.ts): web/build.mjs builds the page into a temporary
// folder with the bundled weights and, as its sample, the middle SAMPLE_SLICES slices of the bundled study (stand-ins
// when a checkout has neither), web/serve.mjs serves it, and the tests drive the page as a user would: the sample
// button, the file and folder inputs, the series list, Cancel, the chart and the keys. The sample's result is held to the Node side's
// (the same readers, analyzeVolume and makeOutputFiles on dawn.node): patient probabilities within the parity
// tolerance (TOL, relative L2) and the lung mask file voxel for voxel. Screenshots of the viewer and the result
// card go to COVIDCT_SCREENSHOTS=docs/img (small PNGs, for the README and docs/web.md), else to a temporary folder.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { makeOutputFiles } from '../src/analysis/outputs.js';
import { sha256Hex } from '../src/analysis/weights-info.js';
import { readNifti, writeNifti } from '../src/io/nifti.js';
import { chestPhantom } from '../src/analysis/phantom.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { defaultPreprocessConfig, tinyModelConfig } from '../src/models/config.js';
import { openWeights } from '../src/models/load.js';
import { randomPipelineWeights } from '../src/models/random-weights.js';
import { relL2, ROOT, TOL } from './fixtures.js';
import { testGpu } from './gpu.js';
// @ts-expect-error plain ESM build script without types
import { buildWeb } from '../web/build.mjs';
// @ts-expect-error plain ESM server without types
import { serveDir } from '../web/serve.mjs';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
/** The same browser with WebGPU off: Chromium on Linux exposes no adapter without --enable-unsafe-webgpu. */
const NO_WEBGPU_ARGS = CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu' && a !== '--use-webgpu-adapter=swiftshader').concat('--disable-features=WebGPU,Vulkan');

const DICOM = join(ROOT, 'test/fixtures/scans/dicom');
/** Screenshots go to COVIDCT_SCREENSHOTS (set it to docs/img to refresh the README's), else a temporary folder, so a test run leaves the tree clean. */
const IMG = process.env.COVIDCT_SCREENSHOTS ? resolve(ROOT, process.env.COVIDCT_SCREENSHOTS) : mkdtempSync(join(tmpdir(), 'covidct-web-shots-'));
const RUN_MS = 240_000;

/** The page's state object (web/main.ts PageState), as the tests read it. */
interface PageState {
  status: 'idle' | 'running' | 'done' | 'error';
  runs: number;
  started: number;
  settled: number;
  adapter: string | null;
  isSoftware: boolean | null;
  report: Record<string, any> | null;
  files: string[];
  error: { kind: string; message: string } | null;
  series: { key: string; description: string }[];
  seconds: number | null;
  viewerReady: boolean;
}

/**
 * Stand-ins for a checkout without the bundled weights or sample (web/build.mjs's defaults: the trained
 * weights/trained/synthetic-small.safetensors, tiny config at 64 x 64, and samples/synthetic-covid.nii.gz, 10
 * slices of 128 x 128): the tiny config's seeded random weights at 32 x 32, and a 4-slice phantom written by our
 * NIfTI writer. With the stand-ins the lung mask comparison can be vacuous, and the test says so by failing.
 */
async function standInWeights(tmp: string): Promise<string> {
  const file = randomPipelineWeights({ ...tinyModelConfig(), input_size: 32 }, { ...defaultPreprocessConfig(), lung_threshold: 0.5 }, 2);
  const p = join(tmp, 'tiny-random.safetensors');
  writeFileSync(p, serializeSafetensors(file.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: file.getF32(t.name) })), file.metadata));
  return p;
}

async function standInSample(tmp: string): Promise<string> {
  const { hu, shape } = chestPhantom({ slices: 4, height: 48, width: 48 });
  const affine = new Float64Array([-6, 0, 0, 0, 0, -6, 0, 0, 0, 0, 10, 0, 144, 144, -20, 1]);
  const p = join(tmp, 'phantom.nii.gz');
  writeFileSync(p, await writeNifti({ data: Int16Array.from(hu), dims: [shape[3], shape[2], shape[0]], affine }));
  return p;
}

/** Slices of the bundled sample the test keeps (the middle ones): SwiftShader takes seconds per slice. */
const SAMPLE_SLICES = 4;

/** The middle `n` axial slices of a NIfTI (k runs inferior to superior in the committed sample), rewritten. */
async function cropSlices(path: string, n: number, tmp: string): Promise<string> {
  const v = await readNifti(readFileSync(path), path);
  const [nx, ny, nz] = v.dims;
  if (nz <= n) return path;
  const k0 = Math.floor((nz - n) / 2);
  const a = Float64Array.from(v.affine);
  for (let r = 0; r < 3; r++) a[12 + r] = a[12 + r]! + k0 * a[8 + r]!;
  const out = join(tmp, `sample-${n}-slices.nii.gz`);
  writeFileSync(out, await writeNifti({ data: v.data.subarray(k0 * nx * ny, (k0 + n) * nx * ny), dims: [nx, ny, n], affine: a }));
  return out;
}

let tmp = '';
let outdir = '';
let weightsPath = '';
let samplePath = '';
let server: Server | null = null;
let origin = '';
let context: BrowserContext | null = null;
let page: Page;
const problems: string[] = [];
const timings: Record<string, number> = {};
let sizes: Record<string, number> = {};

async function state(p: Page = page): Promise<PageState> {
  return (await p.evaluate('window.covidct')) as PageState;
}

/** Runs `action` (which starts a run in the page) and waits until that run ends; returns the page's state. */
async function runAndSettle(p: Page, action: () => Promise<unknown>, timeout = RUN_MS): Promise<PageState> {
  const before = (await state(p)).started;
  await action();
  await p.waitForFunction(
    (n) => {
      const s = (window as unknown as { covidct: PageState }).covidct;
      return s.started > n && s.settled === s.started;
    },
    before,
    { timeout, polling: 250 },
  );
  return state(p);
}

async function launch(args: string[]): Promise<BrowserContext> {
  const dir = mkdtempSync(join(tmp, 'chromium-'));
  return chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: true, args, timeout: 30_000, viewport: { width: 1100, height: 780 } });
}

function watch(p: Page, into: string[]): void {
  p.on('pageerror', (e) => into.push(`page error: ${e.stack ?? e.message}`));
  p.on('console', (m) => {
    if (m.type() === 'error') into.push(`console error: ${m.text()}`);
  });
  p.on('requestfailed', (r) => into.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  p.on('response', (r) => {
    if (r.status() >= 400) into.push(`HTTP ${r.status()} for ${r.url()}`);
  });
}

/** The bytes of an output file, read back from the page's download link (a blob URL). */
async function download(p: Page, name: string): Promise<Uint8Array> {
  const arr = (await p.evaluate(async (n) => {
    const a = Array.from(document.querySelectorAll('#downloads a')).find((x) => x.textContent === n) as HTMLAnchorElement | undefined;
    if (!a) return null;
    return Array.from(new Uint8Array(await (await fetch(a.href)).arrayBuffer()));
  }, name)) as number[] | null;
  if (!arr) throw new Error(`no download link named ${name}`);
  return Uint8Array.from(arr);
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium ('apt-get install -y chromium')`).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'covidct-web-'));
  const defaults = { weights: join(ROOT, 'weights/trained/synthetic-small.safetensors'), sample: join(ROOT, 'samples/synthetic-covid.nii.gz') };
  weightsPath = existsSync(defaults.weights) ? defaults.weights : await standInWeights(tmp);
  samplePath = existsSync(defaults.sample) ? await cropSlices(defaults.sample, SAMPLE_SLICES, tmp) : await standInSample(tmp);
  const t0 = performance.now();
  const built = await buildWeb({ outdir: join(tmp, 'web'), weights: weightsPath, sample: samplePath, quiet: true });
  timings.buildMs = performance.now() - t0;
  outdir = built.outdir;
  sizes = built.sizes;
  const s = await serveDir(outdir, { port: 0 });
  server = s.server;
  origin = s.url;
  const t1 = performance.now();
  context = await launch(CHROMIUM_ARGS);
  timings.launchMs = performance.now() - t1;
  page = context.pages()[0] ?? (await context.newPage());
  watch(page, problems);
}, 120_000);

afterAll(async () => {
  await context?.close().catch(() => {});
  if (server) {
    server.closeAllConnections();
    await new Promise<void>((r) => server!.close(() => r()));
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  console.log(
    `web test: build ${timings.buildMs?.toFixed(0)} ms, Chromium launch ${timings.launchMs?.toFixed(0)} ms, ` +
      Object.entries(timings)
        .filter(([k]) => !['buildMs', 'launchMs'].includes(k))
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
        .join(', ') +
      `; bundle: ${Object.entries(sizes)
        .filter(([n]) => /\.(js|css|html)$/.test(n))
        .map(([n, b]) => `${n} ${(b / 1024).toFixed(0)} KiB`)
        .join(', ')}`,
  );
});

describe('web page (headless Chromium, WebGPU on SwiftShader)', () => {
  it('is plain static files with relative paths', () => {
    const html = readFileSync(join(outdir, 'index.html'), 'utf8');
    expect(html).not.toMatch(/(src|href)="\/(?!\/)/);
    for (const f of ['index.html', 'style.css', 'app.js', 'worker.js', 'weights.safetensors', 'sample/manifest.json']) expect(sizes[f], f).toBeGreaterThan(0);
    const worker = readFileSync(join(outdir, 'worker.js'), 'utf8');
    expect(worker).not.toMatch(/^\s*import\s[^;]*?\bfrom\s*["'](node:[^"']*|webgpu)["']/m);
  });

  it('loads with no console errors and names its WebGPU adapter', async () => {
    const t0 = performance.now();
    await page.goto(origin, { waitUntil: 'load' });
    await page.waitForFunction('window.covidctReady === true && window.covidct.adapter !== null', undefined, { timeout: 30_000 });
    timings.loadToAdapter = performance.now() - t0;
    const s = await state();
    expect(s.adapter).toMatch(/swiftshader/i);
    expect(s.isSoftware).toBe(true);
    expect(await page.locator('#banner-software').textContent()).toMatch(/software GPU.*slowly/);
    expect(problems).toEqual([]);
  }, 60_000);

  it('runs the sample to the Node result (patient probabilities within TOL, lung mask voxel for voxel)', async () => {
    const t0 = performance.now();
    const s = await runAndSettle(page, () => page.click('#sample'));
    timings.sampleToResult = performance.now() - t0;
    expect(s.error, 'the page reported an error').toBeNull();
    const report = s.report!;
    expect(report.schema).toBe('covidct-report');
    expect(s.files).toEqual(expect.arrayContaining(['report.json', 'lung_mask.nii.gz', 'infection.nii.gz']));

    // The Node side: the same sample file, weights, batch and API.
    const { gpu, cache } = await testGpu();
    // A plain Uint8Array, as the page has: src/io/safetensors.ts toAlignedLE copies with raw.slice(), which on a
    // Node Buffer is a view, not a copy, so f16 weights read through a Buffer decode wrongly (reported).
    const wbytes = new Uint8Array(readFileSync(weightsPath));
    const engine = await TwoStageEngine.load(gpu, openWeights(wbytes, 'weights.safetensors'), { batch: report.model.batch, cache });
    try {
      const volume = await readNifti(readFileSync(samplePath), samplePath);
      const node = await analyzeVolume(engine, volume, { weightsSha256: await sha256Hex(wbytes) });
      expect(report.weights.sha256).toBe(node.report.weights.sha256);
      expect(report.input.dims).toEqual(node.report.input.dims);
      // The page's lung_mask.nii.gz (made in the worker by makeOutputFiles) read back by our reader, against Node's.
      const mask = await readNifti(await download(page, 'lung_mask.nii.gz'), 'lung_mask.nii.gz');
      expect(mask.dims).toEqual(volume.dims);
      expect(Array.from(mask.affine)).toEqual(Array.from(volume.affine));
      const nodeMask = node.lungMask;
      let lung = 0;
      let differ = 0;
      for (let i = 0; i < nodeMask.length; i++) {
        lung += nodeMask[i]!;
        if (mask.data[i] !== nodeMask[i]) differ++;
      }
      const names: string[] = node.report.model.classNames;
      const slicesGot = Float32Array.from(report.slices.flatMap((x: { probabilities: Record<string, number> }) => names.map((n) => x.probabilities[n]!)));
      const slicesWant = Float32Array.from(node.report.slices.flatMap((x) => names.map((n) => x.probabilities[n]!)));
      const sliceErr = relL2(slicesGot, slicesWant);
      console.log(`web parity: ${differ} of ${nodeMask.length} lung mask voxels differ (${lung} lung in Node's); slice probabilities relL2 ${sliceErr.toExponential(2)}; ` +
        `patient ${JSON.stringify(report.patient.probabilities)} vs Node ${JSON.stringify(node.report.patient.probabilities)}; adapters ${report.adapter.name} / ${node.report.adapter.name}`);
      expect(lung, 'the Node lung mask is empty: the comparison would prove nothing').toBeGreaterThan(0);
      expect(lung, 'the Node lung mask is everything').toBeLessThan(nodeMask.length);
      expect(differ, `lung mask voxels that differ (of ${nodeMask.length}, ${lung} lung)`).toBe(0);
      expect(sliceErr, 'slice probabilities').toBeLessThanOrEqual(TOL);
      if (node.report.patient.lungFound) {
        const want = Float32Array.from(names.map((n) => node.report.patient.probabilities![n]!));
        const got = Float32Array.from(names.map((n) => report.patient.probabilities[n]));
        expect(relL2(got, want), `patient probabilities page ${got} vs Node ${want}`).toBeLessThanOrEqual(TOL);
        expect(report.patient.label).toBe(node.report.patient.label);
      } else {
        expect(report.patient.lungFound).toBe(false);
      }
      // The files the CLI writes, from the same code: same names.
      expect(s.files.slice().sort()).toEqual((await makeOutputFiles(node)).map((f) => f.name).sort());
    } finally {
      engine.destroy();
    }
    // The card and the chart show the report.
    if (report.patient.lungFound) expect(await page.locator('#patient-label').textContent()).toBe(report.patient.label);
    expect(await page.locator('#chart svg polyline').count()).toBe(report.model.classNames.length);
    expect(await page.locator('#card').textContent()).toContain(report.adapter.name);
    // The weights' banner: these are untrained or synthetic.
    expect(await page.locator('#banner-weights').textContent()).toMatch(/untrained|synthetic|unknown/i);
    // A click on the chart moves the viewer to that slice; the keys move it on.
    const n = report.slices.length;
    const box = (await page.locator('#chart svg').boundingBox())!;
    const target = n - 1;
    // web/chart.ts: viewBox 600 wide, plot from x = 34 to 592.
    await page.locator('#chart svg').click({ position: { x: box.width * ((34 + ((target + 0.5) / n) * (600 - 42)) / 600), y: box.height / 2 } });
    await expect.poll(() => page.locator('#readout').textContent()).toMatch(new RegExp(`^slice ${target} `));
    await page.locator('#viewer').focus();
    await page.keyboard.press('PageDown');
    await expect.poll(() => page.locator('#readout').textContent()).toMatch(new RegExp(`^slice ${target - 1} `));
    expect(await page.locator('#readout').textContent()).toMatch(/-?\d+ HU/);
    await page.keyboard.press('l');
    expect(await page.locator('#show-lung').isChecked()).toBe(false);
    await page.keyboard.press('l');
    mkdirSync(IMG, { recursive: true });
    await page.locator('#viewer-pane').screenshot({ path: join(IMG, 'web-viewer.png') });
    await page.locator('#side').screenshot({ path: join(IMG, 'web-result.png') });
    expect(problems).toEqual([]);
  }, RUN_MS + 60_000);

  it('says what is wrong (not a scan, an unsupported transfer syntax), offers the series of a folder, cancels, and runs the next folder', async () => {
    let s = await runAndSettle(page, () => page.setInputFiles('#pick-files', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('these are my notes, not a scan\n'.repeat(20)) }), 30_000);
    expect(s.error?.kind).toBe('not-a-scan');
    expect(await page.locator('#banners .banner.error').last().textContent()).toMatch(/notes\.txt: not a DICOM or NIfTI file/);

    s = await runAndSettle(page, () => page.setInputFiles('#pick-folder', join(DICOM, 'unsupported_ts')), 30_000);
    expect(s.error?.kind).toBe('unsupported');
    expect(await page.locator('#banners .banner.error').last().textContent()).toMatch(/transfer syntax/i);

    // Two series and a localizer: the list shows them, the CLI's choice selected; Cancel stops the run.
    s = await runAndSettle(page, async () => {
      await page.setInputFiles('#pick-folder', join(DICOM, 'multi'));
      await page.waitForFunction('window.covidct.series.length >= 2 && window.covidct.progress && /analys|prepar/.test(window.covidct.progress.stage)', undefined, { timeout: 60_000 });
      await page.click('#cancel');
    });
    expect(s.error?.kind).toBe('cancelled');
    expect(await page.locator('#series-box').isVisible()).toBe(true);
    expect(await page.locator('#series option').count()).toBe(s.series.length);
    expect(await page.locator('#banner-cancelled').textContent()).toMatch(/cancelled/i);

    // The next folder runs to a result: DICOM files through the folder input, JPEG-LS (the codec's chunk loads).
    const t0 = performance.now();
    s = await runAndSettle(page, () => page.setInputFiles('#pick-folder', join(DICOM, 'jpegls')));
    timings.dicomFolder = performance.now() - t0;
    expect(s.error).toBeNull();
    expect(s.report!.input.format).toBe('dicom');
    expect(s.report!.input.transferSyntaxes).toEqual(['1.2.840.10008.1.2.4.80']);
    expect(s.report!.slices.length).toBe(5);
    expect(await page.locator('#series-box').isVisible()).toBe(false);
    // Problems are shown in the page, never thrown: no console errors.
    expect(problems).toEqual([]);
  }, 2 * RUN_MS);

  it('says so when the browser has no WebGPU', async () => {
    const ctx = await launch(NO_WEBGPU_ARGS);
    try {
      const p = ctx.pages()[0] ?? (await ctx.newPage());
      const seen: string[] = [];
      watch(p, seen);
      await p.goto(origin, { waitUntil: 'load' });
      await p.waitForFunction('window.covidct && window.covidct.error && window.covidct.error.kind === "no-webgpu"', undefined, { timeout: 30_000 });
      const text = await p.locator('#banners .banner.error').first().textContent();
      expect(text).toMatch(/WebGPU/);
      expect(text).toMatch(/Chrome/);
      expect(text).toMatch(/enable-unsafe-webgpu/);
      // The buttons still answer, with the same message.
      const s = await runAndSettle(p, () => p.click('#sample'), 30_000);
      expect(s.error?.kind).toBe('no-webgpu');
      expect(seen).toEqual([]);
    } finally {
      await ctx.close();
    }
  }, 60_000);
});
