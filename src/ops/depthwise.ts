/**
 * Depthwise KxK convolution (groups = channels) + bias + activation, PyTorch semantics, for the MBConv blocks of
 * EfficientNet: x [N, C, H, W], weight [C, 1, K, K], bias [C] (when hasBias, the default; BN is folded into
 * weight and bias at load time) -> y [N, C, Ho, Wo]. With `pool`, a second output [N, C] holds the mean of y
 * over each plane (the squeeze of squeeze-excite), computed in the same pass without atomics.
 * x and y may be channel views; the pooled output may be a channel view of an [N, F] buffer.
 * Kernel: kernels/depthwise.wgsl (one workgroup per output tile, input patch with halo in workgroup memory).
 */
import { ACT_CODE, applyActivation, type Activation } from './activation.js';
import { simdLanes } from '../gpu/caps.js';
import { check, checkRank, defineOp, grid1d, halfIn, halfOut, ShapeError, type Binding, type DispatchSpec, type OpContext, type Shape, type TestCase, type TilePolicy } from './op.js';

/** Attributes of {@link depthwise}. A square size may also be given as [k, k]. */
export interface DepthwiseAttrs {
  /** Kernel size K (odd). */
  kernel: number | readonly number[];
  /** Stride (default 1). */
  stride?: number | readonly number[];
  /** Zero padding on every side (default (K - 1) / 2). */
  pad?: number | readonly number[];
  /** Epilogue activation (default none). */
  act?: Activation;
  /** A bias vector is the third input (default true). */
  hasBias?: boolean;
  /** Also output the per-channel mean of y, [N, C] (default false). */
  pool?: boolean;
}

/** An output tile: TW columns, WGY thread rows, RPT output rows per thread (TW * WGY threads, a power of two). */
interface Tile {
  tw: number;
  wgy: number;
  rpt: number;
}

/**
 * Tile variants, smallest first: 8x8 outputs (64 threads), 16x16 (128), 32x16 (256), 32x32 (256 threads, 4 rows
 * each: less halo per output and more work per workgroup on large planes; not under tile policy 'legacy').
 */
const TILES: Tile[] = [
  { tw: 8, wgy: 8, rpt: 1 },
  { tw: 16, wgy: 8, rpt: 2 },
  { tw: 32, wgy: 8, rpt: 2 },
  { tw: 32, wgy: 8, rpt: 4 },
];

/** Threads per workgroup of the pool-finishing pass. */
const FINISH_WG = 64;

function scalar(op: string, what: string, v: number | readonly number[] | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v === 'number') return v;
  check(v.length === 2 && v[0] === v[1], op, `${what} must be a number or a square pair, got [${v.join(', ')}]`);
  return v[0]!;
}

/** Normalised geometry of a depthwise conv. */
interface Geometry {
  k: number;
  stride: number;
  pad: number;
}

function geometry(attrs: DepthwiseAttrs): Geometry {
  const k = scalar('depthwise', 'kernel', attrs.kernel, NaN);
  check(Number.isInteger(k) && k >= 1 && k % 2 === 1, 'depthwise', `kernel must be an odd positive integer, got ${String(attrs.kernel)}`);
  const stride = scalar('depthwise', 'stride', attrs.stride, 1);
  const pad = scalar('depthwise', 'pad', attrs.pad, (k - 1) / 2);
  check(Number.isInteger(stride) && stride >= 1, 'depthwise', `stride must be a positive integer, got ${stride}`);
  check(Number.isInteger(pad) && pad >= 0, 'depthwise', `pad must be a non-negative integer, got ${pad}`);
  return { k, stride, pad };
}

function outSize(inSize: number, g: Geometry): number {
  return Math.floor((inSize + 2 * g.pad - g.k) / g.stride) + 1;
}

/** Workgroup-memory bytes of a tile variant: the input patch and the pool tree. */
function tileBytes(t: Tile, g: Geometry): number {
  const inW = (t.tw - 1) * g.stride + g.k;
  const inH = (t.wgy * t.rpt - 1) * g.stride + g.k;
  return (inW * inH + t.tw * t.wgy) * 4;
}

