/**
 * The dispatches of kernels/conv2d.wgsl (f32 implicit GEMM): one pass with the fused epilogue, or with K split, a
 * GEMM pass into scratch slices and a reduction pass that adds them in order and applies the epilogue.
 */
import type { DispatchSpec } from '../../gpu/spec.js';
import { grid1d, type OpContext } from '../op.js';
import { bindingList, epilogue, type ConvPlan } from './plan.js';
import type { Conv2dAttrs } from './shape.js';
import type { ConvTile } from './tiles.js';

/** Threads per workgroup of the split-K reduction pass. */
const REDUCE_WG = 256;

function tileDefines(t: ConvTile) {
  if (t.direct && ((t.RM !== 4 && t.RM !== 8) || t.RN !== 4)) throw new Error(`conv2d: DIRECT tile '${t.name}' must have RM 4 or 8 and RN 4 (the kernel keeps them in vec4s)`);
  return { TM: t.TM, TN: t.TN, TK: t.TK, RM: t.RM, RN: t.RN, DIRECT: t.direct ? 1 : 0 };
}

/** The f32 kernel's dispatches for a plan without a matrix-unit tile. */
export function f32Dispatches(ctx: OpContext<Conv2dAttrs>, p: ConvPlan): DispatchSpec[] {
  const { attrs } = ctx;
  const { g, idx, M, cols, K, tile, colTiles, rowTiles, gx, gz, splits, kChunk } = p;
  const xv = ctx.inViews[0]!;
  const yv = ctx.outViews[0]!;
  const rv = attrs.hasResidual ? ctx.inViews[idx.residual]! : { cOff: 0, cTot: 0 };
  const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
  const params = [
    M, cols, K, g.Cin, g.H, g.W, g.H * g.W, g.Wo, g.Ho * g.Wo, g.kw, g.kh * g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
    xv.cOff, xv.cTot, yv.cOff, yv.cTot, rv.cOff, rv.cTot, colTiles, rowTiles, kChunk, splits,
  ];
  const ep = epilogue(ctx, p);
  const gemmDefines = { ...tileDefines(tile), ENTRY_REDUCE: 0, POINTWISE: pointwise ? 1 : 0, X_F16: ep.xh16 ? 1 : 0, HAS_SCALE: attrs.hasInScale ? 1 : 0 };
  if (splits === 1) {
    const b = bindingList([{ input: 0 }, { input: 1 }], [idx.bias, idx.residual, idx.inScale], { output: 0 });
    const [BIND_BIAS, BIND_RES, BIND_SCALE] = b.at;
    return [
      {
        kernel: 'conv2d',
        defines: { ...gemmDefines, SPLITK: 0, ...ep.defines, BIND_BIAS, BIND_RES, BIND_SCALE, BIND_Y: b.last },
        grid: [gx, rowTiles, gz],
        params,
        bindings: b.bindings,
        flops: 2 * M * cols * K,
        bytes: ep.inBytes + ep.bytes,
      },
    ];
  }
  // Split K: each of `splits` workgroup rows sums its kChunk slice of K into scratch [splits, M, cols]; a second
  // pass adds the slices in order and applies the epilogue.
  const gemm = bindingList([{ input: 0 }, { input: 1 }], [idx.inScale], { scratch: 0 });
  const reduce = bindingList([{ scratch: 0 }], [idx.bias, idx.residual], { output: 0 });
  return [
    {
      kernel: 'conv2d',
      defines: { ...gemmDefines, SPLITK: 1, ACT: 0, HAS_BIAS: 0, HAS_RES: 0, RES_F16: 0, Y_F16: 0, BIND_BIAS: 0, BIND_RES: 0, BIND_SCALE: gemm.at[0]!, BIND_Y: gemm.last },
      grid: [gx, rowTiles * splits, gz],
      params,
      bindings: gemm.bindings,
      flops: 2 * M * cols * K,
      bytes: ep.inBytes + splits * M * cols * 4,
    },
    {
      kernel: 'conv2d',
      defines: { ENTRY_REDUCE: 1, SPLITK: 0, WG: REDUCE_WG, ...ep.defines, HAS_SCALE: 0, BIND_BIAS: reduce.at[0]!, BIND_RES: reduce.at[1]!, BIND_SCALE: 0, BIND_Y: reduce.last },
      grid: grid1d(M * cols, REDUCE_WG, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
      params,
      bindings: reduce.bindings,
      flops: splits * M * cols,
      bytes: splits * M * cols * 4 + ep.bytes,
    },
  ];
}
