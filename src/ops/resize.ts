/**
 * Bilinear resize, exactly PyTorch's `F.interpolate(x, size=(Ho, Wo), mode='bilinear', align_corners=...)`:
 * any scale factor per axis (up, down, non-integer, output size 1). Input and output may be channel views
 * (MsFF writes three resized maps into channel slices of one concat buffer). Kernel: kernels/resize.wgsl.
 */
import { ELEMENTWISE_WG, elementwiseGrid } from './elementwise-common.js';
import { check, checkRank, defineOp, grid1d, numel, type TestCase } from './op.js';
import { simdLanes } from '../gpu/caps.js';

/** Attributes of {@link resizeBilinear}. */
export interface ResizeAttrs {
  /** Output size [Ho, Wo]. */
  size: readonly [number, number];
  /** PyTorch's align_corners. */
  alignCorners: boolean;
}

/**
 * Source pixels per output pixel along one axis, in f32 as PyTorch computes it for float tensors
 * (area_pixel_compute_scale with no explicit scale factor).
 */
export function resizeScale(inSize: number, outSize: number, alignCorners: boolean): number {
  if (alignCorners) return outSize > 1 ? Math.fround((inSize - 1) / (outSize - 1)) : 0;
  return Math.fround(inSize / outSize);
}

/**
 * Per output index along one axis: the two source indices and the weight of the second, computed in f32 step
 * by step as PyTorch's CPU kernel does (area_pixel_compute_source_index, guard_index_and_lambda).
 */
export function resizeAxis(inSize: number, outSize: number, alignCorners: boolean): { i0: Int32Array; i1: Int32Array; lambda: Float64Array } {
  const scale = resizeScale(inSize, outSize, alignCorners);
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const lambda = new Float64Array(outSize);
  const f = Math.fround;
  for (let d = 0; d < outSize; d++) {
    const src = alignCorners ? f(scale * d) : Math.max(f(f(scale * f(d + 0.5)) - 0.5), 0);
    const a = Math.min(Math.floor(src), inSize - 1);
    i0[d] = a;
    i1[d] = Math.min(a + 1, inSize - 1);
    lambda[d] = Math.min(Math.max(f(src - a), 0), 1);
  }
  return { i0, i1, lambda };
}

/** The resize_bilinear op: x [N, C, H, W] -> [N, C, Ho, Wo]. */
export const resizeBilinear = defineOp<ResizeAttrs>({
  name: 'resize_bilinear',
  kind: 'elementwise',
  infer(inputs, attrs) {
    check(inputs.length === 1, 'resize_bilinear', 'needs one input', inputs);
    const x = checkRank('resize_bilinear', 'x', inputs[0], 4, inputs);
    const sz = attrs.size;
    check(Array.isArray(sz) && sz.length === 2 && sz.every((d) => Number.isInteger(d) && d > 0), 'resize_bilinear', `size must be two positive integers, got ${JSON.stringify(sz)}`, inputs);
    return [[x[0]!, x[1]!, sz[0], sz[1]]];
  },
  dispatch(ctx) {
    const [, C, H, W] = ctx.inputs[0]! as [number, number, number, number];
    const o = ctx.outputs[0]!;
    const [Ho, Wo] = ctx.attrs.size;
    const align = ctx.attrs.alignCorners;
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    // Tile policy 'software' (CPU-run adapters): the DIRECT entry, one invocation per output row, a workgroup one
    // SIMD group; else one thread per output element.
    const direct = ctx.caps.tiles === 'software';
    const rows = o[0]! * C * Ho;
    const wg = direct ? simdLanes(ctx.caps) : ELEMENTWISE_WG;
    return [
      {
        kernel: 'resize',
        defines: { WG: wg, DIRECT: direct ? 1 : 0 },
        grid: direct ? grid1d(rows, wg, ctx.caps.limits.maxComputeWorkgroupsPerDimension) : elementwiseGrid(o, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
        params: [
          direct ? rows : numel(o), C, H, W, Ho, Wo, xv.cOff, xv.cTot, yv.cOff, yv.cTot,
          { f32: resizeScale(H, Ho, align) }, { f32: resizeScale(W, Wo, align) }, { f32: align ? 0 : 0.5 },
        ],
        bindings: [{ input: 0 }, { output: 0 }],
        flops: numel(o) * 12,
        bytes: (numel(ctx.inputs[0]!) + numel(o)) * 4,
      },
    ];
  },
  reference([x], { attrs, inputs }) {
    const [N, C, H, W] = inputs[0]! as [number, number, number, number];
    const [Ho, Wo] = attrs.size;
    const ay = resizeAxis(H, Ho, attrs.alignCorners);
    const ax = resizeAxis(W, Wo, attrs.alignCorners);
    const y = new Float32Array(N * C * Ho * Wo);
    let i = 0;
    for (let p = 0; p < N * C; p++) {
      const base = p * H * W;
      for (let oy = 0; oy < Ho; oy++) {
        const r0 = base + ay.i0[oy]! * W;
        const r1 = base + ay.i1[oy]! * W;
        const ly = ay.lambda[oy]!;
        for (let ox = 0; ox < Wo; ox++) {
          const c0 = ax.i0[ox]!;
          const c1 = ax.i1[ox]!;
          const lx = ax.lambda[ox]!;
          const top = (1 - lx) * x![r0 + c0]! + lx * x![r0 + c1]!;
          const bottom = (1 - lx) * x![r1 + c0]! + lx * x![r1 + c1]!;
          y[i++] = (1 - ly) * top + ly * bottom;
        }
      }
    }
    return [y];
  },
  cases: ([false, true] as const).flatMap((alignCorners): TestCase<ResizeAttrs>[] => {
    const tag = alignCorners ? 'align_corners' : 'half-pixel';
    return [
      { name: `${tag} 7x9 -> 14x18 (x2) into a view`, inputs: [[3, 5, 7, 9]], attrs: { size: [14, 18], alignCorners }, outViews: [{ cOff: 5, cTot: 15 }] },
      { name: `${tag} 7x9 -> 15x20 (odd)`, inputs: [[3, 5, 7, 9]], attrs: { size: [15, 20], alignCorners } },
      {
        name: `${tag} 13x11 -> 5x4 (down) from a view into a view`,
        inputs: [[3, 5, 13, 11]],
        attrs: { size: [5, 4], alignCorners },
        inViews: [{ cOff: 2, cTot: 8 }],
        outViews: [{ cOff: 0, cTot: 10 }],
      },
      { name: `${tag} 4x4 -> 1x1`, inputs: [[3, 5, 4, 4]], attrs: { size: [1, 1], alignCorners } },
    ];
  }),
});