/** Picks the tile for an output plane: the smallest that covers narrow planes, else 32x16 or 32x32; smaller if memory is short. */
function pickTile(ho: number, wo: number, g: Geometry, maxBytes: number, tiles: TilePolicy = 'auto'): Tile {
  let i = wo <= 8 && ho <= 8 ? 0 : wo <= 16 ? 1 : ho <= 16 || tiles === 'legacy' ? 2 : 3;
  while (i > 0 && tileBytes(TILES[i]!, g) > maxBytes) i--;
  const t = TILES[i]!;
  if (tileBytes(t, g) > maxBytes) throw new ShapeError('depthwise', `kernel ${g.k} stride ${g.stride} needs more workgroup memory than this device has`);
  return t;
}

/**
 * Tile choice and counts for a dispatch context, and the pool mode: 0 no pool, 1 partial sums per tile to scratch
 * and a second pass, 2 the mean written by the conv entry (one tile per plane, or the DIRECT entry of tile policy
 * 'software', which walks a whole plane per invocation).
 */
function plan(ctx: OpContext<DepthwiseAttrs>) {
  const g = geometry(ctx.attrs);
  const [N, C, H, W] = ctx.inputs[0]! as [number, number, number, number];
  const [, , Ho, Wo] = ctx.outputs[0]! as [number, number, number, number];
  const t = pickTile(Ho, Wo, g, ctx.caps.limits.maxComputeWorkgroupStorageSize, ctx.caps.tiles);
  const tilesX = Math.ceil(Wo / t.tw);
  const tiles = tilesX * Math.ceil(Ho / (t.wgy * t.rpt));
  const direct = ctx.caps.tiles === 'software';
  const mode = !ctx.attrs.pool ? 0 : tiles > 1 && !direct ? 1 : 2;
  return { g, N, C, H, W, Ho, Wo, t, tilesX, tiles, direct, mode };
}

