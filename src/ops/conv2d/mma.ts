/**
 * The dispatches of kernels/conv2d_mma.wgsl (f16 operands on the matrix units, f32 sums): conversion passes that
 * round the weights and the (scaled) input to zero-padded f16 copies, each skipped where the copy is not needed
 * (weights prepared at compile, input read in place), then the GEMM with the fused epilogue.
 */
import type { DispatchSpec } from '../../gpu/spec.js';
import { halfWords, packHalf } from '../half.js';
import { grid1d, type OpContext, type PreparedOperand } from '../op.js';
import { bindingList, epilogue, mmaReadsInputInPlace, mmaWeightsPrepared, type ConvPlan } from './plan.js';
import type { Conv2dAttrs } from './shape.js';
import { mmaCopies, type MmaTile } from './tiles.js';

/** Threads per workgroup of the f16 conversion passes. */
const CONVERT_WG = 256;

/** Scratch of the matrix-unit path (f32 words): the weight copy unless prepared, the input copy unless read in place. */
export function mmaScratch(ctx: OpContext<Conv2dAttrs>, p: ConvPlan): number[] {
  const { xh, wh } = mmaCopies(p);
  return [...(mmaWeightsPrepared(ctx) ? [] : [halfWords(wh)]), ...(mmaReadsInputInPlace(ctx, p.K) ? [] : [halfWords(xh)])];
}

/** The weights' zero-padded f16 copy, made once at compile where the weights are constants. */
export function mmaPrepared(ctx: OpContext<Conv2dAttrs>, p: ConvPlan): PreparedOperand[] {
  if (!mmaWeightsPrepared(ctx)) return [];
  const { Kp, Mp, wh } = mmaCopies(p);
  const { M, K } = p;
  return [
    {
      from: [1],
      words: halfWords(wh),
      make: ([w]) => {
        // [M, K] (W is [Cout, Cin, 1, 1]) into the zero-padded [Mp, Kp] copy, rounded to nearest even
        const padded = new Float32Array(Mp * Kp);
        for (let m = 0; m < M; m++) padded.set(w!.subarray(m * K, (m + 1) * K), m * Kp);
        return packHalf(padded);
      },
    },
  ];
}

/** The matrix-unit path's dispatches for a plan with tile `mma`. */
export function mmaDispatches(ctx: OpContext<Conv2dAttrs>, p: ConvPlan, mma: MmaTile): DispatchSpec[] {
  const { attrs } = ctx;
  const { g, idx, M, cols, K, colTiles, rowTiles, gx, gz } = p;
  const xv = ctx.inViews[0]!;
  const yv = ctx.outViews[0]!;
  const rv = attrs.hasResidual ? ctx.inViews[idx.residual]! : { cOff: 0, cTot: 0 };
  const ep = epilogue(ctx, p);
  const { Kp, Mp, xh, wh } = mmaCopies({ g, M, K });
  const HW = g.H * g.W;
  const mp = (total: number, rows: number, x_off: number, x_tot: number, hw: number) => [M, cols, Kp, hw, yv.cOff, yv.cTot, rv.cOff, rv.cTot, colTiles, K, rows, x_off, x_tot, g.Cin, total];
  const inPlace = mmaReadsInputInPlace(ctx, K);
  const prepared = mmaWeightsPrepared(ctx);
  const xScratch = { scratch: prepared ? 0 : 1 };
  const xc = bindingList([{ input: 0 }], [idx.inScale], xScratch);
  const gm = bindingList([prepared ? { prepared: 0 } : { scratch: 0 }, inPlace ? { input: 0 } : xScratch], [idx.bias, idx.residual], { output: 0 });
  const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
  const specs: DispatchSpec[] = [];
  if (!prepared)
    specs.push({
      kernel: 'conv2d_mma',
      defines: { ENTRY_CONVERT: 1, WG: CONVERT_WG, HAS_SCALE: 0, X_F16: 0, BIND_DST: 2 },
      grid: grid1d(wh / 2, CONVERT_WG, maxDim),
      params: mp(wh, M, 0, K, 1),
      bindings: [{ input: 1 }, { scratch: 0 }],
      bytes: M * K * 4 + wh * 2,
    });
  if (!inPlace)
    specs.push({
      kernel: 'conv2d_mma',
      defines: { ENTRY_CONVERT: 1, WG: CONVERT_WG, HAS_SCALE: attrs.hasInScale ? 1 : 0, X_F16: ep.xh16 ? 1 : 0, BIND_DST: xc.last },
      grid: grid1d(xh / 2, CONVERT_WG, maxDim),
      params: mp(xh, g.N, xv.cOff, xv.cTot, HW),
      bindings: xc.bindings,
      bytes: ep.xBytes + xh * 2,
    });
  specs.push({
    kernel: 'conv2d_mma',
    defines: { ENTRY_CONVERT: 0, SG_WR: mma.WR, SG_WC: mma.WC, SG_FM: mma.FM, SG_FN: mma.FN, ...ep.defines, BIND_BIAS: gm.at[0]!, BIND_RES: gm.at[1]!, BIND_Y: gm.last },
    grid: [gx, rowTiles, gz],
    params: mp(0, M, 0, 0, HW),
    bindings: gm.bindings,
    flops: 2 * M * cols * K,
    bytes: (Mp * Kp + xh) * 2 + ep.bytes,
  });
  return specs;
}
