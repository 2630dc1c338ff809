/** Helpers shared by the elementwise ops (kernels/elementwise.wgsl): the Params prefix and CPU loops. */
import { simdLanes } from '../gpu/caps.js';
import { grid1d, innerSize, numel, type GpuCaps, type OpContext, type ParamWord, type Shape } from './op.js';

/** Threads per workgroup of the elementwise kernels. */
export const ELEMENTWISE_WG = 256;

/**
 * The Params words of kernels/elementwise.wgsl: total, channels, inner, x view, y view, b strides, eps.
 */
export function elementwiseParams(ctx: OpContext<unknown>, b: [number, number, number, number] = [0, 0, 0, 0], eps = 0): ParamWord[] {
  const s = ctx.outputs[0]!;
  const x = ctx.inViews[0]!;
  const y = ctx.outViews[0]!;
  return [numel(s), s.length > 1 ? s[1]! : 1, innerSize(s), x.cOff, x.cTot, y.cOff, y.cTot, ...b, { f32: eps }];
}

/** Grid for one thread per output element. */
export function elementwiseGrid(shape: Shape, maxPerDim: number): [number, number] {
  return grid1d(numel(shape), ELEMENTWISE_WG, maxPerDim);
}

/** Elements of one plane an invocation walks under tile policy 'software' (DIRECT_CHUNK in kernels/common.wgsl). */
export const DIRECT_CHUNK = 64;

/**
 * Workgroup size, DIRECT define and grid of an elementwise dispatch over the output `shape`: one thread per element,
 * or, under tile policy 'software' (CPU-run adapters), one invocation per run of {@link DIRECT_CHUNK} elements of a
 * plane (`chunk_of` in kernels/common.wgsl: the element's plane and position divided out once per run, not per
 * element; on a CPU driver an integer division is a scalar loop over the SIMD lanes), a workgroup one SIMD group.
 */
export function elementwiseLaunch(caps: GpuCaps, shape: Shape): { defines: { WG: number; DIRECT: number }; grid: [number, number] } {
  const maxPerDim = caps.limits.maxComputeWorkgroupsPerDimension;
  if (caps.tiles !== 'software') return { defines: { WG: ELEMENTWISE_WG, DIRECT: 0 }, grid: elementwiseGrid(shape, maxPerDim) };
  const inner = innerSize(shape);
  const planes = numel(shape) / Math.max(1, inner);
  const wg = simdLanes(caps);
  return { defines: { WG: wg, DIRECT: 1 }, grid: grid1d(planes * Math.ceil(inner / DIRECT_CHUNK), wg, maxPerDim) };
}

/** Calls fn(n, c, s, flatIndex) for every element of a rank >= 2 tensor. */
export function forEachNCS(shape: Shape, fn: (n: number, c: number, s: number, i: number) => void): void {
  const N = shape[0]!;
  const C = shape.length > 1 ? shape[1]! : 1;
  const inner = innerSize(shape);
  let i = 0;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < inner; s++) fn(n, c, s, i++);
}
