// Bundles the engine with esbuild: a Node ESM build (library, CLI, bench) and a browser bundle.
// kernels/*.wgsl are embedded verbatim as text, so the same code runs from npm and from a web page.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { browserHost } from './scripts/esbuild-host.mjs';

// The commit the bundle was built from ('+dirty' with uncommitted changes): the bench reports it, so a bundle
// copied to another machine (a GPU host without the repository's history) still says what code it is.
function buildCommit() {
  try {
    const git = (...a) => execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return git('rev-parse', '--short', 'HEAD') + (git('status', '--porcelain', '--untracked-files=no') ? '+dirty' : '');
  } catch {
    return 'unknown';
  }
}

// The package version, embedded so report.json and the CLI say which release made them.
const version = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')).version;

// What this script writes, removed first: the chunk names carry content hashes, so without this a rebuilt dist kept
// every earlier chunk (and `npm pack` shipped them). dist/types (tsc) and dist/web (web/build.mjs) are not ours.
rmSync(new URL('./dist/chunks', import.meta.url), { recursive: true, force: true });
for (const f of (() => { try { return readdirSync(new URL('./dist', import.meta.url)); } catch { return []; } })()) {
  if (/\.js(\.map)?$/.test(f)) rmSync(new URL(`./dist/${f}`, import.meta.url));
}

const common = { bundle: true, format: 'esm', target: 'es2022', loader: { '.wgsl': 'text' }, sourcemap: true, logLevel: 'warning', define: { __COVIDCT_VERSION__: JSON.stringify(version) } };

await build({
  ...common,
  platform: 'node',
  entryPoints: { index: 'src/index.ts', testing: 'src/testing.ts', cli: 'src/cli/main.ts', bench: 'bench/bench.ts' },
  define: { ...common.define, __COVIDCT_BUILD_COMMIT__: JSON.stringify(buildCommit()) },
  outdir: 'dist',
  // Code splitting: the DICOM codecs (JPEG-LS, JPEG 2000, JPEG Lossless), imported with import() where a series
  // needs them, stay in their own chunks (dist/chunks/) and load only then; shared code is one chunk.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  external: ['webgpu'],
  // jpeg-lossless-decoder-js ships CommonJS as `main` and ESM as `module`: esbuild's Node default (main first) took
  // the CommonJS file, and a dynamic import() of CommonJS split into its own chunk exposes only `default`, so
  // `{ Decoder }` was undefined in dist ("Decoder is not a constructor") while the sources (Node's own interop)
  // worked. ESM first, as the browser builds resolve it.
  mainFields: ['module', 'main'],
  // CommonJS code in an ESM bundle: `require` (the codecs' Node branch requires fs and path) and `__filename` /
  // `__dirname` (cornerstone's Emscripten codecs read __dirname when they start in Node: "__dirname is not
  // defined" without this) are defined per output file, as Node defines them for a CommonJS module.
  banner: {
    js:
      "import { createRequire as __cr } from 'node:module'; import { fileURLToPath as __fu } from 'node:url'; import { dirname as __dn } from 'node:path'; " +
      'const require = __cr(import.meta.url); const __filename = __fu(import.meta.url); const __dirname = __dn(__filename);',
  },
});

await build({
  ...common,
  platform: 'browser',
  entryPoints: { 'covidct.browser': 'src/index.ts', 'covidct-testing.browser': 'src/testing.ts' },
  outdir: 'dist',
  // The DICOM codecs load only when a series needs them (their own chunks, as in the Node build). src/host/node.ts
  // (the file system, dawn.node) is replaced by src/host/browser.ts: the bundle imports no Node module, so an app
  // bundles it for the browser as it is. The codecs' Emscripten Node branch calls require('fs') and
  // require('path') at run time only in Node (never in a browser): left as such calls, not imports.
  splitting: true,
  chunkNames: 'chunks/browser/[name]-[hash]',
  plugins: [browserHost],
  external: ['fs', 'path'],
});

// `node build.mjs --types` (npm run build, and so npm pack's prepack): also the declarations, dist/types, made afresh
// by tsc (its earlier output removed first, so a renamed or deleted module leaves no stale .d.ts behind).
if (process.argv.includes('--types')) {
  rmSync(new URL('./dist/types', import.meta.url), { recursive: true, force: true });
  execFileSync(process.execPath, [fileURLToPath(new URL('./node_modules/typescript/bin/tsc', import.meta.url)), '-p', 'tsconfig.json', '--emitDeclarationOnly'], {
    cwd: fileURLToPath(new URL('.', import.meta.url)),
    stdio: 'inherit',
  });
}
