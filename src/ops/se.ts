/**
 * Channel squeeze-excitation (torchvision SqueezeExcitation; the decoder's cSE): fc1 and fc2 are 1x1 convs with
 * bias, weights w1 [S, C, 1, 1], b1 [S], w2 [C, S, 1, 1], b2 [C].
 *  - se_scale: pooled means [N, C] -> scale [N, C] = sigmoid(w2 * act1(w1 * pooled + b1) + b2), two dispatches
 *    (fc1 over the hidden units, fc2 + sigmoid over the channels).
 *    In an MBConv the means come from depthwise (pool: true) and the scale goes to the next 1x1 conv's inScale.
 *  - squeeze_excite: the whole block on x [N, C, H, W] -> y = x * scale, in four dispatches (partial plane sums,
 *    fc1, fc2 + sigmoid, channel scaling).
 * Kernel: kernels/se.wgsl.
 */
import { elementwiseLaunch } from './elementwise-common.js';
import { ACT_CODE, applyActivation, type Activation } from './activation.js';
import { check, checkRank, defineOp, grid1d, type DispatchSpec, type OpContext, type Shape, type TestCase } from './op.js';

/** Attributes of {@link seScale} and {@link squeezeExcite}. */
export interface SeAttrs {
  /** Activation between the two FCs. */
  act1: 'silu' | 'relu';
}

/** Threads per workgroup of every se.wgsl entry. */
const SE_WG = 256;
/** Threads per workgroup of the FC entries' DIRECT variant (tile policy 'software': one thread per unit, no barrier). */
const SE_DIRECT_WG = 16;
/** Largest hidden size S (workgroup memory of the FC entry). */
const SMAX = 1024;
/** Longest chunk of a plane one pool item sums; larger planes are cut so more workgroups share them. */
const CHUNK = 4096;

/** Smallest power of two >= v (v >= 1). */
function pow2Ceil(v: number): number {
  let p = 1;
  while (p < v) p *= 2;
  return p;
}

/** Checks w1, b1, w2, b2 (inputs 1..4) against C; returns S. */
function checkFc(op: string, inputs: Shape[], C: number, attrs: SeAttrs): number {
  check(attrs.act1 === 'silu' || attrs.act1 === 'relu', op, `act1 must be 'silu' or 'relu', got ${String(attrs.act1)}`, inputs);
  const w1 = checkRank(op, 'w1', inputs[1], 4, inputs);
  const S = w1[0]!;
  check(w1[1] === C && w1[2] === 1 && w1[3] === 1, op, `w1 must be [S, ${C}, 1, 1]`, inputs);
  check(S <= SMAX, op, `hidden size ${S} exceeds ${SMAX}`, inputs);
  const b1 = checkRank(op, 'b1', inputs[2], 1, inputs);
  check(b1[0] === S, op, `b1 must have shape [${S}]`, inputs);
  const w2 = checkRank(op, 'w2', inputs[3], 4, inputs);
  check(w2[0] === C && w2[1] === S && w2[2] === 1 && w2[3] === 1, op, `w2 must be [${C}, ${S}, 1, 1]`, inputs);
  const b2 = checkRank(op, 'b2', inputs[4], 1, inputs);
  check(b2[0] === C, op, `b2 must have shape [${C}]`, inputs);
  return S;
}

/** Threads per hidden unit in the FC1 dispatch (they read one w1 row together). */
function fc1Lanes(C: number): number {
  return Math.min(32, pow2Ceil(C));
}

/**
 * The FC dispatches: pooled_in (chunks partials per (n, c), times inv) -> hid [N, S] (scratch) -> scale.
 * FC1 spreads the hidden units over workgroups, FC2 the output channels: neither repeats the other's work.
 */
