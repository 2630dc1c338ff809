// Bundles the engine with esbuild: a Node ESM build (library, CLI, bench) and a browser bundle.
// kernels/*.wgsl are embedded verbatim as text, so the same code runs from npm and from a web page.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { build } from 'esbuild';

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
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});

await build({
  ...common,
  platform: 'browser',
  entryPoints: { 'covidct.browser': 'src/index.ts', 'covidct-testing.browser': 'src/testing.ts' },
  outdir: 'dist',
  // The DICOM codecs load only when a series needs them (their own chunks, as in the Node build); their Node
  // branch requires fs and path, never taken in a browser, so those stay external.
  splitting: true,
  chunkNames: 'chunks/browser/[name]-[hash]',
  external: ['webgpu', 'node:*', 'fs', 'path'],
});
