/**
 * ConvGRU gate arithmetic (weights/reference/model.py, docs/model.md "Stage 1"): z = sigmoid(Wz*[x,h]+bz), r = sigmoid(Wr*[x,h]+br),
 * n = tanh(Wn*[x, r*h]+bn), h' = (1-z)*h + z*n. The z and r pre-activations come from ONE conv with 2C outputs
 * (channels [0, C) = z, [C, 2C) = r); the convs are ordinary conv ops, these two ops do the gating around them:
 * - {@link gruReset}: rh = sigmoid(zr_pre[:, C:2C]) * h, usually written into the second half of the [x, r*h]
 *   concat buffer that the n-conv reads;
 * - {@link gruUpdate}: h' = (1 - z) h + z tanh(n_pre), or z tanh(n_pre) when the previous state is zero (h0).
 * Kernels: kernels/convgru.wgsl.
 */
import { elementwiseLaunch } from './elementwise-common.js';
import { check, checkRank, defineOp, innerSize, numel, type OpContext, type Shape, type TestCase } from './op.js';

/** Attributes of {@link gruUpdate}. */
export interface GruUpdateAttrs {
  /** The previous hidden state is zero (first step): no h input, h' = sigmoid(z_pre) * tanh(n_pre). */
  h0?: boolean;
}

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/**
 * The [N, C, H, W] hidden-state tensor of `shape` with element i = f(i, zi, ri): zi and ri the indices of the
 * matching z and r pre-activations in zr [N, 2C, H, W] (z in channels [0, C), r in [C, 2C)).
 */
function hiddenMap(shape: Shape, f: (i: number, zi: number, ri: number) => number): Float32Array {
  const [N, C, H, W] = shape as [number, number, number, number];
  const inner = H * W;
  const y = new Float32Array(numel(shape));
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let s = 0; s < inner; s++) {
        const zi = (n * 2 * C + c) * inner + s;
        y[(n * C + c) * inner + s] = f((n * C + c) * inner + s, zi, zi + C * inner);
      }
  return y;
}

/** Checks zr_pre [N, 2C, H, W] against a [N, C, H, W] tensor; returns the hidden shape. */
function checkZr(op: string, zr: Shape | undefined, other: Shape | undefined, otherName: string, inputs: Shape[]): Shape {
  const z = checkRank(op, 'zr_pre', zr, 4, inputs);
  const o = checkRank(op, otherName, other, 4, inputs);
  check(z[1]! === 2 * o[1]!, op, `zr_pre must have twice the channels of ${otherName}`, inputs);
  check(z[0] === o[0] && z[2] === o[2] && z[3] === o[3], op, `zr_pre and ${otherName} differ in batch or spatial size`, inputs);
  return o;
}

/** The uniform words of kernels/convgru.wgsl; `nIdx`/`hIdx` are the input indices of n_pre and h (-1 = absent). */
function gruParams(ctx: OpContext<unknown>, nIdx: number, hIdx: number): number[] {
  const s = ctx.outputs[0]!;
  const zr = ctx.inViews[0]!;
  const nv = nIdx >= 0 ? ctx.inViews[nIdx]! : { cOff: 0, cTot: 0 };
  const hv = hIdx >= 0 ? ctx.inViews[hIdx]! : { cOff: 0, cTot: 0 };
  const y = ctx.outViews[0]!;
  return [numel(s), s[1]!, innerSize(s), zr.cOff, zr.cTot, nv.cOff, nv.cTot, hv.cOff, hv.cTot, y.cOff, y.cTot];
}

/** rh = sigmoid(zr_pre[:, C:2C]) * h: inputs zr_pre [N, 2C, H, W], h [N, C, H, W]; output [N, C, H, W]. */
export const gruReset = defineOp<Record<string, never>>({
  name: 'gru_reset',
  kind: 'elementwise',
  infer(inputs) {
    check(inputs.length === 2, 'gru_reset', 'needs zr_pre and h', inputs);
    return [checkZr('gru_reset', inputs[0], inputs[1], 'h', inputs)];
  },
  dispatch(ctx) {
    const s = ctx.outputs[0]!;
    return [
      {
        kernel: 'convgru',
        defines: { ENTRY_RESET: 1, ...elementwiseLaunch(ctx.caps, s).defines },
        grid: elementwiseLaunch(ctx.caps, s).grid,
        params: gruParams(ctx, -1, 1),
        bindings: [{ input: 0 }, { input: 1 }, { output: 0 }],
        flops: numel(s) * 5,
        bytes: numel(s) * 12,
      },
    ];
  },
  reference([zr, h], { outputs }) {
    return [hiddenMap(outputs[0]!, (i, z, r) => sigmoid(zr![r]!) * h![i]!)];
  },
  cases: ([5, 7] as const).flatMap((C): TestCase<Record<string, never>>[] => [
    { name: `C=${C}`, inputs: [[3, 2 * C, 7, 9], [3, C, 7, 9]], attrs: {}, ranges: [[-3, 3], [-1, 1]] },
    {
      name: `C=${C} views in and out (into the [x, r*h] concat)`,
      inputs: [[3, 2 * C, 7, 9], [3, C, 7, 9]],
      attrs: {},
      ranges: [[-3, 3], [-1, 1]],
      inViews: [{ cOff: 3, cTot: 2 * C + 4 }, { cOff: 1, cTot: C + 2 }],
      outViews: [{ cOff: 4, cTot: C + 4 }],
    },
  ]),
});