function fcDispatches(
  ctx: OpContext<SeAttrs>,
  N: number,
  C: number,
  S: number,
  pooled: { binding: { input: number } | { scratch: number }; cOff: number; cTot: number; chunks: number; inv: number },
  hid: { scratch: number },
  scale: { binding: { output: number } | { scratch: number }; cOff: number; cTot: number },
): DispatchSpec[] {
  // Tile policy 'software' (CPU-run adapters): the DIRECT entries, one thread per hidden unit / channel, small workgroups.
  const direct = ctx.caps.tiles === 'software';
  const WG = direct ? SE_DIRECT_WG : SE_WG;
  const lanes = direct ? 1 : fc1Lanes(C);
  const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
  const hBlocks = Math.ceil(S / (WG / lanes));
  const cBlocks = Math.ceil(C / WG);
  check(Math.max(hBlocks, cBlocks) <= maxDim && N <= maxDim, 'se', `grid [${Math.max(hBlocks, cBlocks)}, ${N}] exceeds ${maxDim} workgroups per dimension`);
  return [
    {
      kernel: 'se',
      defines: { ENTRY_FC1: 1, WG, ACT: ACT_CODE[ctx.attrs.act1], DIRECT: direct ? 1 : 0 },
      grid: [hBlocks, N],
      params: [C, S, lanes, pooled.chunks, pooled.cOff, pooled.cTot, { f32: pooled.inv }],
      bindings: [pooled.binding, { input: 1 }, { input: 2 }, hid],
      flops: N * (2 * S * C + S * C * pooled.chunks),
      bytes: (N * C * pooled.chunks + S * C + S + N * S) * 4,
    },
    {
      kernel: 'se',
      defines: { ENTRY_FC2: 1, WG, SMAX, DIRECT: direct ? 1 : 0 },
      grid: [cBlocks, N],
      params: [C, S, scale.cOff, scale.cTot],
      bindings: [hid, { input: 3 }, { input: 4 }, scale.binding],
      flops: N * 2 * C * S,
      bytes: (N * S + C * S + C + N * C) * 4,
    },
  ];
}

/** CPU reference of the two FCs for one image. */
function fcReference(pooled: (c: number) => number, w1: Float32Array, b1: Float32Array, w2: Float32Array, b2: Float32Array, C: number, S: number, act1: Activation): number[] {
  const hid: number[] = [];
  for (let s = 0; s < S; s++) {
    let acc = b1[s]!;
    for (let c = 0; c < C; c++) acc += w1[s * C + c]! * pooled(c);
    hid.push(applyActivation(acc, act1));
  }
  const out: number[] = [];
  for (let c = 0; c < C; c++) {
    let z = b2[c]!;
    for (let s = 0; s < S; s++) z += w2[c * S + s]! * hid[s]!;
    out.push(1 / (1 + Math.exp(-z)));
  }
  return out;
}

/** Input shapes of an SE with C channels, S hidden. */
function fcShapes(C: number, S: number): Shape[] {
  return [
    [S, C, 1, 1],
    [S],
    [C, S, 1, 1],
    [C],
  ];
}

/** The se_scale op: inputs pooled [N, C], w1, b1, w2, b2 -> scale [N, C]. */
export const seScale = defineOp<SeAttrs>({
  name: 'se_scale',
  kind: 'reduction',
  infer(inputs, attrs) {
    check(inputs.length === 5, 'se_scale', 'needs pooled, w1, b1, w2, b2', inputs);
    const p = checkRank('se_scale', 'pooled', inputs[0], 2, inputs);
    checkFc('se_scale', inputs, p[1]!, attrs);
    return [[p[0]!, p[1]!]];
  },
  scratch(ctx) {
    return [ctx.inputs[0]![0]! * ctx.inputs[1]![0]!];
  },
  dispatch(ctx) {
    const [N, C] = ctx.inputs[0]! as [number, number];
    const S = ctx.inputs[1]![0]!;
    const pv = ctx.inViews[0]!;
    const sv = ctx.outViews[0]!;
    return fcDispatches(ctx, N, C, S, { binding: { input: 0 }, cOff: pv.cOff, cTot: pv.cTot, chunks: 1, inv: 1 }, { scratch: 0 }, { binding: { output: 0 }, cOff: sv.cOff, cTot: sv.cTot });
  },
  reference([p, w1, b1, w2, b2], { attrs, inputs }) {
    const [N, C] = inputs[0]! as [number, number];
    const S = inputs[1]![0]!;
    const y = new Float32Array(N * C);
    for (let n = 0; n < N; n++) y.set(fcReference((c) => p![n * C + c]!, w1!, b1!, w2!, b2!, C, S, attrs.act1), n * C);
    return [y];
  },
  cases: [
    ...(['silu', 'relu'] as const).map((act1): TestCase<SeAttrs> => ({ name: `C=13 S=3 ${act1}`, inputs: [[3, 13], ...fcShapes(13, 3)], attrs: { act1 } })),
    { name: 'C=13 S=3 silu, pooled from a view, scale into a view', inputs: [[3, 13], ...fcShapes(13, 3)], attrs: { act1: 'silu' }, inViews: [{ cOff: 2, cTot: 20 }], outViews: [{ cOff: 5, cTot: 30 }] },
    {
      name: 'C=270 S=260 relu (two channel blocks, two hidden passes)',
      inputs: [[2, 270], ...fcShapes(270, 260)],
      attrs: { act1: 'relu' },
      ranges: [undefined, [-0.1, 0.1], undefined, [-0.1, 0.1]],
    },
  ],
});

