// Builds the web page into a folder of plain static files with relative paths (default dist/web/):
//   index.html, style.css, app.js (the page and NiiVue), worker.js (readers, engine, analysis, writers),
//   weights.safetensors (the bundled weights) and sample/ (the bundled synthetic study, listed in manifest.json).
// Any static host can serve the folder; `node web/serve.mjs` serves it on localhost.
//   node web/build.mjs [--out DIR] [--weights FILE.safetensors] [--sample FILE_OR_DIR] [--no-minify]
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { browserHost } from '../scripts/esbuild-host.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The bundled weights and sample when none are named: the first that exists. The weights: the package's default,
 * package.json covidct.defaultWeights (the one place its name is written; src/node/default-weights.ts).
 */
const DEFAULT_WEIGHTS = [JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).covidct.defaultWeights];
const DEFAULT_SAMPLE = ['samples/synthetic-covid.nii.gz'];

function firstExisting(list) {
  for (const p of list) if (existsSync(join(ROOT, p))) return join(ROOT, p);
  const dir = join(ROOT, dirname(list[0]));
  if (existsSync(dir)) {
    // Any weights file, or a scan (not the ground-truth masks written beside a sample).
    const found = readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors') || ((f.endsWith('.nii.gz') || f.endsWith('.nii')) && !/\.(lung|infection)\.nii/.test(f)))
      .sort();
    if (found.length) return join(dir, found[0]);
  }
  return null;
}

function filesUnder(dir) {
  const out = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(dir);
  return out;
}

/**
 * Builds the page. Returns the output folder and the size of each file in bytes.
 * @param {{ outdir?: string, weights?: string | null, sample?: string | null, minify?: boolean, quiet?: boolean, plugins?: import('esbuild').Plugin[] }} opts
 */
export async function buildWeb(opts = {}) {
  const outdir = resolve(opts.outdir ?? join(ROOT, 'dist/web'));
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(outdir, { recursive: true });
  const weights = opts.weights === undefined ? firstExisting(DEFAULT_WEIGHTS) : opts.weights;
  const common = {
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    loader: { '.wgsl': 'text' },
    minify: opts.minify !== false,
    sourcemap: 'linked',
    logLevel: 'warning',
    absWorkingDir: ROOT,
    legalComments: 'linked',
    // The bundled weights' file name, for the report and the page (web/bundled.ts).
    define: { __COVIDCT_BUNDLED_WEIGHTS__: JSON.stringify(weights ? basename(weights) : '') },
    // src/host/node.ts (file system, dawn.node) replaced by src/host/browser.ts: the page imports no Node module.
    plugins: [browserHost, ...(opts.plugins ?? [])],
  };
  await build({ ...common, entryPoints: { app: 'web/main.ts' }, outdir });
  // The worker. Split: the DICOM codecs (cornerstone's Emscripten builds, WASM inlined) load as chunks only when a
  // series needs one. Their Node branch requires fs and path, never taken in a browser: left as require() calls
  // (one there would throw, and is never reached).
  await build({
    ...common,
    entryPoints: { worker: 'web/worker.ts' },
    outdir,
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    external: ['fs', 'path'],
  });
  copyFileSync(join(ROOT, 'web/index.html'), join(outdir, 'index.html'));
  copyFileSync(join(ROOT, 'web/style.css'), join(outdir, 'style.css'));

  if (weights) copyFileSync(weights, join(outdir, 'weights.safetensors'));
  else if (!opts.quiet) console.warn('web build: no bundled weights (none in weights/trained/): the page will ask for a .safetensors file');

  const sample = opts.sample === undefined ? firstExisting(DEFAULT_SAMPLE) : opts.sample;
  if (sample) {
    const sdir = join(outdir, 'sample');
    mkdirSync(sdir, { recursive: true });
    const files = statSync(sample).isDirectory() ? filesUnder(sample).map((p) => [p, relative(sample, p)]) : [[sample, basename(sample)]];
    for (const [src, rel] of files) {
      mkdirSync(dirname(join(sdir, rel)), { recursive: true });
      copyFileSync(src, join(sdir, rel));
    }
    const description = `the bundled synthetic sample study (${basename(sample)}, ${files.length} file${files.length > 1 ? 's' : ''})`;
    writeFileSync(join(sdir, 'manifest.json'), JSON.stringify({ description, files: files.map(([, rel]) => rel.split('\\').join('/')) }, null, 1));
  } else if (!opts.quiet) console.warn('web build: no bundled sample (none in samples/): the "Sample study" button will say so');

  const sizes = Object.fromEntries(filesUnder(outdir).map((p) => [relative(outdir, p), statSync(p).size]));
  return { outdir, sizes, weights, sample };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, weights: { type: 'string' }, sample: { type: 'string' }, 'no-minify': { type: 'boolean' } } });
  const t0 = performance.now();
  const r = await buildWeb({
    ...(values.out ? { outdir: values.out } : {}),
    ...(values.weights ? { weights: resolve(values.weights) } : {}),
    ...(values.sample ? { sample: resolve(values.sample) } : {}),
    minify: !values['no-minify'],
  });
  const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
  const shown = Object.entries(r.sizes).filter(([n]) => !n.endsWith('.map') && !n.endsWith('.LEGAL.txt'));
  console.log(`web page built in ${(performance.now() - t0).toFixed(0)} ms into ${relative(process.cwd(), r.outdir) || '.'}:`);
  for (const [name, size] of shown.filter(([n]) => !n.startsWith('sample/'))) console.log(`  ${name.padEnd(38)} ${kib(size).padStart(9)}`);
  const sampleBytes = shown.filter(([n]) => n.startsWith('sample/')).reduce((s, [, b]) => s + b, 0);
  if (sampleBytes) console.log(`  ${'sample/'.padEnd(38)} ${kib(sampleBytes).padStart(9)}`);
}
