/**
 * vitest global setup: builds dist/ (node build.mjs: the Node bundle with the CLI, the browser bundles) once before
 * any test file runs, so the tests that run what users run (test/dist.test.ts, test/package.test.ts, the real
 * binary in test/cli.test.ts) test the bundles of the sources under test, never a stale build. A few seconds;
 * skipped with COVIDCT_TEST_NO_BUILD=1 (then dist/ is used as it is). The declarations (dist/types) are built by the
 * packed-package test's `npm pack` (the prepack script), which needs them.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');

export default function setup(): void {
  // Both vitest projects (lavapipe, swiftshader) run the global setup in this one process: build once.
  if (process.env.COVIDCT_TEST_NO_BUILD === '1' || process.env.COVIDCT_TEST_DIST_BUILT === '1') return;
  const t0 = performance.now();
  execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  process.env.COVIDCT_TEST_DIST_BUILT = '1';
  console.log(`dist built for the tests in ${((performance.now() - t0) / 1000).toFixed(1)} s (node build.mjs)`);
}
