// Bundles the engine with esbuild: a Node ESM build (library, CLI, bench) and a browser bundle.
// kernels/*.wgsl are embedded verbatim as text, so the same code runs from npm and from a web page.
import { build } from 'esbuild';

const common = { bundle: true, format: 'esm', target: 'es2022', loader: { '.wgsl': 'text' }, sourcemap: true, logLevel: 'warning' };

await build({
  ...common,
  platform: 'node',
  entryPoints: { index: 'src/index.ts', cli: 'src/cli/main.ts', bench: 'bench/bench.ts' },
  outdir: 'dist',
  external: ['webgpu'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
});

await build({
  ...common,
  platform: 'browser',
  entryPoints: { 'covidct.browser': 'src/index.ts' },
  outdir: 'dist',
  external: ['webgpu', 'node:*'],
});
