/**
 * 2-D convolution (NCHW, groups = 1; depthwise is its own op) as an implicit GEMM with a fused epilogue:
 *
 *   y = act(conv(x * inScale, W) + bias) + residual
 *
 * i.e. the epilogue order is acc + bias -> activation -> + residual. That is the torchvision MBConv order: the
 * projection conv (+ folded BN) has no activation and the skip is added after it; with an activation the
 * residual is still added last. inScale [N, Cin] multiplies x per image and input channel as it is read (the
 * squeeze-excite scale fused into the projection 1x1 conv).
 *
 * Inputs, in order: x [N, Cin, H, W]; W [Cout, Cin, kh, kw] (PyTorch layout); then bias [Cout] when hasBias,
 * residual [N, Cout, Ho, Wo] when hasResidual, inScale [N, Cin] (or [N, Cin, 1, 1]) when hasInScale. x,
 * residual and the output may be channel views; W, bias and inScale must be dense.
 * Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1, likewise Wo (PyTorch).
 *
 * Kernel: kernels/conv2d.wgsl (tiled, register-blocked; the tile shape is picked by {@link chooseConvTile}).
 */
import { ACT_CODE, applyActivation, type Activation } from './activation.js';
import { halfWords, packHalf, roundToF16 } from './half.js';
import { check, checkRank, defineOp, denseView, f16MatmulSupport, grid1d, halfIn, halfOut, numel, ShapeError, tilePolicy, type Binding, type DispatchSpec, type OpContext, type Shape, type TestCase } from './op.js';

/** Attributes of {@link conv2d}. */
export interface Conv2dAttrs {
  /** Kernel size [kh, kw]; must match the weight's last two dimensions. */
  kernel: [number, number];
  /** Stride [sh, sw]. */
  stride: [number, number];
  /** Symmetric zero padding [ph, pw]. */
  pad: [number, number];
  /** Dilation [dh, dw] (default [1, 1]). */
  dilation?: [number, number];
  /** Epilogue activation, applied after the bias and before the residual. */
  act: Activation;
  /** A bias [Cout] follows the weight. */
  hasBias: boolean;
  /** A residual [N, Cout, Ho, Wo] follows (the bias), added after the activation. */
  hasResidual: boolean;
  /** An input-channel scale [N, Cin] comes last, multiplied into x as it is read. */
  hasInScale: boolean;
}

/** A tile configuration of kernels/conv2d.wgsl: TM x TN outputs per workgroup, K chunk TK, RM x RN per thread. */
export interface ConvTile {
  name: string;
  TM: number;
  TN: number;
  TK: number;
  RM: number;
  RN: number;
}

/**
 * The tile configurations. Each uses (TM/RM) * (TN/RN) threads and ((TM + 1) + TN) * TK * 4 bytes of workgroup
 * memory (at most 10.3 KiB: inside WebGPU's default 16 KiB and SwiftShader's 32 KiB). A 128 x 128 tile with 8 x 8
 * per thread was tried and measured on the H100 (2026-11-26): 1.7 TFLOP/s against 15 for `big` on the same
 * B7 layers (its 64 accumulators do not stay in registers), so it is not offered.
 * - big:  64 x 64 tile, 4 x 4 per thread, 256 threads: layers with many output channels and pixels.
 * - wide: 16 x 128 tile, 2 x 4 per thread, 256 threads: few output channels (Cout <= 16: stems, heads).
 * - mid:  32 x 128 tile, 4 x 4 per thread, 256 threads: 16 < Cout <= 32 (GR-U-Net decoder convs at high
 *   resolution, B7's first blocks), where `big` would leave half its rows empty (not under tilePolicy 'legacy').
 * - tall: 64 x 16 tile, 4 x 2 per thread, 128 threads: few output columns (N*Ho*Wo <= 64, deep layers of a
 *   classifier at batch 1), so that the rows, not the columns, give the workgroups.
 */
export const CONV_TILES = {
  big: { name: 'big', TM: 64, TN: 64, TK: 16, RM: 4, RN: 4 },
  mid: { name: 'mid', TM: 32, TN: 128, TK: 16, RM: 4, RN: 4 },
  wide: { name: 'wide', TM: 16, TN: 128, TK: 16, RM: 2, RN: 4 },
  tall: { name: 'tall', TM: 64, TN: 16, TK: 16, RM: 4, RN: 2 },
} as const satisfies Record<string, ConvTile>;

