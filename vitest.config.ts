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
 * what Chromium falls back to: the adapter tests and every op against its CPU reference. The browser tests run
 * Chromium's own SwiftShader whichever project runs them, so they run once. `npx vitest run --project lavapipe`
 * (or swiftshader, lavapipe-128) runs one; COVIDCT_TEST_HARDWARE=1 runs both on the hardware adapter.
 */
export const SWIFTSHADER_TESTS = ['test/device.test.ts', 'test/ops.test.ts'];

/**
 * The tests that run conv2d's matrix-unit GEMM with emulated subgroup matrices (test/mma-emulation.ts) on lavapipe
 * run in a lavapipe process of their own at 128-bit SIMD (project lavapipe-128): llvmpipe takes the SIMD width once
 * per process, and the emulated GEMM (256 private f32 a lane) takes its LLVM several times longer to compile at the
 * engine's 512 bits (measured cold on the loaded 2-core machine: about 33 s of CPU per GEMM pipeline at 512
 * bits; docs/performance.md, "lavapipe against PyTorch"). What they test is the GEMM's indexing, views and half
 * storage through the rewrite, which the SIMD width does not touch; everything the engine runs at 512 bits keeps
 * its tests in project lavapipe. Their describe blocks carry MMA_EMULATION_TESTS in their names; project lavapipe
 * skips them (COVIDCT_TEST_MMA_EMULATION), SwiftShader runs them (4 lanes there anyway).
 */
export const MMA_EMULATION_FILES = ['test/ops.test.ts', 'test/graph.test.ts', 'test/parity.test.ts'];
export const MMA_EMULATION_TESTS = /\(matrix units emulated\)/;
const cacheHome = process.env.XDG_CACHE_HOME || (process.env.HOME ? `${process.env.HOME}/.cache` : '/tmp');
/** Mesa's cache for the 128-bit process: never the 512-bit one's (Mesa's key does not include the width). */
const lavapipe128Cache = process.env.MESA_SHADER_CACHE_DIR ? `${process.env.MESA_SHADER_CACHE_DIR}/lavapipe-128` : `${cacheHome}/covidct-lavapipe-128`;

export default defineConfig({
  plugins: [wgslText],
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
    projects: [
      { extends: true, test: { name: 'lavapipe', include: ['test/**/*.test.ts'], env: { COVIDCT_TEST_SOFTWARE: 'lavapipe', COVIDCT_TEST_MMA_EMULATION: 'lavapipe-128' }, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: {
          name: 'lavapipe-128',
          include: MMA_EMULATION_FILES,
          testNamePattern: MMA_EMULATION_TESTS,
          env: { COVIDCT_TEST_SOFTWARE: 'lavapipe', LP_NATIVE_VECTOR_WIDTH: '128', MESA_SHADER_CACHE_DIR: lavapipe128Cache },
          sequence: { groupOrder: 1 },
        },
      },
      { extends: true, test: { name: 'swiftshader', include: SWIFTSHADER_TESTS, env: { COVIDCT_TEST_SOFTWARE: 'swiftshader' }, sequence: { groupOrder: 2 } } },
    ],
  },
});
