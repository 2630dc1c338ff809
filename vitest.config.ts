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
 * (or swiftshader) runs one; COVIDCT_TEST_HARDWARE=1 runs both on the hardware adapter.
 */
export const SWIFTSHADER_TESTS = ['test/device.test.ts', 'test/ops.test.ts'];

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
      { extends: true, test: { name: 'lavapipe', include: ['test/**/*.test.ts'], env: { COVIDCT_TEST_SOFTWARE: 'lavapipe' }, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'swiftshader', include: SWIFTSHADER_TESTS, env: { COVIDCT_TEST_SOFTWARE: 'swiftshader' }, sequence: { groupOrder: 1 } } },
    ],
  },
});
