/**
 * conv2d's CPU reference: the direct convolution in float64 sums, then bias, activation and residual. With
 * precision 'f16' it rounds the operands of a matrix-unit convolution as the GPU does (the weights, and the input
 * after the squeeze-excite scale, to f16).
 */
import { applyActivation } from '../activation.js';
import { roundToF16 } from '../half.js';
import type { RefContext } from '../op.js';
import { conv2dInputIndex, geometry, type Conv2dAttrs } from './shape.js';
import { f32Plan, takesMmaPath } from './tiles.js';

/** The reference convolution (dense inputs, in the op's input order). */
export function conv2dReference(inputs: Float32Array[], ctx: RefContext<Conv2dAttrs>): Float32Array[] {
  const { attrs, inputs: shapes } = ctx;
  const g = geometry(shapes, attrs);
  const idx = conv2dInputIndex(attrs);
  const x = inputs[0]!;
  const w = inputs[1]!;
  const bias = attrs.hasBias ? inputs[idx.bias]! : null;
  const res = attrs.hasResidual ? inputs[idx.residual]! : null;
  const scale = attrs.hasInScale ? inputs[idx.inScale]! : null;
  const { N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo } = g;
  // precision 'f16': the operands of a matrix-unit convolution rounded as the GPU rounds them (weights, and the
  // input after the squeeze-excite scale, to f16; sums in full precision).
  const half = ctx.precision === 'f16' && takesMmaPath(g, f32Plan(Cout, N * Ho * Wo, Cin * kh * kw, ctx.tiles).splits);
  const wq = half ? w.map(roundToF16) : w;
  const HW = H * W;
  const xq = half ? x.map((v, i) => roundToF16(Math.fround(v * (scale ? scale[Math.floor(i / HW)]! : 1)))) : x;
  const sq = half ? null : scale;
  const y = new Float32Array(N * Cout * Ho * Wo);
  let o = 0;
  for (let n = 0; n < N; n++)
    for (let co = 0; co < Cout; co++)
      for (let oy = 0; oy < Ho; oy++)
        for (let ox = 0; ox < Wo; ox++, o++) {
          let acc = 0;
          for (let ci = 0; ci < Cin; ci++) {
            const s = sq ? sq[n * Cin + ci]! : 1;
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * sh - ph + ky * dh;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= W) continue;
                acc += wq[((co * Cin + ci) * kh + ky) * kw + kx]! * (xq[((n * Cin + ci) * H + iy) * W + ix]! * s);
              }
            }
          }
          if (bias) acc += bias[co]!;
          acc = applyActivation(acc, attrs.act);
          if (res) acc += res[o]!;
          y[o] = acc;
        }
  return [y];
}
