/**
 * The kernel library: every file in kernels/, embedded as text at build time (esbuild's text loader, a small
 * vitest plugin in tests), so the same code runs in Node and in a browser with no file access.
 * Add a kernel file here when you add one to kernels/.
 */
import common from '../../kernels/common.wgsl';
import elementwise from '../../kernels/elementwise.wgsl';
import convgru from '../../kernels/convgru.wgsl';
import resize from '../../kernels/resize.wgsl';
import pool from '../../kernels/pool.wgsl';
import linear from '../../kernels/linear.wgsl';
import softmax from '../../kernels/softmax.wgsl';
import conv2dKernel from '../../kernels/conv2d.wgsl';
import conv2dMma from '../../kernels/conv2d_mma.wgsl';
import conv2dSg from '../../kernels/conv2d_sg.wgsl';
import conv2dSgStep from '../../kernels/conv2d_sg_step.wgsl';
import conv2dSgSeg from '../../kernels/conv2d_sg_seg.wgsl';
import convEpilogue from '../../kernels/conv_epilogue.wgsl';
import depthwise from '../../kernels/depthwise.wgsl';
import se from '../../kernels/se.wgsl';
import loadX from '../../kernels/load_x.wgsl';
import bindY from '../../kernels/bind_y.wgsl';
import sliceInput from '../../kernels/slice_input.wgsl';
// (add kernel imports above this line)

/** kernels/<name>.wgsl text, by name without the extension. */
export const KERNELS: Record<string, string> = {
  common,
  elementwise,
  convgru, resize, pool, linear, softmax,
  conv2d: conv2dKernel,
  conv2d_mma: conv2dMma,
  conv2d_sg: conv2dSg,
  conv2d_sg_step: conv2dSgStep,
  conv2d_sg_seg: conv2dSgSeg,
  conv_epilogue: convEpilogue,
  depthwise, se,
  load_x: loadX,
  bind_y: bindY,
  slice_input: sliceInput,
  // (add kernels above this line)
};

/** Looks up a kernel file for `#include "name.wgsl"` and for dispatches. */
export function kernelSource(name: string): string | undefined {
  return KERNELS[name.replace(/\.wgsl$/, '')];
}
