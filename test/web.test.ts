// The web page end to end in Debian's headless Chromium (playwright-core with executablePath, never a downloaded
// browser; WebGPU on SwiftShader, flags as test/browser.test.ts): web/build.mjs builds the page into a temporary
// folder with the bundled weights and, as its sample, the middle SAMPLE_SLICES slices of the bundled study (stand-ins
// when a checkout has neither), web/serve.mjs serves it, and the tests drive ONE page as a user would: the sample
// button, the file and folder inputs, drag and drop, the series list, Cancel, other weights, the chart and the keys.
// The sample's result is held to the Node side's (the same readers, analyzeVolume and makeOutputFiles on
// dawn.node): patient probabilities within the parity tolerance (TOL, relative L2) and the lung mask file voxel for
// voxel. Faults are injected from the test without hooks in the product: a lost GPU by patching
// GPUDevice.prototype.createCommandEncoder inside the page's worker (playwright's Worker.evaluate) to destroy the
// device, weights too large for the GPU by the bundled file with its config's input size changed in memory. The
// scans are small (1-batch DICOM folders cut from the committed fixtures at test time) and the compiled model is
// reused between runs, so the file takes a few minutes on SwiftShader. Screenshots of the viewer and the result
// card go to COVIDCT_SCREENSHOTS=docs/img (small PNGs, for the README and docs/web.md), else to a temporary folder.
import { defaultWeights } from '../src/node/default-weights.js';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page, type Worker } from 'playwright-core';
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
import { chooseSeries, scanDicomFiles } from '../src/io/dicom/index.js';
import { describeProblem } from '../web/problems.js';
import { relL2, ROOT, TOL } from './fixtures.js';
import { testGpu } from './gpu.js';
// @ts-expect-error plain ESM build script without types
import { buildWeb } from '../web/build.mjs';
// @ts-expect-error plain ESM server without types
import { CONTENT_SECURITY_POLICY, serveDir } from '../web/serve.mjs';
import { createServer, type IncomingMessage } from 'node:http';
import { chooseSeries as chooseSeriesSrc, readDicomSeries } from '../src/io/dicom/index.js';
import { lpsToRas } from '../src/volume/affine.js';
import { TRANSFER_SYNTAX_FIXTURES } from './transfer-syntaxes.js';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
/** The same browser with WebGPU off: Chromium on Linux exposes no adapter without --enable-unsafe-webgpu. */
const NO_WEBGPU_ARGS = CHROMIUM_ARGS.filter((a) => a !== '--enable-unsafe-webgpu' && a !== '--use-webgpu-adapter=swiftshader').concat('--disable-features=WebGPU,Vulkan');

const DICOM = join(ROOT, 'test/fixtures/scans/dicom');
/** Screenshots go to COVIDCT_SCREENSHOTS (set it to docs/img to refresh the README's), else a temporary folder, so a test run leaves the tree clean. */
const IMG = process.env.COVIDCT_SCREENSHOTS ? resolve(ROOT, process.env.COVIDCT_SCREENSHOTS) : mkdtempSync(join(tmpdir(), 'covidct-web-shots-'));
/** The longest a run may take: a model compile and a batch on SwiftShader, on a 2-core machine under heavy load. */
const RUN_MS = 600_000;

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
  progress: { stage: string; done: number; total: number; slicesPerSec: number | null } | null;
  series: { key: string; uid: string; description: string; slices: number; rows: number; columns: number }[];
  chosenSeries: string | null;
  seconds: number | null;
  viewerReady: boolean;
}

/**
 * Stand-ins for a checkout without the bundled weights or sample (web/build.mjs's defaults: the trained
 * weights/trained/synthetic-small.safetensors, tiny config at 128 x 128, and samples/synthetic-covid.nii.gz, 31
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

/**
 * Slices of the bundled sample the test keeps (the middle ones): SwiftShader takes seconds per slice. Two are one
 * GPU batch (the page's batch on a software adapter); the chunking across batches is the Node tests' part.
 */
