// The browser bundle, end to end: esbuild builds it as build.mjs does, a node:http server on 127.0.0.1 serves it
// with a tiny page, and Debian's headless Chromium (driven by playwright-core, never a downloaded browser) runs
// WebGPU on SwiftShader. The page imports the bundle as an ES module, calls createGpu(), compiles demoNet(2)
// (fused and unfused) and runs it on seeded inputs; the outputs must match runGraphOnCpu in Node.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile } from 'esbuild';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { runGraphOnCpu } from '../src/graph/cpu.js';
import { demoNet } from '../src/models/demo.js';
import { numel } from '../src/ops/op.js';
import { mulberry32, nmse, uniform } from '../src/ops/random.js';

import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';

const BATCH = 2;
const SEED = 1234;

/** The page: imports the bundle as an ES module and exposes one function that runs the demo network. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>covidct browser test</title></head>
<body>
<script type="module">
import * as covidct from './covidct.browser.js';
window.runDemo = async (batch, seed) => {
  try {
    const ms = {};
    let t = performance.now();
    const lap = (name) => { const now = performance.now(); ms[name] = Math.round(now - t); t = now; };
    const gpu = await covidct.createGpu();
    lap('createGpu');
    const shape = [batch, 3, 7, 9];
    const x = covidct.uniform(covidct.mulberry32(seed), shape.reduce((a, b) => a * b, 1), -1, 1);
    const cache = new covidct.PipelineCache(gpu.device);
    const runs = {};
    for (const fuse of [false, true]) {
      const compiled = await covidct.compileGraph(gpu, covidct.demoNet(batch), { fuse, cache });
      lap(\`compile \${fuse ? 'fused' : 'unfused'}\`);
      try {
        const got = await compiled.run({ x });
        lap(\`run \${fuse ? 'fused' : 'unfused'}\`);
        runs[fuse ? 'fused' : 'unfused'] = {
          adapter: got.adapter,
          dispatches: compiled.stats.dispatches,
          outputs: Object.fromEntries(Object.entries(got.outputs).map(([k, v]) => [k, Array.from(v)])),
        };
      } finally {
        compiled.destroy();
      }
    }
    const result = {
      adapterName: gpu.adapterName,
      isSoftware: gpu.isSoftware,
      features: [...gpu.features],
      uncapturedErrors: [...gpu.uncapturedErrors],
      lostReason: gpu.lostReason,
      runs,
      ms,
    };
    gpu.destroy();
    return result;
  } catch (e) {
    return { error: String(e && e.stack ? e.stack : e) };
  }
};
window.bundleLoaded = true;
</script>
</body></html>
`;

interface PageRun {
  adapter: string;
  dispatches: number;
  outputs: Record<string, number[]>;
}
interface PageResult {
  error?: string;
  adapterName: string;
  isSoftware: boolean;
  features: string[];
  uncapturedErrors: string[];
  lostReason: string | null;
  runs: Record<'fused' | 'unfused', PageRun>;
  /** Milliseconds per phase in the page. */
  ms: Record<string, number>;
}

/**
 * Builds the browser bundle with build.mjs's options for it (keep the two in step; the entry adds covidct/testing),
 * in memory, with its metafile.
 */