/** Pool split of squeeze_excite: chunks per plane, chunk length, lanes per item. */
function poolPlan(inner: number) {
  const chunks = Math.ceil(inner / CHUNK);
  const chunkLen = Math.ceil(inner / chunks);
  const lanes = Math.min(SE_WG, pow2Ceil(Math.ceil(chunkLen / 4)));
  return { chunks, chunkLen, lanes };
}

/** The squeeze_excite op: inputs x [N, C, H, W], w1, b1, w2, b2 -> y = x * scale. */
export const squeezeExcite = defineOp<SeAttrs>({
  name: 'squeeze_excite',
  kind: 'reduction',
  infer(inputs, attrs) {
    check(inputs.length === 5, 'squeeze_excite', 'needs x, w1, b1, w2, b2', inputs);
    const x = checkRank('squeeze_excite', 'x', inputs[0], 4, inputs);
    checkFc('squeeze_excite', inputs, x[1]!, attrs);
    return [x];
  },
  scratch(ctx) {
    const [N, C, H, W] = ctx.inputs[0]! as [number, number, number, number];
    return [N * C * poolPlan(H * W).chunks, N * C, N * ctx.inputs[1]![0]!];
  },
  dispatch(ctx) {
    const [N, C, H, W] = ctx.inputs[0]! as [number, number, number, number];
    const S = ctx.inputs[1]![0]!;
    const inner = H * W;
    const { chunks, chunkLen, lanes } = poolPlan(inner);
    const items = N * C * chunks;
    const total = N * C * inner;
    const maxDim = ctx.caps.limits.maxComputeWorkgroupsPerDimension;
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    return [
      {
        kernel: 'se',
        defines: { ENTRY_POOL: 1, WG: SE_WG },
        grid: grid1d(items, SE_WG / lanes, maxDim),
        params: [items, C, inner, chunks, chunkLen, lanes, xv.cOff, xv.cTot],
        bindings: [{ input: 0 }, { scratch: 0 }],
        flops: total,
        bytes: (total + items) * 4,
      },
      ...fcDispatches(ctx, N, C, S, { binding: { scratch: 0 }, cOff: 0, cTot: C, chunks, inv: 1 / inner }, { scratch: 2 }, { binding: { scratch: 1 }, cOff: 0, cTot: C }),
      {
        kernel: 'se',
        defines: { ENTRY_APPLY: 1, ...elementwiseLaunch(ctx.caps, ctx.outputs[0]!).defines },
        grid: elementwiseLaunch(ctx.caps, ctx.outputs[0]!).grid,
        params: [total, C, inner, xv.cOff, xv.cTot, yv.cOff, yv.cTot],
        bindings: [{ input: 0 }, { scratch: 1 }, { output: 0 }],
        flops: total,
        bytes: (2 * total + N * C) * 4,
      },
    ];
  },
  reference([x, w1, b1, w2, b2], { attrs, inputs }) {
    const [N, C, H, W] = inputs[0]! as [number, number, number, number];
    const S = inputs[1]![0]!;
    const inner = H * W;
    const y = new Float32Array(N * C * inner);
    for (let n = 0; n < N; n++) {
      const means: number[] = [];
      for (let c = 0; c < C; c++) {
        let sum = 0;
        for (let s = 0; s < inner; s++) sum += x![(n * C + c) * inner + s]!;
        means.push(sum / inner);
      }
      const scale = fcReference((c) => means[c]!, w1!, b1!, w2!, b2!, C, S, attrs.act1);
      for (let c = 0; c < C; c++) for (let s = 0; s < inner; s++) y[(n * C + c) * inner + s] = x![(n * C + c) * inner + s]! * scale[c]!;
    }
    return [y];
  },
  cases: [
    { name: '7x9 C=10 S=4 relu', inputs: [[3, 10, 7, 9], ...fcShapes(10, 4)], attrs: { act1: 'relu' } },
    { name: '7x9 C=10 S=4 silu from a view into a view', inputs: [[3, 10, 7, 9], ...fcShapes(10, 4)], attrs: { act1: 'silu' }, inViews: [{ cOff: 1, cTot: 13 }], outViews: [{ cOff: 4, cTot: 16 }] },
    // 70 x 64 = 4480 elements per plane: two chunks of partial sums per plane. x is positive (as after a ReLU or
    // SiLU) so the means are far from zero and a lost chunk shows in the scale.
    { name: '70x64 C=3 S=4 relu (two chunks per plane) into a view', inputs: [[2, 3, 70, 64], ...fcShapes(3, 4)], attrs: { act1: 'relu' }, ranges: [[0, 2]], outViews: [{ cOff: 2, cTot: 6 }] },
  ],
});