const SAMPLE_SLICES = 2;

/**
 * The input size the page's model runs at here: the bundled weights with their config's input size set to 64 (the
 * header rewritten, every tensor as it is; the model is fully convolutional). At the file's own 128 x 128 one GPU batch
 * on SwiftShader under CI's load took more than the 10 minutes a run may take; the page is tested against Node with
 * the same file, so the parity it checks does not depend on the size.
 */
const WEB_INPUT_SIZE = 64;

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
let folders: { jpegls2: string; twoSeries: string };
/** The report and lung mask of the jpegls-2 folder through the folder input, for the drop to equal. */
let viaInput: { report: Record<string, any>; mask: Uint8Array } | null = null;

async function state(p: Page = page): Promise<PageState> {
  return (await p.evaluate('window.covidct')) as PageState;
}

/** Runs `action` (which starts a run in the page) and waits until that run ends; returns the page's state. */
async function runAndSettle(p: Page, action: () => Promise<unknown>, timeout = RUN_MS): Promise<PageState> {
  const before = (await state(p)).started;
  await action();
  // A run starts at once (a drop or a pick that gives the worker nothing starts none): fail fast if not.
  await p.waitForFunction((n) => (window as unknown as { covidct: PageState }).covidct.started > n, before, { timeout: 15_000, polling: 100 }).catch(() => {
    throw new Error('the action started no run in the page');
  });
  await p
    .waitForFunction(
      (n) => {
        const s = (window as unknown as { covidct: PageState }).covidct;
        return s.started > n && s.settled === s.started;
      },
      before,
      { timeout, polling: 250 },
    )
    .catch(async (e: Error) => {
      const s = await state(p);
      throw new Error(`${e.message.split('\n')[0]}; the page's run was at ${JSON.stringify(s.progress)}, error ${JSON.stringify(s.error)}`);
    });
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

/**
 * Small DICOM folders cut from the committed fixtures (weights/make_dicom_fixtures.py), so each run is one GPU batch:
 * `jpegls-2`, the first two slices of test/fixtures/scans/dicom/jpegls (JPEG-LS, so the codec's chunk loads in the
 * page); `two-series`, from test/fixtures/scans/dicom/multi: 3 slices of the "thin" series (the CLI's choice: the
 * CT series with the most slices), 2 of "thick", the thick series' localizer, a dose SR and a text file.
 */
function smallFolders(dir: string): { jpegls2: string; twoSeries: string } {
  const cut = (name: string, from: string, files: string[]) => {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    for (const f of files) copyFileSync(join(DICOM, from, f), join(d, f));
    return d;
  };
  return {
    jpegls2: cut('jpegls-2', 'jpegls', ['slice000.dcm', 'slice001.dcm']),
    twoSeries: cut('two-series', 'multi', ['b0.dcm', 'b1.dcm', 'b2.dcm', 'a0.dcm', 'a1.dcm', 'scout.dcm', 'dose_sr.dcm', 'README.txt']),
  };
}

/** The files of a folder as name and bytes (sorted by name). */
function filesOf(dir: string): { name: string; bytes: Uint8Array }[] {
  return readdirSync(dir)
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(readFileSync(join(dir, name))) }));
}

/**
 * Drops files on the drop zone as a script can: File objects made in the page from these bytes, in a DataTransfer
 * of its own, through dragenter, dragover and drop events. Chromium gives such a DataTransfer no file system
 * entries (webkitGetAsEntry() is null), so this is the page's path that falls back to `dataTransfer.files`.
 * Returns whether the page accepted the drag (dragenter and dragover cancelled: a drop is allowed there) and
 * whether the drop zone was highlighted meanwhile.
 */
