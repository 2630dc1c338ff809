/**
 * conv2d's subgroup path for the CPU-run adapters (kernels/conv2d_sg.wgsl): under tile policy 'software', on an
 * adapter with subgroups of a fixed size L of 4 or 16 lanes, with constant weights (prepared once at compile as
 * W' [M, Kp]: K in tap-major order, channels padded to 4) and more than 4 output channels. Every input element is
 * loaded once by one lane and broadcast to the others; docs/performance.md ("lavapipe against PyTorch") has the
 * why and the measurements.
 */
import type { DispatchSpec } from '../../gpu/spec.js';
import { halfOut, type GpuCaps, type OpContext, type PreparedOperand } from '../op.js';
import { bindingList, epilogue } from './plan.js';
import { conv2dInputIndex, geometry, type Conv2dAttrs, type Geometry } from './shape.js';

/**
 * The subgroup sizes the kernel is chosen for: 16 (lavapipe at 512-bit SIMD). The kernel also runs, and is tested,
 * with 4 lanes (SwiftShader, lavapipe at 128 bits), but there it is slower than DIRECT (measured: SwiftShader 1.5
 * to 2 times slower on the bench's convolutions, lavapipe at 128 bits 2 to 5 times): with 4 lanes a broadcast
 * input value feeds only 4 multiply-adds. Other sizes keep the DIRECT kernel.
 */
export const SG_LANES = [16] as const;

/** Target number of workgroups of a dispatch: each walks enough column tiles to keep them about this many. */
export const SG_TARGET_WORKGROUPS = 64;

/** The subgroup size the kernel would run with on these caps, or 0 where the path is not available. */
export function sgLanes(caps: Pick<GpuCaps, 'tiles' | 'features' | 'subgroupMinSize' | 'subgroupMaxSize'>, lanes: readonly number[] = SG_LANES): number {
  if (caps.tiles !== 'software' || !caps.features.has('subgroups')) return 0;
  const L = caps.subgroupMinSize;
  if (caps.subgroupMaxSize !== undefined && caps.subgroupMaxSize !== L) return 0;
  return lanes.includes(L) ? L : 0;
}

/**
 * Whether a convolution takes the subgroup path: the adapter offers it ({@link sgLanes}), the weights are constants
 * (prepared at compile), more than 4 output channels (1- to 4-channel heads keep DIRECT's s4 tile) and f32
 * arithmetic (not the matrix-unit path).
 */
export function takesSgPath(ctx: Pick<OpContext<Conv2dAttrs>, 'caps' | 'constant'>, g: Pick<Geometry, 'Cout'>): boolean {
  return sgLanes(ctx.caps) > 0 && (ctx.constant?.[1] ?? false) && g.Cout > 4 && ctx.caps.precision !== 'f16';
}

/**
 * The kernel's shape: lanes, column groups (2 for Cout <= L / 2: each lane half takes half the tile's columns), rows
 * per lane (2 for Cout > L: each broadcast input value then feeds two multiply-adds), rows per workgroup, columns per
 * tile, padded K.
 */
export function sgShape(L: number, g: Geometry, yHalf = false, rowsPerLane: 1 | 2 = SG_ROWS_PER_LANE) {
  const CG = L >= 8 && g.Cout <= L / 2 ? 2 : 1;
  const CinP = Math.ceil(g.Cin / 4) * 4;
  const taps = g.kh * g.kw;
  // SEG (16 lanes: kernels/conv2d_sg_seg.wgsl is written for them): 3-wide kernels with column stride and dilation
  // 1 over rows of at least L outputs: a tile is a segment of one output row, and each input row segment loaded
  // serves the 3 taps of a kernel row. (A segment starts a row, so an f16 output, written in column pairs, needs Wo
  // even.) One row per lane there: with two, its 3 x 4 x 16 multiply-adds per step spill too many accumulators.
  const seg = L === 16 && g.kw === 3 && g.sw === 1 && g.dw === 1 && g.Wo >= L && (!yHalf || g.Wo % 2 === 0);
  const RM = CG === 1 && g.Cout > L && !seg ? rowsPerLane : 1;
  return { L, CG, RM, MG: (RM * L) / CG, NT: L, CinP, taps, Kp: taps * CinP, seg };
}

/** Output rows per lane where Cout > L (see {@link sgShape}). */
export const SG_ROWS_PER_LANE: 1 | 2 = 2;

