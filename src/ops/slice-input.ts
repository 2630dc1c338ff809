/**
 * slice_input: the model's three-channel input made on the GPU from windowed slices, so that the two stages run
 * as one graph with nothing crossing to the CPU in between. Exactly src/analysis/preprocess.ts:
 * - one input (windowed w [N, 1, H, W]): `normalise` -> stage 1's `seg.input`;
 * - two inputs (w and stage 1's lung probability [N, 1, H, W]): `maskedInput` with mask = prob > threshold ->
 *   stage 2's `cls.input`.
 * Output [N, 3, H, W], y[n, c] = (v - mean[c]) / std[c]; it may be a channel view. Kernel: kernels/slice_input.wgsl.
 */
import { ELEMENTWISE_WG } from './elementwise-common.js';
import { check, checkRank, defineOp, grid1d, numel, type TestCase } from './op.js';

/** Attributes of {@link sliceInput}: the preprocessing constants (src/models/config.ts PreprocessConfig). */
export interface SliceInputAttrs {
  /** Per-channel mean and std of the three replicated channels. */
  mean: readonly [number, number, number];
  std: readonly [number, number, number];
  /** With a probability input: pixels whose probability is not above this get `outside`. */
  threshold: number;
  /** Window value outside the mask (before normalisation). */
  outside: number;
}

const f = Math.fround;

/** The slice_input op: (w [N, 1, H, W], prob? [N, 1, H, W]) -> [N, 3, H, W]. */
export const sliceInput = defineOp<SliceInputAttrs>({
  name: 'slice_input',
  kind: 'elementwise',
  infer(inputs, attrs) {
    check(inputs.length === 1 || inputs.length === 2, 'slice_input', 'needs the windowed slices and optionally a probability map', inputs);
    const w = checkRank('slice_input', 'windowed', inputs[0], 4, inputs);
    check(w[1] === 1, 'slice_input', 'windowed slices must have one channel', inputs);
    if (inputs.length === 2) {
      const p = checkRank('slice_input', 'prob', inputs[1], 4, inputs);
      check(p.every((d, i) => d === w[i]), 'slice_input', 'prob must have the shape of the windowed slices', inputs);
    }
    for (const k of ['mean', 'std'] as const) check(Array.isArray(attrs[k]) && attrs[k].length === 3 && attrs[k].every(Number.isFinite), 'slice_input', `${k} must be three finite numbers`, inputs);
    check(attrs.std.every((s) => s !== 0), 'slice_input', 'std must be non-zero', inputs);
    check(Number.isFinite(attrs.threshold) && Number.isFinite(attrs.outside), 'slice_input', 'threshold and outside must be finite', inputs);
    return [[w[0]!, 3, w[2]!, w[3]!]];
  },
  dispatch(ctx) {
    const [N, , H, W] = ctx.inputs[0]! as [number, number, number, number];
    const masked = ctx.inputs.length === 2;
    const yv = ctx.outViews[0]!;
    const total = N * H * W;
    const a = ctx.attrs;
    return [
      {
        kernel: 'slice_input',
        defines: { WG: ELEMENTWISE_WG, MASKED: masked ? 1 : 0 },
        grid: grid1d(total, ELEMENTWISE_WG, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
        params: [total, H * W, yv.cOff, yv.cTot, ...[...a.mean, ...a.std, a.threshold, a.outside].map((v) => ({ f32: v }))],
        bindings: masked ? [{ input: 0 }, { input: 1 }, { output: 0 }] : [{ input: 0 }, { output: 0 }],
        flops: total * 6,
        bytes: (total * (masked ? 2 : 1) + numel(ctx.outputs[0]!)) * 4,
      },
    ];
  },
  reference([w, prob], { attrs, inputs }) {
    const [N, , H, W] = inputs[0]! as [number, number, number, number];
    const hw = H * W;
    const y = new Float32Array(N * 3 * hw);
    const outside = f(attrs.outside);
    for (let n = 0; n < N; n++)
      for (let c = 0; c < 3; c++) {
        const m = f(attrs.mean[c]!);
        const s = f(attrs.std[c]!);
        for (let i = 0; i < hw; i++) {
          const j = n * hw + i;
          const v = prob && !(prob[j]! > attrs.threshold) ? outside : w![j]!;
          y[(n * 3 + c) * hw + i] = f(f(v - m) / s);
        }
      }
    return [y];
  },
  cases: ((): TestCase<SliceInputAttrs>[] => {
    const attrs: SliceInputAttrs = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], threshold: 0.5, outside: 0 };
    return [
      { name: 'normalise 2x1x7x9', inputs: [[2, 1, 7, 9]], attrs, ranges: [[0, 1]] },
      { name: 'normalise 1x1x5x3 into a channel view', inputs: [[1, 1, 5, 3]], attrs, ranges: [[0, 1]], outViews: [{ cOff: 2, cTot: 6 }] },
      { name: 'masked 3x1x9x7 (mask = prob > 0.5)', inputs: [[3, 1, 9, 7], [3, 1, 9, 7]], attrs, ranges: [[0, 1], [0, 1]] },
      { name: 'masked 2x1x6x11, threshold 0.3, outside 0.25', inputs: [[2, 1, 6, 11], [2, 1, 6, 11]], attrs: { ...attrs, threshold: 0.3, outside: 0.25 }, ranges: [[0, 1], [0, 1]] },
    ];
  })(),
});
