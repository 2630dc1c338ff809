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

export default defineConfig({
  plugins: [wgslText],
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    poolOptions: { forks: { singleFork: true } },
  },
});
