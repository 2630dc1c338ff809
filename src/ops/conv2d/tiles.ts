/**
 * conv2d's choices, as pure functions of the GEMM's size (M = Cout rows, N*Ho*Wo columns, K = Cin*kh*kw): the
 * tile of the f32 kernel, the K split, whether a convolution takes the f16 matrix-unit path and its tile.
 */
import type { TilePolicy } from '../op.js';
import type { Geometry } from './shape.js';

/** A tile configuration of kernels/conv2d.wgsl: TM x TN outputs per workgroup, K chunk TK, RM x RN per thread. */
export interface ConvTile {
  name: string;
  TM: number;
  TN: number;
  TK: number;
  RM: number;
  RN: number;
  /** kernels/conv2d.wgsl's DIRECT variant: no workgroup memory, no barrier (TK unused; RM 4 or 8, RN 4, in vec4s). */
  direct?: boolean;
}

/**
 * The tile configurations. Each uses (TM/RM) * (TN/RN) threads and ((TM + 1) + TN) * TK * 4 bytes of workgroup
 * memory (at most 10.3 KiB: inside WebGPU's default 16 KiB and SwiftShader's 32 KiB). A 128 x 128 tile with 8 x 8
 * per thread was tried and measured on the H100 (2026-11-26): 1.7 TFLOP/s against 15 for `big` on the same
 * B7 layers (its 64 accumulators do not stay in registers), so it is not offered.
 * - big:  64 x 64 tile, 4 x 4 per thread, 256 threads: layers with many output channels and pixels.
 * - wide: 16 x 128 tile, 2 x 4 per thread, 256 threads: few output channels (Cout <= 16: stems, heads).
 * - mid:  32 x 128 tile, 4 x 4 per thread, 256 threads: 16 < Cout <= 32 (GR-U-Net decoder convs at high
 *   resolution, B7's first blocks), where `big` would leave half its rows empty (not under tile policy 'legacy').
 * - tall: 64 x 16 tile, 4 x 2 per thread, 128 threads: few output columns (N*Ho*Wo <= 64, deep layers of a
 *   classifier at batch 1), so that the rows, not the columns, give the workgroups.
 */
export const CONV_TILES = {
  big: { name: 'big', TM: 64, TN: 64, TK: 16, RM: 4, RN: 4 },
  mid: { name: 'mid', TM: 32, TN: 128, TK: 16, RM: 4, RN: 4 },
  wide: { name: 'wide', TM: 16, TN: 128, TK: 16, RM: 2, RN: 4 },
  tall: { name: 'tall', TM: 64, TN: 16, TK: 16, RM: 4, RN: 2 },
} as const satisfies Record<string, ConvTile>;

/**
 * The tiles of tile policy 'software' (kernels/conv2d.wgsl's DIRECT variant: 8 x 4 or 4 x 4 outputs per thread in
 * vec4 registers, no workgroup memory, no barrier), for the CPU-run adapters (SwiftShader, lavapipe): there the
 * staged kernel's barriers turn a workgroup into coroutines and its indexed register arrays into memory. Measured on
 * SwiftShader and lavapipe on 2 cores (docs/performance.md): 3 to 12 times the staged kernel's rate (a 1-channel
 * head 20 to 100 times).
 * - s8:  8 x 64 tile, 8 x 4 per thread, 16 threads: the default (8 rows a thread beat 4 by 1.3 to 1.5 times on 3x3
 *   convolutions on both adapters).
 * - s4:  4 x 128 tile, 4 x 4 per thread, 32 threads: Cout <= 4 (a head's 1-channel output).
 * - s32: 32 x 16 tile, 8 x 4 per thread, 16 threads: few output columns (N*Ho*Wo <= 32: deep layers at batch 1).
 */
export const SOFTWARE_TILES = {
  s8: { name: 's8', TM: 8, TN: 64, TK: 1, RM: 8, RN: 4, direct: true },
  s4: { name: 's4', TM: 4, TN: 128, TK: 1, RM: 4, RN: 4, direct: true },
  s32: { name: 's32', TM: 32, TN: 16, TK: 1, RM: 8, RN: 4, direct: true },
} as const satisfies Record<string, ConvTile>;

/** Picks the tile configuration for a GEMM of M = Cout rows and `cols` = N*Ho*Wo columns, under a tile policy (GpuCaps.tiles). */
export function chooseConvTile(M: number, cols: number, tiles: TilePolicy = 'auto'): ConvTile {
  if (tiles === 'software') return M <= 4 ? SOFTWARE_TILES.s4 : cols <= 32 ? SOFTWARE_TILES.s32 : SOFTWARE_TILES.s8;
  if (M <= 16) return CONV_TILES.wide;
  if (cols <= 64) return CONV_TILES.tall;
  if (M <= 32 && tiles === 'auto') return CONV_TILES.mid;
  return CONV_TILES.big;
}

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
 * Whether a convolution runs on the matrix units with f16 operands when a graph is compiled with precision 'f16'
 * (on an adapter that passes {@link f16MatmulSupport}): pointwise (1x1, stride 1, no padding), the pixels of an
 * image whole 16-pixel blocks, more than 16 output channels and 64 columns, K not split. The rest stays f32.
 */
export function takesMmaPath(g: Pick<Geometry, 'N' | 'Cout' | 'Ho' | 'Wo' | 'kh' | 'kw' | 'sh' | 'sw' | 'ph' | 'pw'>, splits: number): boolean {
  const pointwise = g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
  return pointwise && (g.Ho * g.Wo) % 16 === 0 && splits === 1 && g.Cout > 16 && g.N * g.Ho * g.Wo > 64;
}

/** The f32 kernel's tile, tile counts and K split for a GEMM of M rows, `cols` columns and depth K, under a tile policy ('legacy' and 'software': no K split). */
export function f32Plan(M: number, cols: number, K: number, tiles: TilePolicy = 'auto') {
  const tile = chooseConvTile(M, cols, tiles);
  const colTiles = Math.ceil(cols / tile.TN);
  const rowTiles = Math.ceil(M / tile.TM);
  const { splits, kChunk } = tiles !== 'auto' ? { splits: 1, kChunk: Math.ceil(K / tile.TK) * tile.TK } : chooseSplitK(colTiles * rowTiles, K, tile.TK);
  return { tile, colTiles, rowTiles, splits, kChunk };
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
export const mmaRows = (t: MmaTile) => t.WR * t.FM * 16;
export const mmaCols = (t: MmaTile) => t.WC * t.FN * 16;

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

/** Element counts of the f16 copies of the matrix-unit path: input [N, Kp, HW] and weights [Mp, Kp] (K, M rounded up to 16). */
export function mmaCopies(p: { g: { N: number; H: number; W: number }; M: number; K: number }) {
  const Kp = Math.ceil(p.K / 16) * 16;
  const Mp = Math.ceil(p.M / 16) * 16;
  return { Kp, Mp, xh: p.g.N * Kp * p.g.H * p.g.W, wh: Mp * Kp };
}

/** Picks the matrix-unit tile for a GEMM of M = Cout rows (workgroup memory: 2 KiB per subgroup, at most 16 KiB). */
export function chooseMmaTile(M: number): MmaTile {
  return M <= 32 ? MMA_TILES.m32 : M <= 64 ? MMA_TILES.m64 : MMA_TILES.m128;
}
