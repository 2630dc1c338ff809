import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/** Loads kernels/*.wgsl as text, as the esbuild `text` loader does for the bundles. */
const wgslText = {
  name: 'wgsl-text',
  enforce: 'pre' as const,
  load(id: string) {
    if (!id.endsWith('.wgsl')) return null;
    return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
  },
};

/**
 * The GPU tests run on a software driver (test/gpu.ts): every test file on Mesa's lavapipe (real shader-f16,
 * up to 1024 invocations per workgroup), then a subset on SwiftShader, which differs where the kernels'
 * choices do (no shader-f16, 256 invocations, 12 storage buffers per stage, 1 GiB bindings) and is
 * what Chromium falls back to: the adapter tests, every op against its CPU reference and the host's wait (test/wait.test.ts). The browser tests run
 * Chromium's own SwiftShader whichever project runs them, so they run once. `npx vitest run --project lavapipe`
 * (or swiftshader, lavapipe-128) runs one; COVIDCT_TEST_HARDWARE=1 runs both on the hardware adapter.
 */
export const SWIFTSHADER_TESTS = ['test/device.test.ts', 'test/ops.test.ts', 'test/wait.test.ts'];

/**
 * Project lavapipe-128: lavapipe in a process of its own at 128-bit SIMD (llvmpipe takes the width once per process)
 * for the describe blocks whose names end in "(GPU tiles)" or "(matrix units emulated)" (test/gpu.ts describeAt128):
 * the GPU tiles (tile policy 'auto') and conv2d's matrix-unit GEMM with emulated subgroup matrices. The engine does
 * not run these on lavapipe by default, their results do not depend on the SIMD width (no subgroup builtins), and
 * LLVM compiles them several times slower at the engine's 512 bits: measured cold on the loaded 2-core machine,
 * ops.test.ts alone took 33 minutes on lavapipe at 512 bits, 21 of them in the GPU-tile blocks, and the emulated
 * GEMM's 6 pipelines 202 s of CPU (docs/performance.md, "lavapipe against PyTorch"). Project lavapipe skips those
 * blocks (COVIDCT_TEST_LAVAPIPE_128) and keeps everything the engine runs at 512 bits (tile policy 'software', the
 * subgroup kernel); SwiftShader runs them all (4 lanes there anyway).
 */
export const LAVAPIPE_128_FILES = ['test/ops.test.ts', 'test/graph.test.ts', 'test/parity.test.ts'];
export const LAVAPIPE_128_TESTS = /\((GPU tiles|matrix units emulated)\)/;
const cacheHome = process.env.XDG_CACHE_HOME || (process.env.HOME ? `${process.env.HOME}/.cache` : '/tmp');
/** Mesa's cache for the 128-bit process: never the 512-bit one's (Mesa's key does not include the width). */
const lavapipe128Cache = process.env.MESA_SHADER_CACHE_DIR ? `${process.env.MESA_SHADER_CACHE_DIR}/lavapipe-128` : `${cacheHome}/covidct-lavapipe-128`;

export default defineConfig({
  plugins: [wgslText],
  test: {
    // dist/ built once before the tests (test/global-build.ts): the tests of the built CLI and package use it.
    globalSetup: ['test/global-build.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    projects: [
      { extends: true, test: { name: 'lavapipe', include: ['test/**/*.test.ts'], env: { COVIDCT_TEST_SOFTWARE: 'lavapipe', COVIDCT_TEST_LAVAPIPE_128: 'elsewhere' }, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: 'lavapipe-128',
          include: LAVAPIPE_128_FILES,
          testNamePattern: LAVAPIPE_128_TESTS,
          env: { COVIDCT_TEST_SOFTWARE: 'lavapipe', LP_NATIVE_VECTOR_WIDTH: '128', MESA_SHADER_CACHE_DIR: lavapipe128Cache },
          sequence: { groupOrder: 1 },
        },
      },
      { extends: true, test: { name: 'swiftshader', include: SWIFTSHADER_TESTS, env: { COVIDCT_TEST_SOFTWARE: 'swiftshader' }, sequence: { groupOrder: 2 } } },
    ],
  },
});