/** The depthwise op: inputs x, weight, and bias when hasBias. */
export const depthwise = defineOp<DepthwiseAttrs>({
  name: 'depthwise',
  kind: 'conv',
  infer(inputs, attrs) {
    const hasBias = attrs.hasBias ?? true;
    check(inputs.length === (hasBias ? 3 : 2), 'depthwise', hasBias ? 'needs x, weight and bias' : 'needs x and weight (hasBias is false)', inputs);
    const g = geometry(attrs);
    const x = checkRank('depthwise', 'x', inputs[0], 4, inputs);
    const w = checkRank('depthwise', 'weight', inputs[1], 4, inputs);
    const [N, C, H, W] = x as [number, number, number, number];
    check(w[0] === C && w[1] === 1 && w[2] === g.k && w[3] === g.k, 'depthwise', `weight must be [${C}, 1, ${g.k}, ${g.k}]`, inputs);
    if (hasBias) {
      const b = checkRank('depthwise', 'bias', inputs[2], 1, inputs);
      check(b[0] === C, 'depthwise', `bias must have shape [${C}]`, inputs);
    }
    const Ho = outSize(H, g);
    const Wo = outSize(W, g);
    check(Ho >= 1 && Wo >= 1, 'depthwise', `kernel ${g.k} with pad ${g.pad} does not fit a ${H}x${W} plane`, inputs);
    const y: Shape = [N, C, Ho, Wo];
    return attrs.pool ? [y, [N, C]] : [y];
  },
  halfIO({ inputs, outputs }) {
    // Reads are per element (any layout); writes go in (column, column + 1) pairs within a row.
    return { inputs: inputs.map((_, i) => i === 0), outputs: outputs.map((s, i) => i === 0 && s[3]! % 2 === 0) };
  },
  scratch(ctx) {
    const p = plan(ctx);
    return p.mode === 1 ? [p.N * p.C * p.tiles] : [];
  },
  dispatch(ctx) {
    const { g, N, C, H, W, Ho, Wo, t, tilesX, tiles, direct, mode } = plan(ctx);
    const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
    const hasBias = ctx.attrs.hasBias ?? true;
    const pool = !!ctx.attrs.pool;
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    const pv = pool ? ctx.outViews[1]! : { cOff: 0, cTot: C };
    const invArea = 1 / (Ho * Wo);
    const outs = N * C * Ho * Wo;
    const bindings: Binding[] = [{ input: 0 }, { input: 1 }, ...(hasBias ? [{ input: 2 }] : []), { output: 0 }];
    const BIND_Y = bindings.length;
    if (mode === 1) bindings.push({ scratch: 0 });
    if (mode === 2) bindings.push({ output: 1 });
    const xh = halfIn(ctx, 0);
    const yh = halfOut(ctx, 0);
    const flops = 2 * outs * g.k * g.k + (pool ? outs : 0);
    const bytes = N * C * H * W * (xh ? 2 : 4) + (C * g.k * g.k + (hasBias ? C : 0) + (pool ? N * C : 0)) * 4 + outs * (yh ? 2 : 4);
    if (direct) {
      // Tile policy 'software': the DIRECT entry, one invocation per plane, the mean written by it (mode 2); a
      // workgroup is one SIMD group of the CPU-run adapter, so that a few planes still spread over the cores.
      const DIRECT_WG = simdLanes(ctx.caps);
      return [
        {
          kernel: 'depthwise',
          defines: {
            ENTRY_CONV: 1, DIRECT: 1, WG: DIRECT_WG, K: g.k, STRIDE: g.stride, RR: 2, ACT: ACT_CODE[ctx.attrs.act ?? 'none'], HAS_BIAS: hasBias ? 1 : 0, POOL: mode,
            X_F16: xh ? 1 : 0, Y_F16: yh ? 1 : 0, BIND_Y, BIND_POOL: BIND_Y + 1,
          },
          grid: grid1d(N * C, DIRECT_WG, maxDim),
          params: [C, H, W, Ho, Wo, g.pad, 0, N * C, xv.cOff, xv.cTot, yv.cOff, yv.cTot, pv.cOff, pv.cTot, { f32: invArea }],
          bindings,
          flops,
          bytes,
        },
      ];
    }
    check(tiles <= maxDim && C <= maxDim && N <= maxDim, 'depthwise', `grid [${tiles}, ${C}, ${N}] exceeds ${maxDim} workgroups per dimension`);
    const specs: DispatchSpec[] = [
      {
        kernel: 'depthwise',
        defines: {
          ENTRY_CONV: 1, K: g.k, STRIDE: g.stride, TW: t.tw, WGY: t.wgy, RPT: t.rpt, ACT: ACT_CODE[ctx.attrs.act ?? 'none'], HAS_BIAS: hasBias ? 1 : 0, POOL: mode,
          X_F16: xh ? 1 : 0, Y_F16: yh ? 1 : 0, BIND_Y, BIND_POOL: BIND_Y + 1,
        },
        grid: [tiles, C, N],
        params: [C, H, W, Ho, Wo, g.pad, tilesX, tiles, xv.cOff, xv.cTot, yv.cOff, yv.cTot, pv.cOff, pv.cTot, { f32: invArea }],
        bindings,
        flops,
        bytes,
      },
    ];
    if (mode === 1) {
      specs.push({
        kernel: 'depthwise',
        defines: { ENTRY_FINISH: 1, WG: FINISH_WG },
        grid: grid1d(N * C, FINISH_WG, maxDim),
        params: [N * C, C, tiles, pv.cOff, pv.cTot, { f32: invArea }],
        bindings: [{ scratch: 0 }, { output: 1 }],
        flops: N * C * tiles,
        bytes: (N * C * tiles + N * C) * 4,
      });
    }
    return specs;
  },
  reference([x, w, b], { attrs, inputs, outputs }) {
    const g = geometry(attrs);
    const hasBias = attrs.hasBias ?? true;
    const [N, C, H, W] = inputs[0]! as [number, number, number, number];
    const [, , Ho, Wo] = outputs[0]! as [number, number, number, number];
    const y = new Float32Array(N * C * Ho * Wo);
    const pooled = new Float32Array(N * C);
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++) {
        const xp = (n * C + c) * H * W;
        const yp = (n * C + c) * Ho * Wo;
        let sum = 0;
        for (let oy = 0; oy < Ho; oy++)
          for (let ox = 0; ox < Wo; ox++) {
            let acc = hasBias ? b![c]! : 0;
            for (let ky = 0; ky < g.k; ky++) {
              const iy = oy * g.stride - g.pad + ky;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < g.k; kx++) {
                const ix = ox * g.stride - g.pad + kx;
                if (ix < 0 || ix >= W) continue;
                acc += w![(c * g.k + ky) * g.k + kx]! * x![xp + iy * W + ix]!;
              }
            }
            const v = applyActivation(acc, attrs.act ?? 'none');
            y[yp + oy * Wo + ox] = v;
            sum += v;
          }
        pooled[n * C + c] = sum / (Ho * Wo);
      }
    return attrs.pool ? [y, pooled] : [y];
  },
  cases: depthwiseCases(),
});

