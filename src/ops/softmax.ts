/**
 * Softmax over dimension 1 (the channels) of an NCHW tensor or a rank-2 [N, C] tensor, max-subtracted. Input
 * and output may be channel views. Kernel: kernels/softmax.wgsl (a thread per pixel).
 */
import { ELEMENTWISE_WG } from './elementwise-common.js';
import { check, defineOp, grid1d, innerSize, numel } from './op.js';

/** The softmax op (no attributes). */
export const softmax = defineOp<Record<string, never>>({
  name: 'softmax',
  kind: 'reduction',
  infer(inputs) {
    check(inputs.length === 1, 'softmax', 'needs one input', inputs);
    const x = inputs[0]!;
    check(x.length === 2 || x.length === 4, 'softmax', 'x must be [N, C] or [N, C, H, W]', inputs);
    check(x.every((d) => Number.isInteger(d) && d > 0), 'softmax', 'x has a non-positive dimension', inputs);
    return [x];
  },
  dispatch(ctx) {
    const s = ctx.outputs[0]!;
    const inner = innerSize(s);
    const pixels = s[0]! * inner;
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    return [
      {
        kernel: 'softmax',
        defines: { WG: ELEMENTWISE_WG },
        grid: grid1d(pixels, ELEMENTWISE_WG, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
        params: [pixels, s[1]!, inner, xv.cOff, xv.cTot, yv.cOff, yv.cTot],
        bindings: [{ input: 0 }, { output: 0 }],
        flops: numel(s) * 5,
        bytes: numel(s) * 8,
      },
    ];
  },
  reference([x], { outputs }) {
    const s = outputs[0]!;
    const N = s[0]!;
    const C = s[1]!;
    const inner = innerSize(s);
    const y = new Float32Array(numel(s));
    for (let n = 0; n < N; n++)
      for (let p = 0; p < inner; p++) {
        const at = (c: number) => (n * C + c) * inner + p;
        let m = -Infinity;
        for (let c = 0; c < C; c++) m = Math.max(m, x![at(c)]!);
        let sum = 0;
        for (let c = 0; c < C; c++) sum += Math.exp(x![at(c)]! - m);
        for (let c = 0; c < C; c++) y[at(c)] = Math.exp(x![at(c)]! - m) / sum;
      }
    return [y];
  },
  cases: [
    { name: 'C=2 7x9', inputs: [[3, 2, 7, 9]], attrs: {}, ranges: [[-5, 5]] },
    { name: 'C=2 7x9 from a view into a view', inputs: [[3, 2, 7, 9]], attrs: {}, ranges: [[-5, 5]], inViews: [{ cOff: 1, cTot: 4 }], outViews: [{ cOff: 2, cTot: 5 }] },
    { name: 'rank 2 [3, 3]', inputs: [[3, 3]], attrs: {}, ranges: [[-5, 5]] },
    { name: 'rank 2 [3, 3] into a view', inputs: [[3, 3]], attrs: {}, ranges: [[-5, 5]], outViews: [{ cOff: 3, cTot: 7 }] },
    { name: 'C=13 5x5', inputs: [[2, 13, 5, 5]], attrs: {}, ranges: [[-5, 5]] },
  ],
});
