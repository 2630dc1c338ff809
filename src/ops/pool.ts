/**
 * Global average / max pooling over the spatial dimensions: x [N, C, H, W] -> [N, C] (rank 2). The output may
 * be a channel view of a [N, F] buffer (the classifier builds v = concat(avg, max) by writing two pools into
 * the halves of one buffer); the input may be a channel view. Kernel: kernels/pool.wgsl.
 */
import { check, checkRank, defineOp, grid1d, halfIn, type TestCase } from './op.js';

/** Attributes of {@link globalPool}. */
export interface GlobalPoolAttrs {
  mode: 'avg' | 'max';
}

/** Threads per workgroup of the pool kernel. */
const POOL_WG = 256;

/** Threads per plane: about four elements per thread, a power of two in [1, POOL_WG]. */
function lanesFor(inner: number): number {
  let lanes = 1;
  while (lanes < POOL_WG && lanes * 4 < inner) lanes *= 2;
  return lanes;
}

/** The global_pool op. */
export const globalPool = defineOp<GlobalPoolAttrs>({
  name: 'global_pool',
  kind: 'reduction',
  infer(inputs, attrs) {
    check(inputs.length === 1, 'global_pool', 'needs one input', inputs);
    check(attrs.mode === 'avg' || attrs.mode === 'max', 'global_pool', `mode must be 'avg' or 'max', got ${String(attrs.mode)}`, inputs);
    const x = checkRank('global_pool', 'x', inputs[0], 4, inputs);
    return [[x[0]!, x[1]!]];
  },
  halfIO: ({ inputs }) => ({ inputs: inputs.map(() => true), outputs: [false] }),
  dispatch(ctx) {
    const [N, C, H, W] = ctx.inputs[0]! as [number, number, number, number];
    const inner = H * W;
    const planes = N * C;
    const lanes = lanesFor(inner);
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    return [
      {
        kernel: 'pool',
        defines: { WG: POOL_WG, MODE: ctx.attrs.mode === 'max' ? 1 : 0, X_F16: halfIn(ctx, 0) ? 1 : 0 },
        grid: grid1d(planes, POOL_WG / lanes, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
        params: [planes, C, inner, lanes, xv.cOff, xv.cTot, yv.cOff, yv.cTot],
        bindings: [{ input: 0 }, { output: 0 }],
        flops: planes * inner,
        bytes: planes * inner * (halfIn(ctx, 0) ? 2 : 4) + planes * 4,
      },
    ];
  },
  reference([x], { attrs, inputs }) {
    const [N, C, H, W] = inputs[0]! as [number, number, number, number];
    const inner = H * W;
    const y = new Float32Array(N * C);
    for (let p = 0; p < N * C; p++) {
      let acc = attrs.mode === 'max' ? -Infinity : 0;
      for (let s = 0; s < inner; s++) {
        const v = x![p * inner + s]!;
        acc = attrs.mode === 'max' ? Math.max(acc, v) : acc + v;
      }
      y[p] = attrs.mode === 'max' ? acc : acc / inner;
    }
    return [y];
  },
  cases: (['avg', 'max'] as const).flatMap((mode): TestCase<GlobalPoolAttrs>[] => [
    { name: `${mode} 7x9 C=13`, inputs: [[3, 13, 7, 9]], attrs: { mode } },
    // avg into the first half, max into the second half of v = concat(avg, max) [N, 26]
    { name: `${mode} 7x9 C=13 into a view of [N, 26]`, inputs: [[3, 13, 7, 9]], attrs: { mode }, outViews: [{ cOff: mode === 'avg' ? 0 : 13, cTot: 26 }] },
    { name: `${mode} 40x37 C=3 from a view into a view of [N, 26]`, inputs: [[3, 3, 40, 37]], attrs: { mode }, inViews: [{ cOff: 1, cTot: 5 }], outViews: [{ cOff: 20, cTot: 26 }] },
    { name: `${mode} 1x1 planes`, inputs: [[2, 300, 1, 1]], attrs: { mode } },
  ]),
});