/**
 * W [Cout, Cin, kh, kw] as W' [Cout, Kp], zeros past Cin: element (m, tap, ci) = W[m, ci, ky, kx] at tap * CinP + ci
 * (tap = ky * kw + kx); under SEG at ((ky * CinP / 4 + ci / 4) * kw + kx) * 4 + ci % 4 (a kernel row's taps of 4
 * channels together).
 */
export function sgPrepared(g: Geometry, L: number, yHalf = false): PreparedOperand[] {
  const { CinP, taps, Kp, seg } = sgShape(L, g, yHalf);
  const at = (ci: number, ky: number, kx: number) => (seg ? ((ky * (CinP / 4) + (ci >> 2)) * g.kw + kx) * 4 + (ci & 3) : (ky * g.kw + kx) * CinP + ci);
  return [
    {
      from: [1],
      words: g.Cout * Kp,
      make: ([w]) => {
        const out = new Float32Array(g.Cout * Kp);
        for (let m = 0; m < g.Cout; m++)
          for (let ci = 0; ci < g.Cin; ci++)
            for (let ky = 0; ky < g.kh; ky++) for (let kx = 0; kx < g.kw; kx++) out[m * Kp + at(ci, ky, kx)] = w![((m * g.Cin + ci) * g.kh + ky) * g.kw + kx]!;
        return new Uint32Array(out.buffer);
      },
    },
  ];
}

/** The subgroup path's one dispatch, for subgroups of L lanes (the adapter's: {@link sgLanes}). */
export function sgDispatches(ctx: OpContext<Conv2dAttrs>, L: number): DispatchSpec[] {
  const { attrs } = ctx;
  const g = geometry(ctx.inputs, attrs);
  const idx = conv2dInputIndex(attrs);
  const M = g.Cout;
  const cols = g.N * g.Ho * g.Wo;
  const K = g.Cin * g.kh * g.kw;
  const s = sgShape(L, g, halfOut(ctx, 0));
  const xv = ctx.inViews[0]!;
  const yv = ctx.outViews[0]!;
  const rv = attrs.hasResidual ? ctx.inViews[idx.residual]! : { cOff: 0, cTot: 0 };
  const ep = epilogue(ctx, { g, idx, M, K, cols });
  const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
  const HW = g.H * g.W;
  const HoWo = g.Ho * g.Wo;
  const vecX = pointwise && HW % 4 === 0 && !ep.xh16;
  const vecY = HoWo % 4 === 0 && !ep.defines.Y_F16 && (!s.seg || g.Wo % 4 === 0);
  const colTiles = s.seg ? g.N * g.Ho * Math.ceil(g.Wo / s.NT) : Math.ceil(cols / s.NT);
  const rowTiles = Math.ceil(M / s.MG);
  const tilesPerWg = Math.max(1, Math.min(colTiles, Math.floor((colTiles * rowTiles) / SG_TARGET_WORKGROUPS)));
  const colWgs = Math.ceil(colTiles / tilesPerWg);
  const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
  const gz = Math.ceil(colWgs / maxDim);
  const gx = Math.ceil(colWgs / gz);
  const b = bindingList([{ input: 0 }, { prepared: 0 }], [idx.bias, idx.residual, idx.inScale], { output: 0 });
  const [BIND_BIAS, BIND_RES, BIND_SCALE] = b.at;
  const params = [
    M, cols, s.Kp, g.Cin, s.CinP, g.H, g.W, HW, g.Wo, HoWo, g.kw, s.taps, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
    xv.cOff, xv.cTot, yv.cOff, yv.cTot, rv.cOff, rv.cTot, colTiles, tilesPerWg, g.Ho,
  ];
  return [
    {
      kernel: 'conv2d_sg',
      defines: {
        L,
        CG: s.CG,
        RM: s.RM,
        VEC_X: vecX ? 1 : 0,
        SEG: s.seg ? 1 : 0,
        ...(s.seg ? { KW: g.kw } : {}),
        VEC_Y: vecY ? 1 : 0,
        POINTWISE: pointwise ? 1 : 0,
        X_F16: ep.xh16 ? 1 : 0,
        HAS_SCALE: attrs.hasInScale ? 1 : 0,
        ...ep.defines,
        BIND_BIAS,
        BIND_RES,
        BIND_SCALE,
        BIND_Y: b.last,
      },
      grid: [gx, rowTiles, gz],
      params,
      bindings: b.bindings,
      flops: 2 * M * cols * K,
      bytes: ep.inBytes + ep.bytes,
    },
  ];
}
