/**
 * Inference BatchNorm with running statistics, y = act((x - mean) * gamma / sqrt(var + eps) + beta), for NCHW
 * and [N, C]. Graphs fold it into the preceding conv or linear at load time (src/graph/fuse.ts); this op runs
 * when nothing precedes it to fold into, and it is the reference the folding is checked against.
 */
import { ACT_CODE, applyActivation, type Activation } from './activation.js';
import { elementwiseLaunch, elementwiseParams, forEachNCS } from './elementwise-common.js';
import { check, defineOp, numel } from './op.js';

/** Attributes of {@link batchnorm}. */
export interface BatchNormAttrs {
  eps: number;
  act?: Activation;
}

/** The batchnorm op: inputs x, gamma, beta, running mean, running var. */
export const batchnorm = defineOp<BatchNormAttrs>({
  name: 'batchnorm',
  kind: 'elementwise',
  infer(inputs) {
    check(inputs.length === 5, 'batchnorm', 'needs x, gamma, beta, mean, var', inputs);
    const x = inputs[0]!;
    check(x.length >= 2, 'batchnorm', 'x must have rank >= 2', inputs);
    for (let i = 1; i < 5; i++) check(inputs[i]!.length === 1 && inputs[i]![0] === x[1], 'batchnorm', `parameter ${i} must have shape [${x[1]}]`, inputs);
    return [x];
  },
  dispatch(ctx) {
    const s = ctx.outputs[0]!;
    const launch = elementwiseLaunch(ctx.caps, s);
    return [
      {
        kernel: 'elementwise',
        defines: { ENTRY_BATCHNORM: 1, ACT: ACT_CODE[ctx.attrs.act ?? 'none'], ...launch.defines },
        grid: launch.grid,
        params: elementwiseParams(ctx, [0, 0, 0, 0], ctx.attrs.eps),
        bindings: [{ input: 0 }, { input: 1 }, { input: 2 }, { input: 3 }, { input: 4 }, { output: 0 }],
        bytes: numel(s) * 8,
      },
    ];
  },
  reference([x, g, b, m, v], { attrs, outputs }) {
    const y = new Float32Array(numel(outputs[0]!));
    forEachNCS(outputs[0]!, (_n, c, _s, i) => {
      y[i] = applyActivation(((x![i]! - m![c]!) * g![c]!) / Math.sqrt(v![c]! + attrs.eps) + b![c]!, attrs.act ?? 'none');
    });
    return [y];
  },
  cases: [
    { name: 'nchw', inputs: [[3, 5, 7, 9], [5], [5], [5], [5]], attrs: { eps: 1e-5 }, ranges: [undefined, undefined, undefined, undefined, [0.1, 2]] },
    { name: 'nchw + silu into a view', inputs: [[2, 3, 4, 5], [3], [3], [3], [3]], attrs: { eps: 1e-3, act: 'silu' }, ranges: [undefined, undefined, undefined, undefined, [0.1, 2]], outViews: [{ cOff: 1, cTot: 6 }] },
    { name: 'bn1d', inputs: [[3, 13], [13], [13], [13], [13]], attrs: { eps: 1e-5, act: 'relu' }, ranges: [undefined, undefined, undefined, undefined, [0.1, 2]] },
  ],
});
