/** Unary activation y = act(x): ReLU, SiLU, sigmoid, tanh (identity is a copy into a channel view). */
import { ACT_CODE, applyActivation, type Activation } from './activation.js';
import { elementwiseLaunch, elementwiseParams, forEachNCS } from './elementwise-common.js';
import { check, defineOp, numel } from './op.js';

/** Attributes of {@link unary}. */
export interface UnaryAttrs {
  act: Activation;
}

/** The unary op. */
export const unary = defineOp<UnaryAttrs>({
  name: 'unary',
  kind: 'elementwise',
  infer(inputs) {
    check(inputs.length === 1 && inputs[0]!.length >= 1, 'unary', 'needs one input', inputs);
    return [inputs[0]!];
  },
  dispatch(ctx) {
    const s = ctx.outputs[0]!;
    const launch = elementwiseLaunch(ctx.caps, s);
    return [
      {
        kernel: 'elementwise',
        defines: { ENTRY_UNARY: 1, ACT: ACT_CODE[ctx.attrs.act], ...launch.defines },
        grid: launch.grid,
        params: elementwiseParams(ctx),
        bindings: [{ input: 0 }, { output: 0 }],
        bytes: numel(s) * 8,
      },
    ];
  },
  reference([x], { attrs, outputs }) {
    const y = new Float32Array(numel(outputs[0]!));
    for (let i = 0; i < y.length; i++) y[i] = applyActivation(x![i]!, attrs.act);
    return [y];
  },
  cases: [
    ...(['relu', 'silu', 'sigmoid', 'tanh'] as const).map((act) => ({ name: act, inputs: [[3, 5, 7, 9]], attrs: { act }, ranges: [[-8, 8] as [number, number]] })),
    { name: 'copy into a channel view', inputs: [[3, 5, 7, 9]], attrs: { act: 'none' }, outViews: [{ cOff: 2, cTot: 11 }] },
    { name: 'silu from a channel view', inputs: [[2, 3, 5, 1]], attrs: { act: 'silu' }, inViews: [{ cOff: 4, cTot: 7 }] },
    { name: 'rank 2', inputs: [[3, 13]], attrs: { act: 'tanh' } },
  ],
});

// forEachNCS is re-exported for ops that share the loops.
export { forEachNCS };
