/**
 * Spatial squeeze-excitation (the decoder's sSE): x [N, C, H, W], w [1, C, 1, 1], b [1] ->
 * y = x * sigmoid(sum_c w[c] x[n, c, h, w] + b), one pass (a thread per pixel). x and y may be channel views
 * (y is typically the second half of a concat buffer). Kernel: kernels/se.wgsl (ENTRY_SPATIAL).
 */
import { check, checkRank, defineOp, grid1d, numel } from './op.js';

/** Threads per workgroup. */
const SPATIAL_WG = 256;

/** The spatial_se op (no attributes). */
export const spatialSe = defineOp<Record<string, never>>({
  name: 'spatial_se',
  kind: 'reduction',
  infer(inputs) {
    check(inputs.length === 3, 'spatial_se', 'needs x, w, b', inputs);
    const x = checkRank('spatial_se', 'x', inputs[0], 4, inputs);
    const w = checkRank('spatial_se', 'w', inputs[1], 4, inputs);
    check(w[0] === 1 && w[1] === x[1] && w[2] === 1 && w[3] === 1, 'spatial_se', `w must be [1, ${x[1]}, 1, 1]`, inputs);
    const b = checkRank('spatial_se', 'b', inputs[2], 1, inputs);
    check(b[0] === 1, 'spatial_se', 'b must have shape [1]', inputs);
    return [x];
  },
  dispatch(ctx) {
    const [N, C, H, W] = ctx.inputs[0]! as [number, number, number, number];
    const inner = H * W;
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    const total = N * C * inner;
    return [
      {
        kernel: 'se',
        defines: { ENTRY_SPATIAL: 1, WG: SPATIAL_WG },
        grid: grid1d(N * inner, SPATIAL_WG, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
        params: [N * inner, C, inner, xv.cOff, xv.cTot, yv.cOff, yv.cTot],
        bindings: [{ input: 0 }, { input: 1 }, { input: 2 }, { output: 0 }],
        flops: 3 * total,
        bytes: (2 * total + C + 1) * 4,
      },
    ];
  },
  reference([x, w, b], { inputs, outputs }) {
    const [N, C, H, W] = inputs[0]! as [number, number, number, number];
    const inner = H * W;
    const y = new Float32Array(numel(outputs[0]!));
    for (let n = 0; n < N; n++)
      for (let s = 0; s < inner; s++) {
        let q = b![0]!;
        for (let c = 0; c < C; c++) q += w![c]! * x![(n * C + c) * inner + s]!;
        const g = 1 / (1 + Math.exp(-q));
        for (let c = 0; c < C; c++) y[(n * C + c) * inner + s] = x![(n * C + c) * inner + s]! * g;
      }
    return [y];
  },
  cases: [
    { name: '7x9 C=5', inputs: [[3, 5, 7, 9], [1, 5, 1, 1], [1]], attrs: {} },
    { name: '7x9 C=5 into the second half of a concat buffer', inputs: [[3, 5, 7, 9], [1, 5, 1, 1], [1]], attrs: {}, outViews: [{ cOff: 5, cTot: 10 }] },
    { name: '9x7 C=6 from a view into a view', inputs: [[2, 6, 9, 7], [1, 6, 1, 1], [1]], attrs: {}, inViews: [{ cOff: 2, cTot: 9 }], outViews: [{ cOff: 6, cTot: 12 }] },
  ],
});