/** Picks the tile configuration for a GEMM of M = Cout rows and `cols` = N*Ho*Wo columns. */
export function chooseConvTile(M: number, cols: number): ConvTile {
  if (M <= 16) return CONV_TILES.wide;
  if (cols <= 64) return CONV_TILES.tall;
  if (M <= 32 && tilePolicy === 'auto') return CONV_TILES.mid;
  return CONV_TILES.big;
}

/** Input indices of the optional inputs for the given flags (-1 when absent). */
export function conv2dInputIndex(attrs: Pick<Conv2dAttrs, 'hasBias' | 'hasResidual' | 'hasInScale'>): { bias: number; residual: number; inScale: number; count: number } {
  let i = 2;
  const bias = attrs.hasBias ? i++ : -1;
  const residual = attrs.hasResidual ? i++ : -1;
  const inScale = attrs.hasInScale ? i++ : -1;
  return { bias, residual, inScale, count: i };
}

/** Output spatial size of one dimension (PyTorch): floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1. */
function outSize(inSize: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((inSize + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

function checkPair(name: string, v: unknown, min: number, inputs: Shape[]): [number, number] {
  check(
    Array.isArray(v) && v.length === 2 && v.every((d) => Number.isInteger(d) && d >= min),
    'conv2d',
    `${name} must be two integers >= ${min}, got ${JSON.stringify(v)}`,
    inputs,
  );
  return v as [number, number];
}

/** Validated geometry of a conv2d. */
interface Geometry {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  Ho: number;
  Wo: number;
}

function geometry(inputs: Shape[], attrs: Conv2dAttrs): Geometry {
  const idx = conv2dInputIndex(attrs);
  const what = ['x', 'W', attrs.hasBias && 'bias', attrs.hasResidual && 'residual', attrs.hasInScale && 'inScale'].filter(Boolean).join(', ');
  check(inputs.length === idx.count, 'conv2d', `needs ${idx.count} inputs (${what}), got ${inputs.length}`, inputs);
  const [N, Cin, H, W] = checkRank('conv2d', 'x', inputs[0], 4, inputs) as [number, number, number, number];
  const [Cout, wCin, wkh, wkw] = checkRank('conv2d', 'W', inputs[1], 4, inputs) as [number, number, number, number];
  const [kh, kw] = checkPair('kernel', attrs.kernel, 1, inputs);
  const [sh, sw] = checkPair('stride', attrs.stride, 1, inputs);
  const [ph, pw] = checkPair('pad', attrs.pad, 0, inputs);
  const [dh, dw] = checkPair('dilation', attrs.dilation ?? [1, 1], 1, inputs);
  check(wCin === Cin, 'conv2d', `W has ${wCin} input channels but x has ${Cin} (only groups = 1; depthwise is its own op)`, inputs);
  check(wkh === kh && wkw === kw, 'conv2d', `W is a ${wkh}x${wkw} kernel but attrs.kernel is [${kh}, ${kw}]`, inputs);
  const Ho = outSize(H, kh, sh, ph, dh);
  const Wo = outSize(W, kw, sw, pw, dw);
  check(Ho > 0 && Wo > 0, 'conv2d', `empty output: ${H}x${W} input, ${kh}x${kw} kernel, pad [${ph}, ${pw}], dilation [${dh}, ${dw}] give ${Ho}x${Wo}`, inputs);
  if (attrs.hasBias) {
    const b = inputs[idx.bias]!;
    check(b.length === 1 && b[0] === Cout, 'conv2d', `bias must be [${Cout}], got [${b.join(', ')}]`, inputs);
  }
  if (attrs.hasResidual) {
    const r = inputs[idx.residual]!;
    const want = [N, Cout, Ho, Wo];
    check(r.length === 4 && r.every((d, i) => d === want[i]), 'conv2d', `residual must be [${want.join(', ')}] (the output shape), got [${r.join(', ')}]`, inputs);
  }
  if (attrs.hasInScale) {
    const s = inputs[idx.inScale]!;
    const ok = (s.length === 2 || (s.length === 4 && s[2] === 1 && s[3] === 1)) && s[0] === N && s[1] === Cin;
    check(ok, 'conv2d', `inScale must be [${N}, ${Cin}] (or [${N}, ${Cin}, 1, 1]), got [${s.join(', ')}]`, inputs);
  }
  return { N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo };
}

const ALL_OFF = { hasBias: false, hasResidual: false, hasInScale: false } as const;

/** Shorthand for test cases. */
function conv(k: number, s: number, p: number, act: Activation, flags: Partial<Pick<Conv2dAttrs, 'hasBias' | 'hasResidual' | 'hasInScale' | 'dilation'>> = {}): Conv2dAttrs {
  return { kernel: [k, k], stride: [s, s], pad: [p, p], act, ...ALL_OFF, ...flags };
}

/** Threads per workgroup of the split-K reduction pass. */
const REDUCE_WG = 256;
/** Split K when a GEMM has fewer output tiles than this (a large GPU would sit mostly idle)... */
export const SPLITK_MAX_TILES = 128;
/** ...into enough slices to give about this many workgroups... */
export const SPLITK_TARGET_WORKGROUPS = 256;
/** ...each summing at least this much of K, and at most this many slices. */
export const SPLITK_MIN_CHUNK = 256;
export const SPLITK_MAX_SPLITS = 16;

/**
 * How many slices to cut K into: 1 unless the GEMM has few tiles and a long K (deep layers at small batch, where
 * a few dozen workgroups would each walk thousands of K steps while most of the GPU idles).
 */
export function chooseSplitK(tiles: number, K: number, TK: number): { splits: number; kChunk: number } {
  let splits = 1;
  if (tiles < SPLITK_MAX_TILES && K >= 2 * SPLITK_MIN_CHUNK)
    splits = Math.min(Math.ceil(SPLITK_TARGET_WORKGROUPS / tiles), Math.floor(K / SPLITK_MIN_CHUNK), SPLITK_MAX_SPLITS);
  const kChunk = Math.ceil(K / splits / TK) * TK;
  return { splits: Math.ceil(K / kChunk), kChunk };
}

/**
 * Storage bindings 1.. in order: `first`, then each optional input that is present (`at`: its binding number, 0
 * for an absent one, index -1), then `last` (binding number `last`).
 */
function bindingList(first: Binding[], optional: number[], last: Binding): { bindings: Binding[]; at: number[]; last: number } {
  const bindings = [...first];
  const at = optional.map((input) => (input < 0 ? 0 : (bindings.push({ input }), bindings.length)));
  bindings.push(last);
  return { bindings, at, last: bindings.length };
}

function tileDefines(t: ConvTile) {
  return { TM: t.TM, TN: t.TN, TK: t.TK, RM: t.RM, RN: t.RN };
}

/**
 * Whether a convolution runs on the matrix units with f16 operands when a graph is compiled with precision 'f16'
 * (on an adapter that passes {@link f16MatmulSupport}): pointwise (1x1, stride 1, no padding), the pixels of an
 * image whole 16-pixel blocks, more than 16 output channels and 64 columns, K not split. The rest stays f32.
 */
export function takesMmaPath(g: Pick<ReturnType<typeof geometry>, 'N' | 'Cout' | 'Ho' | 'Wo' | 'kh' | 'kw' | 'sh' | 'sw' | 'ph' | 'pw'>, splits: number): boolean {
  const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
  return pointwise && (g.Ho * g.Wo) % 16 === 0 && splits === 1 && g.Cout > 16 && g.N * g.Ho * g.Wo > 64;
}

/** The f32 kernel's tile, tile counts and K split for a GEMM of M rows, `cols` columns and depth K. */
function f32Plan(M: number, cols: number, K: number) {
  const tile = chooseConvTile(M, cols);
  const colTiles = Math.ceil(cols / tile.TN);
  const rowTiles = Math.ceil(M / tile.TM);
  const { splits, kChunk } = tilePolicy === 'legacy' ? { splits: 1, kChunk: Math.ceil(K / tile.TK) * tile.TK } : chooseSplitK(colTiles * rowTiles, K, tile.TK);
  return { tile, colTiles, rowTiles, splits, kChunk };
}

/** Geometry, tile, grid and K split of a conv2d dispatch context (shared by scratch() and dispatch()). */
function convPlan(ctx: OpContext<Conv2dAttrs>) {
  const g = geometry(ctx.inputs, ctx.attrs);
  const idx = conv2dInputIndex(ctx.attrs);
  const M = g.Cout;
  const cols = g.N * g.Ho * g.Wo;
  const K = g.Cin * g.kh * g.kw;
  const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
  const { tile, colTiles, rowTiles, splits, kChunk } = f32Plan(M, cols, K);
  const mt = ctx.caps.precision === 'f16' && f16MatmulSupport(ctx.caps) === null && takesMmaPath(g, splits) ? chooseMmaTile(M) : null;
  if (mt) {
    const sc = Math.ceil(cols / mmaCols(mt));
    const sr = Math.ceil(M / mmaRows(mt));
    if (sr > maxDim) throw new ShapeError('conv2d', `${M} output channels need ${sr} row tiles, more than the ${maxDim} workgroups a dimension allows`, ctx.inputs);
    const sgz = Math.ceil(sc / maxDim);
    return { g, idx, M, cols, K, tile, mma: mt, colTiles: sc, rowTiles: sr, gx: Math.ceil(sc / sgz), gz: sgz, splits: 1, kChunk: K };
  }
  if (rowTiles * splits > maxDim) throw new ShapeError('conv2d', `${M} output channels need ${rowTiles * splits} row tiles, more than the ${maxDim} workgroups a dimension allows`, ctx.inputs);
  const gz = Math.ceil(colTiles / maxDim);
  const gx = Math.ceil(colTiles / gz);
  return { g, idx, M, cols, K, tile, mma: null, colTiles, rowTiles, gx, gz, splits, kChunk };
}

/**
 * A tile of the f16 matrix-unit kernel (kernels/conv2d_mma.wgsl): WR x WC subgroups of 32 threads, each owning
 * FM x FN result matrices of 16 x 16, so the workgroup owns (WR * FM * 16) x (WC * FN * 16) outputs.
 */
export interface MmaTile {
  name: string;
  WR: number;
  WC: number;
  FM: number;
  FN: number;
}
const mmaRows = (t: MmaTile) => t.WR * t.FM * 16;
const mmaCols = (t: MmaTile) => t.WC * t.FN * 16;

/**
 * The matrix-unit tiles (each subgroup: 32 x 64 outputs, the best shape of a plain subgroup-matrix GEMM measured on
 * the H100, docs/performance.md):
 * - m32:  32 x 128, 1 x 2 subgroups: Cout <= 32.
 * - m64:  64 x 128, 2 x 2 subgroups: Cout <= 64.
 * - m128: 128 x 128, 4 x 2 subgroups: the rest.
 */
export const MMA_TILES = {
  m32: { name: 'm32', WR: 1, WC: 2, FM: 2, FN: 4 },
  m64: { name: 'm64', WR: 2, WC: 2, FM: 2, FN: 4 },
  m128: { name: 'm128', WR: 4, WC: 2, FM: 2, FN: 4 },
} as const satisfies Record<string, MmaTile>;

/** Threads per workgroup of the f16 conversion passes. */
const CONVERT_WG = 256;

/** Element counts of the f16 copies of the matrix-unit path: input [N, Kp, HW] and weights [Mp, Kp] (K, M rounded up to 16). */
function mmaCopies(p: { g: { N: number; H: number; W: number }; M: number; K: number }) {
  const Kp = Math.ceil(p.K / 16) * 16;
  const Mp = Math.ceil(p.M / 16) * 16;
  return { Kp, Mp, xh: p.g.N * Kp * p.g.H * p.g.W, wh: Mp * Kp };
}

/**
 * Whether the matrix-unit GEMM reads x itself as its f16 input copy: x stored as f16 (half storage), dense (no
 * channel view), no squeeze-excite scale, and K a multiple of 16 (then x [N, Cin, HW] is the [N, Kp, HW] copy).
 */
function mmaReadsInputInPlace(ctx: OpContext<Conv2dAttrs>, K: number): boolean {
  const xv = ctx.inViews[0]!;
  return halfIn(ctx, 0) && !ctx.attrs.hasInScale && K % 16 === 0 && xv.cOff === 0 && xv.cTot === ctx.inputs[0]![1];
}

/**
 * Whether the matrix-unit path's f16 weight copy is made once when the graph is compiled ({@link OpDef.prepare}:
 * the weights are constants there) instead of by a conversion pass in every run.
 */
const mmaWeightsPrepared = (ctx: Pick<OpContext<Conv2dAttrs>, 'constant'>): boolean => ctx.constant?.[1] ?? false;

/** Picks the matrix-unit tile for a GEMM of M = Cout rows (workgroup memory: 2 KiB per subgroup, at most 16 KiB). */
export function chooseMmaTile(M: number): MmaTile {
  return M <= 32 ? MMA_TILES.m32 : M <= 64 ? MMA_TILES.m64 : MMA_TILES.m128;
}

// Cases share define sets where they can (each new set is a pipeline compile, ~1-3 s on SwiftShader).
const cases: TestCase<Conv2dAttrs>[] = [
  // wide tile (Cout <= 16)
  { name: '1x1 s1 bias (pointwise path, wide tile)', inputs: [[2, 8, 5, 6], [12, 8, 1, 1], [12]], attrs: conv(1, 1, 0, 'none', { hasBias: true }) },
  { name: '1x1 s1 Cin 5 (K < TK) bias', inputs: [[3, 5, 7, 9], [7, 5, 1, 1], [7]], attrs: conv(1, 1, 0, 'none', { hasBias: true }) },
  { name: '3x3 s1 p1 bias relu', inputs: [[1, 6, 8, 8], [10, 6, 3, 3], [10]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
  { name: 'stem 3x3 s2 p1 Cin 3 bias silu', inputs: [[2, 3, 15, 17], [16, 3, 3, 3], [16]], attrs: conv(3, 2, 1, 'silu', { hasBias: true }) },
  { name: '5x5 s1 p2 bias sigmoid', inputs: [[1, 4, 9, 7], [6, 4, 5, 5], [6]], attrs: conv(5, 1, 2, 'sigmoid', { hasBias: true }) },
  { name: '5x5 s2 p2 bias tanh', inputs: [[2, 5, 11, 10], [7, 5, 5, 5], [7]], attrs: conv(5, 2, 2, 'tanh', { hasBias: true }) },
  { name: '3x3 s1 p1 7x9 Cin 5 Cout 13 batch 3 bias silu', inputs: [[3, 5, 7, 9], [13, 5, 3, 3], [13]], attrs: conv(3, 1, 1, 'silu', { hasBias: true }) },
  { name: '3x3 dilation 2 p2', inputs: [[1, 4, 9, 9], [5, 4, 3, 3]], attrs: conv(3, 1, 2, 'none', { dilation: [2, 2] }) },
  { name: '1x1 s2 (general path) bias relu', inputs: [[2, 6, 7, 7], [9, 6, 1, 1], [9]], attrs: conv(1, 2, 0, 'relu', { hasBias: true }) },
  { name: '3x1 kernel s(2,1) p(1,0)', inputs: [[2, 3, 8, 5], [4, 3, 3, 1]], attrs: { kernel: [3, 1], stride: [2, 1], pad: [1, 0], act: 'none', ...ALL_OFF } },
  { name: 'Cout 1 3x3 p1 bias sigmoid', inputs: [[2, 9, 6, 7], [1, 9, 3, 3], [1]], attrs: conv(3, 1, 1, 'sigmoid', { hasBias: true }) },
  {
    name: 'MBConv projection: 1x1 + bias + residual + inScale',
    inputs: [[2, 12, 5, 5], [7, 12, 1, 1], [7], [2, 7, 5, 5], [2, 12]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
  },
  { name: 'residual added after relu', inputs: [[2, 6, 5, 4], [5, 6, 3, 3], [5], [2, 5, 5, 4]], attrs: conv(3, 1, 1, 'relu', { hasBias: true, hasResidual: true }) },
  { name: '3x3 s2 p1 inScale [N,Cin,1,1] (padded gather)', inputs: [[3, 5, 9, 8], [6, 5, 3, 3], [3, 5, 1, 1]], attrs: conv(3, 2, 1, 'tanh', { hasInScale: true }) },
  {
    name: 'output into a channel view (cOff 3 of 20)',
    inputs: [[2, 5, 6, 7], [7, 5, 3, 3], [7]],
    attrs: conv(3, 1, 1, 'silu', { hasBias: true }),
    outViews: [{ cOff: 3, cTot: 20 }],
  },
  {
    name: 'x and residual from channel views, into a view',
    inputs: [[2, 6, 5, 5], [9, 6, 3, 3], [9], [2, 9, 5, 5]],
    attrs: conv(3, 1, 1, 'relu', { hasBias: true, hasResidual: true }),
    inViews: [{ cOff: 2, cTot: 11 }, undefined, undefined, { cOff: 5, cTot: 14 }],
    outViews: [{ cOff: 1, cTot: 12 }],
  },
  {
    name: 'pointwise from a channel view + bias + residual + inScale',
    inputs: [[2, 7, 4, 6], [10, 7, 1, 1], [10], [2, 10, 4, 6], [2, 7]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 4, cTot: 13 }],
  },
  // tall tile (Cout > 16, N*Ho*Wo <= 64)
  { name: 'tall tile: Cout 40, 27 columns, K 180, bias relu', inputs: [[3, 20, 3, 3], [40, 20, 3, 3], [40]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
  {
    name: 'tall tile: Cout 70, 5x5 s2, residual, into a view',
    inputs: [[1, 9, 9, 10], [70, 9, 5, 5], [70], [1, 70, 5, 5]],
    attrs: conv(5, 2, 2, 'tanh', { hasBias: true, hasResidual: true }),
    outViews: [{ cOff: 2, cTot: 75 }],
  },
  // split K (few tiles, long K): tall tile, 4 slices of 1170; big tile, pointwise with every epilogue input
  { name: 'split K: Cout 40, Cin 130, 3x3 p1 on 1x5x5 (K 1170 in 4 slices), bias silu', inputs: [[1, 130, 5, 5], [40, 130, 3, 3], [40]], attrs: conv(3, 1, 1, 'silu', { hasBias: true }) },
  {
    name: 'split K: pointwise Cout 70, Cin 1100 on 1x9x11 (K in 4 slices), bias, residual, inScale, views',
    inputs: [[1, 1100, 9, 11], [70, 1100, 1, 1], [70], [1, 70, 9, 11], [1, 1100]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 5, cTot: 1110 }, undefined, undefined, { cOff: 2, cTot: 80 }],
    outViews: [{ cOff: 1, cTot: 75 }],
  },
  // mid tile (16 < Cout <= 32, N*Ho*Wo > 64)
  { name: 'mid tile pointwise: Cout 30, 2x12x9x11, bias silu + residual', inputs: [[2, 12, 9, 11], [30, 12, 1, 1], [30], [2, 30, 9, 11]], attrs: conv(1, 1, 0, 'silu', { hasBias: true, hasResidual: true }) },
  { name: 'mid tile: Cout 17, 3x3 s1 p1 from 3x10x13x15 into a view, bias relu', inputs: [[3, 10, 13, 15], [17, 10, 3, 3], [17]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }), outViews: [{ cOff: 4, cTot: 25 }] },
  // big tile (Cout > 16, N*Ho*Wo > 64)
  { name: 'big tile: Cout 70, 3x10x10, Cin 40, 3x3 p1 bias relu', inputs: [[3, 40, 10, 10], [70, 40, 3, 3], [70]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
  {
    name: 'big tile pointwise: inScale + residual, views',
    inputs: [[2, 24, 9, 9], [36, 24, 1, 1], [36], [2, 36, 9, 9], [2, 24]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 3, cTot: 30 }, undefined, undefined, { cOff: 0, cTot: 40 }],
    outViews: [{ cOff: 36, cTot: 80 }],
  },
  { name: 'big tile: 3x3 s2 p1 Cout 33 bias relu', inputs: [[2, 7, 21, 19], [33, 7, 3, 3], [33]], attrs: conv(3, 2, 1, 'relu', { hasBias: true }) },
  // Pointwise shapes the f16 matrix-unit path takes under precision 'f16' (pixels per image a multiple of 16; odd
  // K and Cout exercise the zero padding to 16); under f32 they are more big/mid tile cases.
  { name: 'mma m128: pointwise Cout 150, Cin 37 on 2x8x12, bias silu', inputs: [[2, 37, 8, 12], [150, 37, 1, 1], [150]], attrs: conv(1, 1, 0, 'silu', { hasBias: true }) },
  {
    name: 'mma m64: pointwise Cout 40, Cin 70 on 3x4x20, inScale + residual, views',
    inputs: [[3, 70, 4, 20], [40, 70, 1, 1], [40], [3, 40, 4, 20], [3, 70]],
    attrs: conv(1, 1, 0, 'tanh', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 5, cTot: 80 }, undefined, undefined, { cOff: 2, cTot: 45 }],
    outViews: [{ cOff: 1, cTot: 41 }],
  },
  { name: 'mma m32: pointwise Cout 24, Cin 16 on 2x16x16, no bias, relu', inputs: [[2, 16, 16, 16], [24, 16, 1, 1]], attrs: conv(1, 1, 0, 'relu') },
];

/** The conv2d op. */
export const conv2d = defineOp<Conv2dAttrs>({
  name: 'conv2d',
  kind: 'conv',
  infer(inputs, attrs) {
    const g = geometry(inputs, attrs);
    return [[g.N, g.Cout, g.Ho, g.Wo]];
  },
  halfIO({ attrs, inputs, outputs }) {
    // x and the residual are read per element (any layout); the output is written in pairs of columns of one
    // image (HoWo even), not by the split-K passes.
    const g = geometry(inputs, attrs);
    const idx = conv2dInputIndex(attrs);
    const outOk = (g.Ho * g.Wo) % 2 === 0 && f32Plan(g.Cout, g.N * g.Ho * g.Wo, g.Cin * g.kh * g.kw).splits === 1;
    return { inputs: inputs.map((_, i) => i === 0 || i === idx.residual), outputs: [outOk] };
  },
  scratch(ctx) {
    const p = convPlan(ctx);
    if (p.mma) {
      const { xh, wh } = mmaCopies(p);
      // the f16 copies, in f32 words: the weights unless prepared, then the input unless the GEMM reads it in place
      return [...(mmaWeightsPrepared(ctx) ? [] : [halfWords(wh)]), ...(mmaReadsInputInPlace(ctx, p.K) ? [] : [halfWords(xh)])];
    }
    return p.splits > 1 ? [p.splits * p.M * p.cols] : [];
  },
  prepare(ctx) {
    const p = convPlan(ctx);
    if (!p.mma || !mmaWeightsPrepared(ctx)) return [];
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
  },
  dispatch(ctx) {
    const { attrs } = ctx;
    const { g, idx, M, cols, K, tile, mma, colTiles, rowTiles, gx, gz, splits, kChunk } = convPlan(ctx);
    for (const [i, what] of [
      [1, 'W'],
      [idx.bias, 'bias'],
      [idx.inScale, 'inScale'],
    ] as const) {
      if (i < 0) continue;
      const v = ctx.inViews[i]!;
      const dense = denseView(ctx.inputs[i]!);
      check(v.cOff === 0 && v.cTot === dense.cTot, 'conv2d', `${what} cannot be a channel view`);
    }
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    const rv = attrs.hasResidual ? ctx.inViews[idx.residual]! : { cOff: 0, cTot: 0 };
    const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
    const params = [
      M, cols, K, g.Cin, g.H, g.W, g.H * g.W, g.Wo, g.Ho * g.Wo, g.kw, g.kh * g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
      xv.cOff, xv.cTot, yv.cOff, yv.cTot, rv.cOff, rv.cTot, colTiles, rowTiles, kChunk, splits,
    ];
    const xh16 = halfIn(ctx, 0);
    const res16 = attrs.hasResidual && halfIn(ctx, idx.residual);
    const y16 = halfOut(ctx, 0);
    const epilogueDefines = { ACT: ACT_CODE[attrs.act], HAS_BIAS: attrs.hasBias ? 1 : 0, HAS_RES: attrs.hasResidual ? 1 : 0, RES_F16: res16 ? 1 : 0, Y_F16: y16 ? 1 : 0 };
    const epilogueBytes = (attrs.hasBias ? M : 0) * 4 + (attrs.hasResidual ? M * cols * (res16 ? 2 : 4) : 0) + M * cols * (y16 ? 2 : 4);
    const xBytes = numel(ctx.inputs[0]!) * (xh16 ? 2 : 4);
    const inBytes = xBytes + (M * K + (attrs.hasInScale ? g.N * g.Cin : 0)) * 4;
    if (mma) {
      // f16 matrix units: round the weights and the (scaled) input to zero-padded f16 copies, then the GEMM.
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
          defines: { ENTRY_CONVERT: 1, WG: CONVERT_WG, HAS_SCALE: attrs.hasInScale ? 1 : 0, X_F16: xh16 ? 1 : 0, BIND_DST: xc.last },
          grid: grid1d(xh / 2, CONVERT_WG, maxDim),
          params: mp(xh, g.N, xv.cOff, xv.cTot, HW),
          bindings: xc.bindings,
          bytes: xBytes + xh * 2,
        });
      specs.push({
        kernel: 'conv2d_mma',
        defines: { ENTRY_CONVERT: 0, SG_WR: mma.WR, SG_WC: mma.WC, SG_FM: mma.FM, SG_FN: mma.FN, ...epilogueDefines, BIND_BIAS: gm.at[0]!, BIND_RES: gm.at[1]!, BIND_Y: gm.last },
        grid: [gx, rowTiles, gz],
        params: mp(0, M, 0, 0, HW),
        bindings: gm.bindings,
        flops: 2 * M * cols * K,
        bytes: (Mp * Kp + xh) * 2 + epilogueBytes,
      });
      return specs;
    }
    if (splits === 1) {
      const b = bindingList([{ input: 0 }, { input: 1 }], [idx.bias, idx.residual, idx.inScale], { output: 0 });
      const [BIND_BIAS, BIND_RES, BIND_SCALE] = b.at;
      return [
        {
          kernel: 'conv2d',
          defines: { ...tileDefines(tile), ENTRY_REDUCE: 0, SPLITK: 0, POINTWISE: pointwise ? 1 : 0, X_F16: xh16 ? 1 : 0, ...epilogueDefines, HAS_SCALE: attrs.hasInScale ? 1 : 0, BIND_BIAS, BIND_RES, BIND_SCALE, BIND_Y: b.last },
          grid: [gx, rowTiles, gz],
          params,
          bindings: b.bindings,
          flops: 2 * M * cols * K,
          bytes: inBytes + epilogueBytes,
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
        defines: { ...tileDefines(tile), ENTRY_REDUCE: 0, SPLITK: 1, POINTWISE: pointwise ? 1 : 0, X_F16: xh16 ? 1 : 0, ACT: 0, HAS_BIAS: 0, HAS_RES: 0, RES_F16: 0, Y_F16: 0, HAS_SCALE: attrs.hasInScale ? 1 : 0, BIND_BIAS: 0, BIND_RES: 0, BIND_SCALE: gemm.at[0]!, BIND_Y: gemm.last },
        grid: [gx, rowTiles * splits, gz],
        params,
        bindings: gemm.bindings,
        flops: 2 * M * cols * K,
        bytes: inBytes + splits * M * cols * 4,
      },
      {
        kernel: 'conv2d',
        defines: { ENTRY_REDUCE: 1, SPLITK: 0, WG: REDUCE_WG, ...epilogueDefines, HAS_SCALE: 0, BIND_BIAS: reduce.at[0]!, BIND_RES: reduce.at[1]!, BIND_SCALE: 0, BIND_Y: reduce.last },
        grid: grid1d(M * cols, REDUCE_WG, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
        params,
        bindings: reduce.bindings,
        flops: splits * M * cols,
        bytes: splits * M * cols * 4 + epilogueBytes,
      },
    ];
  },
  reference(inputs, ctx) {
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
    const half = ctx.precision === 'f16' && takesMmaPath(g, f32Plan(Cout, N * Ho * Wo, Cin * kh * kw).splits);
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
  },
  cases,
});
