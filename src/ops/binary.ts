/**
 * Binary elementwise y = act(a OP b) with OP in add, sub, mul, mulOnePlus (a * (1 + b), the attention weighting
 * of stage 2, docs/model.md). b has a's shape or broadcasts over channels ([N, 1, H, W]) or over space ([N, C, 1, 1] or [N, C]).
 */
import { ACT_CODE, applyActivation, type Activation } from './activation.js';
import { elementwiseLaunch, elementwiseParams, forEachNCS } from './elementwise-common.js';
import { check, defineOp, innerSize, numel, type Shape } from './op.js';

/** Binary operators; codes match OP in kernels/elementwise.wgsl. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'mulOnePlus';
const OP_CODE: Record<BinaryOp, number> = { add: 0, sub: 1, mul: 2, mulOnePlus: 3 };

/** Attributes of {@link binary}. */
export interface BinaryAttrs {
  op: BinaryOp;
  act?: Activation;
}

/** Strides (per n, per c, per spatial element) of b, 0 along broadcast dimensions. */
function bStrides(a: Shape, b: Shape): [number, number, number] {
  const C = b.length > 1 ? b[1]! : 1;
  const inner = innerSize(b);
  const cBroadcast = C === 1 && (a[1] ?? 1) !== 1;
  const sBroadcast = inner === 1 && innerSize(a) !== 1;
  return [C * inner, cBroadcast ? 0 : inner, sBroadcast ? 0 : 1];
}

function apply(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    default:
      return a * (1 + b);
  }
}

/** The binary op. */
export const binary = defineOp<BinaryAttrs>({
  name: 'binary',
  kind: 'elementwise',
  infer(inputs) {
    check(inputs.length === 2, 'binary', 'needs two inputs', inputs);
    const [a, b] = inputs as [Shape, Shape];
    check(a.length >= 2 && (a.length === b.length || b.length === 2), 'binary', 'inputs must have the same rank (>= 2), or the second be [N, C]', inputs);
    check(b[0] === a[0], 'binary', 'batch sizes differ', inputs);
    const sameC = b[1] === a[1] || b[1] === 1;
    const sameS = b.length === a.length && innerSize(b) === innerSize(a) ? a.slice(2).every((d, i) => d === b[2 + i]) : innerSize(b) === 1;
    check(sameC && sameS, 'binary', 'second input must match the first or broadcast over channels ([N,1,...]) or space ([N,C,1,...])', inputs);
    return [a];
  },
  dispatch(ctx) {
    const s = ctx.outputs[0]!;
    const launch = elementwiseLaunch(ctx.caps, s);
    const [sn, sc, ss] = bStrides(ctx.inputs[0]!, ctx.inputs[1]!);
    const bv = ctx.inViews[1]!;
    check(bv.cOff === 0 && bv.cTot === (ctx.inputs[1]![1] ?? 1), 'binary', 'the second input cannot be a channel view');
    return [
      {
        kernel: 'elementwise',
        defines: { ENTRY_BINARY: 1, OP: OP_CODE[ctx.attrs.op], ACT: ACT_CODE[ctx.attrs.act ?? 'none'], ...launch.defines },
        grid: launch.grid,
        params: elementwiseParams(ctx, [sn, sc, ss, 0]),
        bindings: [{ input: 0 }, { input: 1 }, { output: 0 }],
        bytes: (numel(s) * 2 + numel(ctx.inputs[1]!)) * 4,
      },
    ];
  },
  reference([a, b], { attrs, inputs, outputs }) {
    const [sn, sc, ss] = bStrides(inputs[0]!, inputs[1]!);
    const y = new Float32Array(numel(outputs[0]!));
    forEachNCS(outputs[0]!, (n, c, s, i) => {
      y[i] = applyActivation(apply(attrs.op, a![i]!, b![n * sn + c * sc + s * ss]!), attrs.act ?? 'none');
    });
    return [y];
  },
  cases: [
    { name: 'add', inputs: [[3, 5, 7, 9], [3, 5, 7, 9]], attrs: { op: 'add' } },
    { name: 'add + relu into a view', inputs: [[3, 5, 7, 9], [3, 5, 7, 9]], attrs: { op: 'add', act: 'relu' }, outViews: [{ cOff: 3, cTot: 9 }] },
    { name: 'sub', inputs: [[2, 3, 4, 5], [2, 3, 4, 5]], attrs: { op: 'sub' } },
    { name: 'mul per channel (cSE scale)', inputs: [[3, 5, 7, 9], [3, 5, 1, 1]], attrs: { op: 'mul' } },
    { name: 'mul by [N, C] (SE scale)', inputs: [[3, 5, 7, 9], [3, 5]], attrs: { op: 'mul' } },
    { name: 'mul per pixel (sSE scale)', inputs: [[3, 5, 7, 9], [3, 1, 7, 9]], attrs: { op: 'mul' } },
    { name: 'a * (1 + p) from a view', inputs: [[3, 6, 7, 9], [3, 1, 7, 9]], attrs: { op: 'mulOnePlus' }, inViews: [{ cOff: 1, cTot: 8 }] },
    { name: 'rank 2 per row', inputs: [[3, 13], [3, 1]], attrs: { op: 'mul', act: 'sigmoid' } },
  ],
});
