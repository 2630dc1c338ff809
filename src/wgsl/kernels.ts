/**
 * The kernel library: every file in kernels/, embedded as text at build time (esbuild's text loader, a small
 * vitest plugin in tests), so the same code runs in Node and in a browser with no file access.
 * Add a kernel file here when you add one to kernels/.
 */
import common from '../../kernels/common.wgsl';
import elementwise from '../../kernels/elementwise.wgsl';
// (add kernel imports above this line)

/** kernels/<name>.wgsl text, by name without the extension. */
export const KERNELS: Record<string, string> = {
  common,
  elementwise,
  // (add kernels above this line)
};

/** Looks up a kernel file for `#include "name.wgsl"` and for dispatches. */
export function kernelSource(name: string): string | undefined {
  return KERNELS[name.replace(/\.wgsl$/, '')];
}