async function buildBrowserBundle(): Promise<{ js: string; files: Record<string, string>; metafile: Metafile; ms: number }> {
  const t0 = performance.now();
  const root = fileURLToPath(new URL('..', import.meta.url));
  const result = await build({
    bundle: true,
    format: 'esm',
    target: 'es2022',
    loader: { '.wgsl': 'text' },
    platform: 'browser',
    entryPoints: { 'covidct.browser': 'test/browser-entry.ts' },
    outdir: 'dist',
    absWorkingDir: root,
    splitting: true,
    chunkNames: 'chunks/browser/[name]-[hash]',
    external: ['webgpu', 'node:*', 'fs', 'path'],
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const out = result.outputFiles.find((f) => f.path.endsWith('covidct.browser.js'));
  if (!out) throw new Error(`esbuild wrote no covidct.browser.js (got ${result.outputFiles.map((f) => f.path).join(', ')})`);
  // Every output by its URL path under dist/ (the entry and the chunks it imports, the codecs' lazily).
  const dist = join(root, 'dist');
  const files = Object.fromEntries(result.outputFiles.filter((f) => f.path.endsWith('.js')).map((f) => ['/' + relative(dist, f.path).split(sep).join('/'), f.text]));
  return { js: out.text, files, metafile: result.metafile, ms: performance.now() - t0 };
}

/** The outputs a browser loads with the entry: followed through static imports only (not dynamic import()). */
function eagerOutputs(metafile: Metafile, entry: string): string[] {
  const seen = new Set<string>([entry]);
  const todo = [entry];
  while (todo.length) {
    const o = metafile.outputs[todo.pop()!];
    for (const i of o?.imports ?? []) {
      if (i.external || i.kind === 'dynamic-import' || seen.has(i.path)) continue;
      seen.add(i.path);
      todo.push(i.path);
    }
  }
  return [...seen];
}

function serve(files: Record<string, { type: string; body: string }>): Promise<Server> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const file = files[path === '/' ? '/index.html' : path];
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${path}`);
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' }).end(file.body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

let bundle: ReturnType<typeof buildBrowserBundle> | null = null;
const browserBundle = () => (bundle ??= buildBrowserBundle());

let server: Server | null = null;
let context: BrowserContext | null = null;
let userDataDir: string | null = null;

afterAll(async () => {
  await context?.close().catch(() => {});
  if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
  server?.closeAllConnections();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

describe('browser bundle', () => {
  it('has no import a browser would fail on at load time (node: and webgpu only behind dynamic import())', async () => {
    const { js, metafile } = await browserBundle();
    // The DICOM codecs' chunks (loaded by import() when a series needs one) require fs and path in a Node-only
    // branch: not loaded with the entry, so not counted; everything the entry loads statically is.
    const entry = Object.keys(metafile.outputs).find((o) => o.endsWith('covidct.browser.js'))!;
    const eagerFiles = eagerOutputs(metafile, entry);
    expect(eagerFiles.length).toBeGreaterThan(0);
    const imports = eagerFiles.flatMap((o) => metafile.outputs[o]!.imports).filter((i) => i.external);
    const eager = imports.filter((i) => i.kind !== 'dynamic-import');
    expect(eager, `static imports or requires of externals in the browser bundle: ${JSON.stringify(eager)}`).toEqual([]);
    // The same, on the text: no top-level import/export ... from 'node:...' or 'webgpu', no require().
    expect(js).not.toMatch(/^\s*(import|export)\b[^;]*?\bfrom\s*["'](node:[^"']*|webgpu)["']/m);
    expect(js).not.toMatch(/^\s*import\s*["'](node:[^"']*|webgpu)["']/m);
    expect(js).not.toMatch(/require\(\s*["'](node:|webgpu)/);
  });

  it('runs demoNet(2) in headless Chromium on WebGPU and matches the CPU reference', { timeout: 90_000 }, async () => {
    expect(
      existsSync(CHROMIUM),
      `${CHROMIUM} not found: this test runs the browser bundle in Debian's Chromium. Install it with ` +
        `'apt-get install -y chromium' (Debian's package; it also provides the SwiftShader driver the engine uses).`,
    ).toBe(true);
    const { js, files, ms: buildMs } = await browserBundle();
    const tBuilt = performance.now();
    server = await serve({
      '/index.html': { type: 'text/html; charset=utf-8', body: PAGE },
      ...Object.fromEntries(Object.entries(files).map(([path, body]) => [path, { type: 'text/javascript; charset=utf-8', body }])),
    });
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    userDataDir = mkdtempSync(join(tmpdir(), 'covidct-chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      timeout: 30_000,
    });
    const tLaunched = performance.now();
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    const warnings: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.stack ?? e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
      if (m.type() === 'warning') warnings.push(m.text());
    });
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url()}`);
    });

    await page.goto(`${origin}/`, { waitUntil: 'load' });
    await page.waitForFunction('window.bundleLoaded === true', undefined, { timeout: 15_000 }).catch(() => {
      throw new Error(`the page did not finish importing the bundle; problems: ${problems.join('\n') || 'none reported'}`);
    });
    expect(await page.evaluate('typeof navigator.gpu'), 'navigator.gpu in the page (Chromium flags)').toBe('object');

    const result = (await page.evaluate(`window.runDemo(${BATCH}, ${SEED})`)) as PageResult;
    const tRan = performance.now();
    expect(result.error, 'the page threw').toBeUndefined();
    expect(problems, 'page errors / console errors / failed requests').toEqual([]);

    // The adapter is reported, and it is the one the flags ask for.
    expect(result.adapterName).toMatch(/\S/);
    expect(result.adapterName).not.toBe('unknown adapter');
    expect(result.adapterName).toMatch(/swiftshader/i);
    expect(result.isSoftware).toBe(true);
    expect(result.uncapturedErrors).toEqual([]);
    expect(result.lostReason).toBeNull();

    const x = uniform(mulberry32(SEED), numel([BATCH, 3, 7, 9]), -1, 1);
    const ref = runGraphOnCpu(demoNet(BATCH), { x });
    for (const mode of ['unfused', 'fused'] as const) {
      const run = result.runs[mode];
      expect(run.adapter).toBe(result.adapterName);
      expect(Object.keys(run.outputs).sort()).toEqual(Object.keys(ref).sort());
      for (const [name, want] of Object.entries(ref)) {
        const got = Float32Array.from(run.outputs[name]!);
        expect(got.length, `${mode} ${name} length`).toBe(want.length);
        expect(want.some((v) => v !== 0), `reference ${name} is all zeros`).toBe(true);
        const err = nmse(got, want);
        expect(err, `${mode} ${name}: nmse ${err}`).toBeLessThanOrEqual(1e-7);
      }
    }
    expect(result.runs.fused.dispatches).toBeLessThan(result.runs.unfused.dispatches);

    console.log(
      `browser test on '${result.adapterName}': bundle build ${buildMs.toFixed(0)} ms (${(js.length / 1024).toFixed(0)} KiB), Chromium launch ` +
        `${(tLaunched - tBuilt).toFixed(0)} ms, page load + createGpu + compile + run (unfused and fused) ` +
        `${(tRan - tLaunched).toFixed(0)} ms (${Object.entries(result.ms).map(([k, v]) => `${k} ${v} ms`).join(', ')}); ` +
        `features ${result.features.join(', ')}; console warnings: ${warnings.length ? warnings.join(' | ') : 'none'}`,
    );
  });
});
