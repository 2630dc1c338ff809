/**
 * Bilinear resize of one 2-D slice on the CPU, exactly PyTorch's `F.interpolate(x, size, mode='bilinear',
 * align_corners=...)` without antialias: source coordinates and weights are computed in float32 step by step
 * as PyTorch's CPU kernel does (area_pixel_compute_source_index, guard_index_and_lambda), the sums in float64
 * and stored as float32. Used to bring each slice to the model input and the model's maps back to the slice's
 * own size. Plain code: no GPU, no op registry, runs in Node and the browser.
 * @module
 */

import { resizeAxis } from '../ops/resize.js';

/** Per output index along one axis: the two source indices and the weight of the second. */
export interface BilinearAxis {
  i0: Int32Array;
  i1: Int32Array;
  lambda: Float64Array;
}

/** The source indices and weights of a bilinear resize from `inSize` to `outSize` samples along one axis. */
export function bilinearAxis(inSize: number, outSize: number, alignCorners: boolean): BilinearAxis {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) throw new RangeError(`resize sizes must be positive integers, got ${inSize} -> ${outSize}`);
  return resizeAxis(inSize, outSize, alignCorners); // PyTorch's rule, shared with the resize op's reference
}

/**
 * Resizes one slice `src` (h rows of w values, row-major) to ho x wo, written into `out` (allocated when not
 * given; length ho * wo). Same size: a copy.
 */
export function resizeSlice(src: ArrayLike<number>, h: number, w: number, ho: number, wo: number, alignCorners: boolean, out: Float32Array = new Float32Array(ho * wo)): Float32Array {
  if (src.length < h * w) throw new RangeError(`resizeSlice: source has ${src.length} values, expected ${h} x ${w}`);
  if (out.length < ho * wo) throw new RangeError(`resizeSlice: output has ${out.length} values, expected ${ho} x ${wo}`);
  if (h === ho && w === wo) {
    for (let i = 0; i < h * w; i++) out[i] = src[i]!;
    return out;
  }
  const ay = bilinearAxis(h, ho, alignCorners);
  const ax = bilinearAxis(w, wo, alignCorners);
  let i = 0;
  for (let oy = 0; oy < ho; oy++) {
    const r0 = ay.i0[oy]! * w;
    const r1 = ay.i1[oy]! * w;
    const ly = ay.lambda[oy]!;
    for (let ox = 0; ox < wo; ox++) {
      const c0 = ax.i0[ox]!;
      const c1 = ax.i1[ox]!;
      const lx = ax.lambda[ox]!;
      const top = (1 - lx) * src[r0 + c0]! + lx * src[r0 + c1]!;
      const bottom = (1 - lx) * src[r1 + c0]! + lx * src[r1 + c1]!;
      out[i++] = (1 - ly) * top + ly * bottom;
    }
  }
  return out;
}

/** Resizes a batch [B, C, H, W] to [B, C, Ho, Wo], plane by plane with {@link resizeSlice}. */
export function resizeBatch(x: Float32Array, shape: readonly [number, number, number, number], size: readonly [number, number], alignCorners = false): Float32Array {
  const [b, c, h, w] = shape;
  const [ho, wo] = size;
  if (x.length !== b * c * h * w) throw new RangeError(`resizeBatch: ${x.length} values for shape [${shape.join(', ')}]`);
  const out = new Float32Array(b * c * ho * wo);
  for (let p = 0; p < b * c; p++) resizeSlice(x.subarray(p * h * w, (p + 1) * h * w), h, w, ho, wo, alignCorners, out.subarray(p * ho * wo, (p + 1) * ho * wo));
  return out;
}
