/** Helpers shared by the elementwise ops (kernels/elementwise.wgsl): the Params prefix and CPU loops. */
import { grid1d, innerSize, numel, type OpContext, type ParamWord, type Shape } from './op.js';

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

/** Calls fn(n, c, s, flatIndex) for every element of a rank >= 2 tensor. */
export function forEachNCS(shape: Shape, fn: (n: number, c: number, s: number, i: number) => void): void {
  const N = shape[0]!;
  const C = shape.length > 1 ? shape[1]! : 1;
  const inner = innerSize(shape);
  let i = 0;
  for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let s = 0; s < inner; s++) fn(n, c, s, i++);
}