async function dropByScript(p: Page, files: { name: string; bytes: Uint8Array }[]): Promise<{ accepted: boolean[]; highlighted: boolean; entries: (string | null)[] }> {
  return p.evaluate((list) => {
    const dt = new DataTransfer();
    for (const f of list) dt.items.add(new File([new Uint8Array(f.bytes)], f.name, { type: 'application/octet-stream' }));
    const zone = document.getElementById('drop')!;
    const entries = Array.from(dt.items).map((i) => i.webkitGetAsEntry()?.fullPath ?? null);
    const fire = (type: string) => zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
    const accepted = [!fire('dragenter'), !fire('dragover')];
    const highlighted = zone.classList.contains('over');
    fire('drop');
    return { accepted, highlighted, entries };
  }, files.map((f) => ({ name: f.name, bytes: Array.from(f.bytes) })));
}

/**
 * Drops paths of this machine on the drop zone as the user's file manager would: Chromium's own drag and drop
 * (CDP Input.dispatchDragEvent, the browser side of a drag from outside), so a folder arrives as a directory entry
 * that the page walks, with each file's path inside it.
 */
async function dropByBrowser(p: Page, paths: string[]): Promise<void> {
  await p.locator('#drop').scrollIntoViewIfNeeded();
  const box = (await p.locator('#drop').boundingBox())!;
  const cdp = await p.context().newCDPSession(p);
  try {
    const at = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
    const data = { items: [], files: paths, dragOperationsMask: 1 };
    for (const type of ['dragEnter', 'dragOver', 'drop'] as const) await cdp.send('Input.dispatchDragEvent', { type, ...at, data });
  } finally {
    await cdp.detach();
  }
}

/** The page's analysis worker (web/worker.js): the faults are injected there. */
async function analysisWorker(p: Page): Promise<Worker> {
  await expect.poll(() => p.workers().some((w) => /\/worker\.js$/.test(w.url())), { timeout: 10_000 }).toBe(true);
  return p.workers().find((w) => /\/worker\.js$/.test(w.url()))!;
}

/**
 * The bundled weights file with its config's input size set to `size` (safetensors: the header's __metadata__
 * rewritten, the tensors' bytes as they are): a model whose activations exceed any GPU's buffer limits.
 */