function depthwiseCases(): TestCase<DepthwiseAttrs>[] {
  const dw = (name: string, x: [number, number, number, number], k: number, stride: number, act: Activation, pool: boolean, extra: Partial<TestCase<DepthwiseAttrs>> = {}, hasBias = true): TestCase<DepthwiseAttrs> => ({
    name,
    inputs: hasBias ? [x, [x[1], 1, k, k], [x[1]]] : [x, [x[1], 1, k, k]],
    attrs: { kernel: k, stride, pad: (k - 1) / 2, act, pool, ...(hasBias ? {} : { hasBias: false }) },
    ...extra,
  });
  return [
    dw('k3 s1 silu 7x9 C=5', [3, 5, 7, 9], 3, 1, 'silu', false),
    dw('k3 s2 relu 9x7 C=7 + pool', [3, 7, 9, 7], 3, 2, 'relu', true),
    dw('k5 s1 none 7x9 C=13 + pool', [2, 13, 7, 9], 5, 1, 'none', true),
    dw('k5 s2 silu 9x7 C=13', [3, 13, 9, 7], 5, 2, 'silu', false),
    dw('k3 s1 silu 5x5 C=13 (8x8 tile) + pool', [3, 13, 5, 5], 3, 1, 'silu', true),
    dw('k3 s1 silu 40x37 C=3 + pool over 4 tiles (32x32)', [1, 3, 40, 37], 3, 1, 'silu', true),
    dw('k3 s1 relu 13x40 C=3 + pool over 2 tiles (32x16)', [2, 3, 13, 40], 3, 1, 'relu', true),
    dw('k5 s2 relu 40x37 C=5 + pool (20x19 out: one 32x32 tile)', [2, 5, 40, 37], 5, 2, 'relu', true),
    dw('k3 s1 silu + pool, both outputs into views', [3, 5, 7, 9], 3, 1, 'silu', true, { outViews: [{ cOff: 2, cTot: 9 }, { cOff: 1, cTot: 8 }] }),
    dw('k3 s2 none from a channel view', [2, 7, 9, 7], 3, 2, 'none', false, { inViews: [{ cOff: 3, cTot: 12 }] }),
    dw('k5 s1 silu 40x37 from a view into views + pool over tiles', [1, 5, 40, 37], 5, 1, 'silu', true, { inViews: [{ cOff: 1, cTot: 7 }], outViews: [{ cOff: 3, cTot: 8 }, { cOff: 2, cTot: 9 }] }),
    dw('k3 s1 silu no bias + pool', [3, 5, 7, 9], 3, 1, 'silu', true, {}, false),
    // Even output widths: under half storage these also write f16 (pairs of columns).
    dw('k3 s1 silu 6x10 C=5 into a view + pool (even width)', [2, 5, 6, 10], 3, 1, 'silu', true, { outViews: [{ cOff: 1, cTot: 7 }] }),
    dw('k5 s2 relu 33x16 C=4 (8 x 17 out, even width)', [2, 4, 33, 16], 5, 2, 'relu', false),
    dw('k3 s1 silu 40x38 C=3 + pool over 4 tiles (32x32, even width)', [1, 3, 40, 38], 3, 1, 'silu', true),
  ];
}