/**
 * h' = (1 - z) h + z tanh(n_pre), z = sigmoid(zr_pre[:, 0:C]): inputs zr_pre [N, 2C, H, W], n_pre [N, C, H, W]
 * and h [N, C, H, W] (absent with attr h0, where h' = z tanh(n_pre)); output [N, C, H, W].
 */
export const gruUpdate = defineOp<GruUpdateAttrs>({
  name: 'gru_update',
  kind: 'elementwise',
  infer(inputs, attrs) {
    const want = attrs.h0 ? 2 : 3;
    check(inputs.length === want, 'gru_update', attrs.h0 ? 'with h0 needs zr_pre and n_pre' : 'needs zr_pre, n_pre and h', inputs);
    const s = checkZr('gru_update', inputs[0], inputs[1], 'n_pre', inputs);
    if (!attrs.h0) {
      const h = checkRank('gru_update', 'h', inputs[2], 4, inputs);
      check(h.every((d, i) => d === s[i]), 'gru_update', 'h must have the shape of n_pre', inputs);
    }
    return [s];
  },
  dispatch(ctx) {
    const s = ctx.outputs[0]!;
    const h0 = !!ctx.attrs.h0;
    return [
      {
        kernel: 'convgru',
        defines: { ENTRY_UPDATE: 1, H0: h0 ? 1 : 0, ...elementwiseLaunch(ctx.caps, s).defines },
        grid: elementwiseLaunch(ctx.caps, s).grid,
        params: gruParams(ctx, 1, h0 ? -1 : 2),
        bindings: h0 ? [{ input: 0 }, { input: 1 }, { output: 0 }] : [{ input: 0 }, { input: 1 }, { input: 2 }, { output: 0 }],
        flops: numel(s) * (h0 ? 10 : 13),
        bytes: numel(s) * (h0 ? 12 : 16),
      },
    ];
  },
  reference(inputs, { attrs, outputs }) {
    const [zr, np, h] = inputs;
    return [
      hiddenMap(outputs[0]!, (i, zi) => {
        const z = sigmoid(zr![zi]!);
        const cand = Math.tanh(np![i]!);
        return attrs.h0 ? z * cand : (1 - z) * h![i]! + z * cand;
      }),
    ];
  },
  cases: ([5, 7] as const).flatMap((C): TestCase<GruUpdateAttrs>[] => [
    { name: `C=${C}`, inputs: [[3, 2 * C, 7, 9], [3, C, 7, 9], [3, C, 7, 9]], attrs: {}, ranges: [[-3, 3], [-3, 3], [-1, 1]] },
    { name: `C=${C} h0`, inputs: [[3, 2 * C, 7, 9], [3, C, 7, 9]], attrs: { h0: true }, ranges: [[-3, 3], [-3, 3]] },
    {
      name: `C=${C} views in and out`,
      inputs: [[3, 2 * C, 7, 9], [3, C, 7, 9], [3, C, 7, 9]],
      attrs: { h0: false },
      ranges: [[-3, 3], [-3, 3], [-1, 1]],
      inViews: [{ cOff: 2, cTot: 2 * C + 3 }, { cOff: 1, cTot: C + 1 }, { cOff: C, cTot: 2 * C + 1 }],
      outViews: [{ cOff: 3, cTot: C + 5 }],
    },
    {
      name: `C=${C} h0, views in and out`,
      inputs: [[3, 2 * C, 7, 9], [3, C, 7, 9]],
      attrs: { h0: true },
      ranges: [[-3, 3], [-3, 3]],
      inViews: [{ cOff: 1, cTot: 2 * C + 1 }, { cOff: 2, cTot: C + 3 }],
      outViews: [{ cOff: 0, cTot: 2 * C }],
    },
  ]),
});