function weightsWithInputSize(bytes: Uint8Array, size: number): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as { __metadata__: Record<string, string> };
  const config = JSON.parse(header.__metadata__['covidct.config']!) as { input_size: number };
  config.input_size = size;
  header.__metadata__['covidct.config'] = JSON.stringify(config);
  const raw = new TextEncoder().encode(JSON.stringify(header));
  const head = new Uint8Array(Math.ceil(raw.length / 8) * 8).fill(0x20);
  head.set(raw);
  const out = new Uint8Array(8 + head.length + (bytes.length - 8 - n));
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  out.set(bytes.subarray(8 + n), 8 + head.length);
  return out;
}

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium ('apt-get install -y chromium')`).toBe(true);
  tmp = mkdtempSync(join(tmpdir(), 'covidct-web-'));
  const defaults = { weights: defaultWeights().path, sample: join(ROOT, 'samples/synthetic-covid.nii.gz') };
  if (existsSync(defaults.weights)) {
    weightsPath = join(tmp, 'synthetic-small-web.safetensors');
    writeFileSync(weightsPath, weightsWithInputSize(new Uint8Array(readFileSync(defaults.weights)), WEB_INPUT_SIZE));
  } else weightsPath = await standInWeights(tmp);
  samplePath = existsSync(defaults.sample) ? await cropSlices(defaults.sample, SAMPLE_SLICES, tmp) : await standInSample(tmp);
  folders = smallFolders(join(tmp, 'scans'));
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
  it('tells the engine\'s errors apart by name: GpuLimitError is too large, GpuDeviceError a lost GPU', () => {
    const named = (name: string, message: string) => Object.assign(new Error(message), { name });
    const limit = describeProblem(named('GpuLimitError', 'stage 1 needs a 4.0 GiB buffer; maxBufferSize is 2.0 GiB here: use a smaller input size'), false);
    expect(limit.kind).toBe('too-large');
    expect(limit.message).toMatch(/too large for this GPU's limits: stage 1 needs a 4\.0 GiB buffer; maxBufferSize is 2\.0 GiB/);
    // As it arrives from another bundle or through a structured clone: a plain object with the name.
    expect(describeProblem({ name: 'GpuLimitError', message: 'x' }, false).kind).toBe('too-large');
    const lost = describeProblem(named('GpuDeviceError', 'readback failed: device lost (destroyed): '), false);
    expect(lost.kind).toBe('gpu-lost');
    expect(lost.message).toMatch(/fresh device/);
    expect(describeProblem(named('Error', 'limit'), true).kind).toBe('cancelled');
  });

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
    // Predicates as functions, not strings: the page's policy forbids evaluating strings (no 'unsafe-eval').
    await page.waitForFunction(() => (window as unknown as { covidct: PageState; covidctReady?: boolean }).covidctReady === true && (window as unknown as { covidct: PageState; covidctReady?: boolean }).covidct.adapter !== null, undefined, { timeout: 30_000 });
    timings.loadToAdapter = performance.now() - t0;
    const s = await state();
    expect(s.adapter).toMatch(/swiftshader/i);
    expect(s.isSoftware).toBe(true);
    expect(await page.locator('#banner-software').textContent()).toMatch(/software GPU.*slowly/);
    expect(problems).toEqual([]);
  }, 60_000);

  it('sends its Content-Security-Policy, and a request from the page or its worker to another origin is blocked', async () => {
    // The policy: the header web/serve.mjs sends with every file (the worker's included: a worker is governed by its
    // own response's policy) is the page's meta tag plus frame-ancestors, which only a header can carry.
    const meta = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(readFileSync(join(outdir, 'index.html'), 'utf8'))?.[1];
    expect(meta, 'web/index.html has the policy as a meta tag').toBeTruthy();
    expect(CONTENT_SECURITY_POLICY).toBe(`${meta}; frame-ancestors 'none'`);
    for (const file of ['', 'worker.js', 'app.js', 'weights.safetensors']) {
      const res = await fetch(new URL(file, origin));
      expect(res.headers.get('content-security-policy'), file || 'index.html').toBe(CONTENT_SECURITY_POLICY);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      await res.arrayBuffer();
    }
    const directives = Object.fromEntries(meta!.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k!, v]));
    expect(directives['default-src']).toEqual(["'none'"]);
    expect(directives['script-src']).toEqual(["'self'", "'wasm-unsafe-eval'"]);
    expect(directives['worker-src']).toEqual(["'self'"]);
    expect(directives['connect-src']).toEqual(["'self'", 'blob:']);

    // Another origin (another port of this machine) that counts what reaches it.
    const reached: string[] = [];
    const other = createServer((req: IncomingMessage, res) => {
      reached.push(`${req.method} ${req.url}`);
      res.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'text/plain' }).end('leaked');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', () => r()));
    const elsewhere = `http://127.0.0.1:${(other.address() as { port: number }).port}/`;
    const before = problems.length;
    try {
      // From the page: every way a script sends data out.
      const page_ = (await page.evaluate(async (url) => {
        const violations: string[] = [];
        document.addEventListener('securitypolicyviolation', (e) => violations.push(e.effectiveDirective));
        const outcome: Record<string, string> = {};
        const attempt = async (name: string, f: () => Promise<unknown>) => {
          try {
            await f();
            outcome[name] = 'sent';
          } catch (e) {
            outcome[name] = `blocked (${(e as Error).name})`;
          }
        };
        await attempt('fetch', () => fetch(`${url}fetch`, { method: 'POST', body: 'scan bytes', mode: 'no-cors' }));
        await attempt('xhr', () => new Promise((resolve, reject) => {
          const x = new XMLHttpRequest();
          x.open('POST', `${url}xhr`);
          x.onload = resolve;
          x.onerror = () => reject(new Error('xhr error'));
          x.send('scan bytes');
        }));
        await attempt('image', () => new Promise((resolve, reject) => {
          const img = new Image();
          img.onload = resolve;
          img.onerror = () => reject(new Error('image error'));
          img.src = `${url}image`;
        }));
        outcome.beacon = navigator.sendBeacon(`${url}beacon`, 'scan bytes') ? 'queued' : 'refused';
        await attempt('websocket', () => new Promise((resolve, reject) => {
          const ws = new WebSocket(url.replace('http', 'ws') + 'ws');
          ws.onopen = resolve;
          ws.onerror = () => reject(new Error('websocket error'));
        }));
        await new Promise((r) => setTimeout(r, 500));
        return { outcome, violations };
      }, elsewhere)) as { outcome: Record<string, string>; violations: string[] };
      // From the worker, which holds the scan.
      const worker = await analysisWorker(page);
      const fromWorker = (await worker.evaluate(async (url) => {
        try {
          await fetch(`${url}worker`, { method: 'POST', body: 'scan bytes', mode: 'no-cors' });
          return 'sent';
        } catch (e) {
          return `blocked (${(e as Error).name})`;
        }
      }, elsewhere)) as string;
      await new Promise((r) => setTimeout(r, 300));
      console.log(`web CSP: page ${JSON.stringify(page_.outcome)}, violations ${page_.violations.join(', ')}; worker ${fromWorker}; reached the other origin: ${reached.length}`);
      expect(reached, 'requests that reached another origin').toEqual([]);
      for (const k of ['fetch', 'xhr', 'image', 'websocket']) expect(page_.outcome[k], k).toMatch(/^blocked/);
      expect(fromWorker).toMatch(/^blocked/);
      expect(page_.violations).toEqual(expect.arrayContaining(['connect-src', 'img-src']));
    } finally {
      other.closeAllConnections();
      await new Promise<void>((r) => other.close(() => r()));
      // The browser's reports of what it refused here are this test's, not problems of the page.
      const mine = problems.splice(before);
      for (const m of mine) expect(m).toMatch(/Content Security Policy|ERR_BLOCKED_BY_CSP|127\.0\.0\.1:\d+\/(fetch|xhr|image|beacon|ws|worker)/);
    }
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
      if (node.report.patient.probabilities) {
        const want = Float32Array.from(names.map((n) => node.report.patient.probabilities![n]!));
        const got = Float32Array.from(names.map((n) => report.patient.probabilities[n]));
        expect(relL2(got, want), `patient probabilities page ${got} vs Node ${want}`).toBeLessThanOrEqual(TOL);
        expect(report.patient.label).toBe(node.report.patient.label);
      } else {
        expect(report.patient.probabilities).toBeNull(); // no lung, not a chest CT, or no class (report 1.2)
        expect(report.patient.reasons.label).toBe(node.report.patient.reasons.label);
      }
      // The files the CLI writes, from the same code: same names.
      expect(s.files.slice().sort()).toEqual((await makeOutputFiles(node)).map((f) => f.name).sort());
    } finally {
      engine.destroy();
    }
    // The card and the chart show the report.
    if (report.patient.lungFound) expect(await page.locator('#patient-label').textContent()).toBe(report.patient.label ?? 'no class');
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

  it('says what is wrong (not a scan, an unsupported transfer syntax) and takes the next file', async () => {
    let s = await runAndSettle(page, () => page.setInputFiles('#pick-files', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('these are my notes, not a scan\n'.repeat(20)) }), 30_000);
    expect(s.error?.kind).toBe('not-a-scan');
    expect(await page.locator('#banners .banner.error').last().textContent()).toMatch(/notes\.txt: not a DICOM or NIfTI file/);

    s = await runAndSettle(page, () => page.setInputFiles('#pick-folder', join(DICOM, 'unsupported_ts')), 30_000);
    expect(s.error?.kind).toBe('unsupported');
    expect(await page.locator('#banners .banner.error').last().textContent()).toMatch(/transfer syntax/i);
    expect(problems).toEqual([]);
  }, 60_000);

  it('weights too large for the GPU give the too-large message; the bundled weights then run a DICOM folder through the folder input', async () => {
    // The bundled weights with a 16384 x 16384 input: the first convolution's output alone is 8 GiB a slice.
    const huge = weightsWithInputSize(new Uint8Array(readFileSync(weightsPath)), 16384);
    await page.setInputFiles('#pick-weights', { name: 'huge-input.safetensors', mimeType: 'application/octet-stream', buffer: Buffer.from(huge) });
    expect(await page.locator('#weights-name').textContent()).toBe('huge-input.safetensors');
    const t0 = performance.now();
    let s = await runAndSettle(page, () => page.setInputFiles('#pick-folder', folders.jpegls2), 60_000);
    timings.tooLarge = performance.now() - t0;
    const banner = (await page.locator('#banners .banner.error').last().textContent()) ?? '';
    console.log(`web too-large: ${s.error?.kind}: ${s.error?.message.slice(0, 300)}`);
    expect(s.error?.kind, s.error?.message).toBe('too-large');
    expect(banner).toMatch(/too large for this GPU's limits/);
    // The engine's GpuLimitError names the limit, the size needed and the device's value.
    expect(banner).toMatch(/max\w*(Buffer|Binding)\w*Size/);

    // Back to the bundled weights: the same folder runs (the bundled engine compiled for the sample is reused).
    await page.click('#weights-reset');
    // The bundled weights are named by their file (web/build.mjs copies them to weights.safetensors).
    expect(await page.locator('#weights-name').textContent()).toBe(`${basename(weightsPath)} (bundled with the page)`);
    const t1 = performance.now();
    s = await runAndSettle(page, () => page.setInputFiles('#pick-folder', folders.jpegls2));
    timings.dicomFolder = performance.now() - t1;
    expect(s.error).toBeNull();
    const report = s.report!;
    expect(report.weights.name).toBe(`${basename(weightsPath)} (bundled with the page)`);
    expect(report.input.format).toBe('dicom');
    expect(report.input.path).toBe('jpegls-2');
    expect(report.input.transferSyntaxes).toEqual(['1.2.840.10008.1.2.4.80']);
    expect(report.slices.length).toBe(2);
    expect(await page.locator('#series-box').isVisible()).toBe(false);
    viaInput = { report, mask: await download(page, 'lung_mask.nii.gz') };
    expect(problems).toEqual([]);
  }, RUN_MS + 60_000);

  it('a folder dropped on the page (Chromium\'s own drag and drop) gives the same scan and result as the folder input', async () => {
    expect(viaInput, 'needs the folder-input run of the test before').not.toBeNull();
    const t0 = performance.now();
    const s = await runAndSettle(page, () => dropByBrowser(page, [folders.jpegls2]));
    timings.droppedFolder = performance.now() - t0;
    expect(s.error).toBeNull();
    const report = s.report!;
    // The files came with their paths inside the folder, as from the folder input: the same input, the same result.
    expect(report.input).toEqual(viaInput!.report.input);
    expect(report.slices).toEqual(viaInput!.report.slices);
    expect(report.patient).toEqual(viaInput!.report.patient);
    expect(await download(page, 'lung_mask.nii.gz')).toEqual(viaInput!.mask);
    expect(problems).toEqual([]);
  }, RUN_MS);

  it('files dropped by a script: the series list and the CLI\'s choice; a GPU lost mid-analysis; Cancel; the other series picked from the list runs on a fresh device', async () => {
    const files = filesOf(folders.twoSeries);
    // The CLI's reading of the same files (the same names, no folder): the series, and the one it would analyse.
    const scan = await scanDicomFiles(files.map((f) => ({ path: f.name, bytes: f.bytes })), '');
    const cliChoice = chooseSeries(scan);
    const cts = scan.series.filter((x) => x.isCT && x.key !== cliChoice.key && x.slices >= 2);
    expect(cliChoice.description).toBe('thin');
    expect(cts.map((x) => x.description)).toEqual(['thick']);
    const other = cts[0]!;

    // The device goes at the next command encoder the worker makes: the first GPU batch of the analysis (the model
    // is compiled already). The patch is one-shot; requestDevice is counted from here on.
    const worker = await analysisWorker(page);
    await worker.evaluate(() => {
      const g = self as unknown as { covidctTest: { lost: number; devices: number } };
      g.covidctTest = { lost: 0, devices: 0 };
      const enc = GPUDevice.prototype.createCommandEncoder;
      GPUDevice.prototype.createCommandEncoder = function (this: GPUDevice, ...args: Parameters<typeof enc>) {
        GPUDevice.prototype.createCommandEncoder = enc;
        g.covidctTest.lost++;
        this.destroy();
        return enc.apply(this, args);
      };
      const req = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = function (this: GPUAdapter, ...args: Parameters<typeof req>) {
        g.covidctTest.devices++;
        return req.apply(this, args);
      };
    });
    const injected = () => worker.evaluate(() => (self as unknown as { covidctTest: { lost: number; devices: number } }).covidctTest);

    let drag: Awaited<ReturnType<typeof dropByScript>> | null = null;
    let s = await runAndSettle(page, async () => {
      drag = await dropByScript(page, files);
    });
    expect(drag!.entries, 'a script\'s DataTransfer has file system entries in this Chromium: the fallback is not what runs').toEqual(files.map(() => null));
    expect(drag!.accepted, 'dragenter and dragover must be cancelled for the drop to be allowed').toEqual([true, true]);
    expect(drag!.highlighted).toBe(true);
    // The list shows the CLI's series, its choice selected.
    expect(s.series.map((x) => [x.key, x.slices]).sort()).toEqual(scan.series.map((x) => [x.key, x.slices]).sort());
    expect(s.chosenSeries).toBe(cliChoice.key);
    expect(await page.locator('#series-box').isVisible()).toBe(true);
    expect(await page.locator('#series').inputValue()).toBe(cliChoice.key);
    // The lost GPU: the page's message, no console error.
    console.log(`web gpu-lost: ${s.error?.kind}: ${s.error?.message}`);
    expect(await injected()).toEqual({ lost: 1, devices: 0 });
    expect(s.error?.kind, s.error?.message).toBe('gpu-lost');
    expect(await page.locator('#banners .banner.error').last().textContent()).toMatch(/GPU stopped working.*fresh device/);

    // The same files dropped again: a fresh device; Cancel while the model compiles on it is answered at once.
    s = await runAndSettle(page, async () => {
      await dropByScript(page, files);
      await page.waitForFunction(() => (window as unknown as { covidct: PageState; covidctReady?: boolean }).covidct.progress?.stage === 'compiling the model', undefined, { timeout: 60_000 });
      await page.click('#cancel');
    }, 15_000);
    expect(s.error?.kind).toBe('cancelled');
    expect(await page.locator('#banner-cancelled').textContent()).toMatch(/cancelled/i);
    expect(await injected()).toEqual({ lost: 1, devices: 1 });
    expect(await page.locator('#series').inputValue()).toBe(cliChoice.key);

    // The other series picked from the list: read and analysed on the fresh device, with the model compiled for
    // the cancelled run (the worker finished compiling it and kept it).
    const t0 = performance.now();
    s = await runAndSettle(page, () => page.selectOption('#series', other.key));
    timings.otherSeries = performance.now() - t0;
    expect(s.error, s.error?.message).toBeNull();
    const report = s.report!;
    expect(report.input.seriesUID).toBe(other.uid);
    expect(report.input.dims).toEqual([other.columns, other.rows, other.slices]);
    expect(report.slices.length).toBe(other.slices);
    expect(await injected()).toEqual({ lost: 1, devices: 1 });
    expect(await page.locator('#series').inputValue()).toBe(other.key);
    expect(await page.locator('#card').textContent()).toContain('thick');
    expect(problems).toEqual([]);
  }, 2 * RUN_MS);

  it('the page\'s worker bundle reads every transfer syntax voxel for voxel as the sources do', async () => {
    // The built worker (worker.js and its codec chunks, under the page's policy) through its own protocol, no hooks:
    // a second instance made by the page, each fixture folder sent as an 'analyze' request with small seeded random
    // weights (the reading is what is tested; the GPU work is a few 32 x 32 slices), and the CT the worker sends the
    // viewer (our NIfTI writer, RAS) compared with the sources' reading of the same files.
    writeFileSync(join(outdir, 'tiny-random.safetensors'), readFileSync(await standInWeights(tmp)));
    const series: Record<string, string[]> = {};
    for (const [name] of TRANSFER_SYNTAX_FIXTURES) {
      mkdirSync(join(outdir, 'fixtures', name), { recursive: true });
      series[name] = readdirSync(join(DICOM, name)).sort();
      for (const f of series[name]!) copyFileSync(join(DICOM, name, f), join(outdir, 'fixtures', name, f));
    }
    const t0 = performance.now();
    const cts = (await page.evaluate(async (list) => {
      const w = new Worker('worker.js', { type: 'module' });
      const weights = { path: 'tiny-random.safetensors', file: await (await fetch('tiny-random.safetensors')).blob() };
      const out: Record<string, number[] | string> = {};
      let id = 1000;
      try {
        for (const [name, files] of Object.entries(list)) {
          const inputs: { path: string; file: Blob }[] = [];
          for (const f of files) inputs.push({ path: `${name}/${f}`, file: await (await fetch(`fixtures/${name}/${f}`)).blob() });
          const my = ++id;
          out[name] = await new Promise<number[] | string>((resolve) => {
            w.onmessage = (ev) => {
              const m = ev.data;
              if (m.id !== my) return;
              if (m.type === 'result') resolve(Array.from(m.ct as Uint8Array));
              else if (m.type === 'error') resolve(`${m.kind}: ${m.message}`);
            };
            w.postMessage({ type: 'analyze', id: my, files: inputs, weights });
          });
        }
      } finally {
        w.terminate();
      }
      return out;
    }, series)) as Record<string, number[] | string>;
    timings.workerTransferSyntaxes = performance.now() - t0;
    for (const [name, uid] of TRANSFER_SYNTAX_FIXTURES) {
      const ct = cts[name];
      expect(typeof ct === 'string' ? ct : 'ok', `${name} (${uid}) in the worker`).toBe('ok');
      const dir = join(DICOM, name);
      const files = series[name]!.map((n) => ({ path: n, bytes: new Uint8Array(readFileSync(join(dir, n))) }));
      const scan = await scanDicomFiles(files, name);
      const src = await readDicomSeries(scan, chooseSeriesSrc(scan), new Map(files.map((f) => [f.path, f.bytes])));
      const viaWorker = await readNifti(Uint8Array.from(ct as number[]), `${name}.nii`);
      expect(viaWorker.dims, name).toEqual(src.dims);
      expect(viaWorker.data.constructor.name, name).toBe(src.data.constructor.name);
      expect(Array.from(viaWorker.data), `${name}: the worker's voxels`).toEqual(Array.from(src.data));
      const ras = src.space === 'LPS' ? lpsToRas(src.affine) : src.affine;
      // The NIfTI header stores the affine in float32 (sform).
      for (let i = 0; i < 16; i++) expect(Math.abs(viaWorker.affine[i]! - ras[i]!), `${name} affine[${i}]`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(ras[i]!)));
    }
    expect(problems).toEqual([]);
  }, RUN_MS);

  it('says so when the browser has no WebGPU', async () => {
    const ctx = await launch(NO_WEBGPU_ARGS);
    try {
      const p = ctx.pages()[0] ?? (await ctx.newPage());
      const seen: string[] = [];
      watch(p, seen);
      await p.goto(origin, { waitUntil: 'load' });
      await p.waitForFunction(() => (window as unknown as { covidct: PageState; covidctReady?: boolean }).covidct?.error?.kind === 'no-webgpu', undefined, { timeout: 30_000 });
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
