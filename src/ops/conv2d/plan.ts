/**
 * What both conv2d dispatch builders share: the plan of a dispatch context (geometry, tile, grid, K split, or the
 * matrix-unit tile), the binding lists, the epilogue's defines and bytes, and the matrix-unit path's two choices
 * (input read in place, weights prepared at compile).
 */
import type { Binding } from '../../gpu/spec.js';
import { f16MatmulSupport } from '../../gpu/caps.js';
import { ACT_CODE } from '../activation.js';
import { halfIn, halfOut, numel, ShapeError, type OpContext } from '../op.js';
import { conv2dInputIndex, geometry, type Conv2dAttrs } from './shape.js';
import { chooseMmaTile, f32Plan, mmaCols, mmaRows, takesMmaPath } from './tiles.js';
import { takesSgPath } from './sg.js';

/** Geometry, tile, grid and K split of a conv2d dispatch context (shared by scratch(), prepare() and dispatch()). */
export function convPlan(ctx: OpContext<Conv2dAttrs>) {
  const g = geometry(ctx.inputs, ctx.attrs);
  const idx = conv2dInputIndex(ctx.attrs);
  const M = g.Cout;
  const cols = g.N * g.Ho * g.Wo;
  const K = g.Cin * g.kh * g.kw;
  const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
  const { tile, colTiles, rowTiles, splits, kChunk } = f32Plan(M, cols, K, ctx.caps.tiles);
  const mt = ctx.caps.precision === 'f16' && f16MatmulSupport(ctx.caps) === null && takesMmaPath(g, splits) ? chooseMmaTile(M) : null;
  if (mt) {
    const sc = Math.ceil(cols / mmaCols(mt));
    const sr = Math.ceil(M / mmaRows(mt));
    if (sr > maxDim) throw new ShapeError('conv2d', `${M} output channels need ${sr} row tiles, more than the ${maxDim} workgroups a dimension allows`, ctx.inputs);
    const sgz = Math.ceil(sc / maxDim);
    return { g, idx, M, cols, K, tile, mma: mt, sg: false, colTiles: sc, rowTiles: sr, gx: Math.ceil(sc / sgz), gz: sgz, splits: 1, kChunk: K };
  }
  if (rowTiles * splits > maxDim) throw new ShapeError('conv2d', `${M} output channels need ${rowTiles * splits} row tiles, more than the ${maxDim} workgroups a dimension allows`, ctx.inputs);
  const gz = Math.ceil(colTiles / maxDim);
  const gx = Math.ceil(colTiles / gz);
  // The subgroup kernel of the CPU-run adapters (kernels/conv2d_sg.wgsl; its own grid, src/ops/conv2d/sg.ts).
  const sg = takesSgPath(ctx, g);
  return { g, idx, M, cols, K, tile, mma: null, sg, colTiles, rowTiles, gx, gz, splits, kChunk };
}

/** The plan of one conv2d dispatch context. */
export type ConvPlan = ReturnType<typeof convPlan>;

/**
 * Storage bindings 1.. in order: `first`, then each optional input that is present (`at`: its binding number, 0
 * for an absent one, index -1), then `last` (binding number `last`).
 */
export function bindingList(first: Binding[], optional: number[], last: Binding): { bindings: Binding[]; at: number[]; last: number } {
  const bindings = [...first];
  const at = optional.map((input) => (input < 0 ? 0 : (bindings.push({ input }), bindings.length)));
  bindings.push(last);
  return { bindings, at, last: bindings.length };
}

/** The epilogue (bias, activation, residual, output) both kernels share: its defines and the bytes it moves. */
export function epilogue(ctx: OpContext<Conv2dAttrs>, p: Pick<ConvPlan, 'M' | 'K' | 'cols' | 'g' | 'idx'>) {
  const { attrs } = ctx;
  const { M, K, cols, g, idx } = p;
  const xh16 = halfIn(ctx, 0);
  const res16 = !!attrs.hasResidual && halfIn(ctx, idx.residual);
  const y16 = halfOut(ctx, 0);
  const defines = { ACT: ACT_CODE[attrs.act], HAS_BIAS: attrs.hasBias ? 1 : 0, HAS_RES: attrs.hasResidual ? 1 : 0, RES_F16: res16 ? 1 : 0, Y_F16: y16 ? 1 : 0 };
  const bytes = (attrs.hasBias ? M : 0) * 4 + (attrs.hasResidual ? M * cols * (res16 ? 2 : 4) : 0) + M * cols * (y16 ? 2 : 4);
  const xBytes = numel(ctx.inputs[0]!) * (xh16 ? 2 : 4);
  const inBytes = xBytes + (M * K + (attrs.hasInScale ? g.N * g.Cin : 0)) * 4;
  return { defines, bytes, xh16, xBytes, inBytes };
}

/**
 * Whether the matrix-unit GEMM reads x itself as its f16 input copy: x stored as f16 (half storage), dense (no
 * channel view), no squeeze-excite scale, and K a multiple of 16 (then x [N, Cin, HW] is the [N, Kp, HW] copy).
 */
export function mmaReadsInputInPlace(ctx: OpContext<Conv2dAttrs>, K: number): boolean {
  const xv = ctx.inViews[0]!;
  return halfIn(ctx, 0) && !ctx.attrs.hasInScale && K % 16 === 0 && xv.cOff === 0 && xv.cTot === ctx.inputs[0]![1];
}

/**
 * Whether the matrix-unit path's f16 weight copy is made once when the graph is compiled (OpDef.prepare: the
 * weights are constants there) instead of by a conversion pass in every run.
 */
export const mmaWeightsPrepared = (ctx: Pick<OpContext<Conv2dAttrs>, 'constant'>): boolean => ctx.constant?.[1] ?? false;
