/**
 * Channel concatenation. In a compiled graph the memory plan makes most concats free: each input's producer
 * writes straight into its channel slice of the output buffer (src/graph/plan.ts). Inputs that cannot be
 * placed that way (graph inputs, a tensor already placed in another concat) are copied by this op's dispatches.
 */
import { elementwiseLaunch } from './elementwise-common.js';
import { check, defineOp, innerSize, numel, type DispatchSpec } from './op.js';

/** Attributes of {@link concat}. */
export interface ConcatAttrs {
  /** Inputs already written in place by their producers (set by the memory plan); they get no copy. */
  inPlace?: boolean[];
}

/** The concat op (along dimension 1). */
export const concat = defineOp<ConcatAttrs>({
  name: 'concat',
  kind: 'elementwise',
  infer(inputs) {
    check(inputs.length >= 1, 'concat', 'needs at least one input', inputs);
    const a = inputs[0]!;
    check(a.length >= 2, 'concat', 'inputs must have rank >= 2', inputs);
    let c = 0;
    for (const s of inputs) {
      check(s.length === a.length && s[0] === a[0] && s.slice(2).every((d, i) => d === a[2 + i]), 'concat', 'inputs differ in a dimension other than 1', inputs);
      c += s[1]!;
    }
    return [[a[0]!, c, ...a.slice(2)]];
  },
  dispatch(ctx) {
    const out = ctx.outViews[0]!;
    const specs: DispatchSpec[] = [];
    let off = 0;
    ctx.inputs.forEach((s, i) => {
      if (!ctx.attrs.inPlace?.[i]) {
        const x = ctx.inViews[i]!;
        specs.push({
          kernel: 'elementwise',
          defines: { ENTRY_UNARY: 1, ACT: 0, ...elementwiseLaunch(ctx.caps, s).defines },
          grid: elementwiseLaunch(ctx.caps, s).grid,
          params: [numel(s), s[1]!, innerSize(s), x.cOff, x.cTot, out.cOff + off, out.cTot, 0, 0, 0, 0, { f32: 0 }],
          bindings: [{ input: i }, { output: 0 }],
          bytes: numel(s) * 8,
        });
      }
      off += s[1]!;
    });
    return specs;
  },
  reference(inputs, { inputs: shapes, outputs }) {
    const o = outputs[0]!;
    const y = new Float32Array(numel(o));
    const inner = innerSize(o);
    let off = 0;
    shapes.forEach((s, i) => {
      const x = inputs[i]!;
      const c = s[1]!;
      for (let n = 0; n < o[0]!; n++) y.set(x.subarray(n * c * inner, (n + 1) * c * inner), (n * o[1]! + off) * inner);
      off += c;
    });
    return [y];
  },
  cases: [
    { name: 'three inputs', inputs: [[3, 5, 7, 9], [3, 2, 7, 9], [3, 7, 7, 9]], attrs: {} },
    { name: 'into a view, one input from a view', inputs: [[2, 3, 4, 5], [2, 1, 4, 5]], attrs: {}, outViews: [{ cOff: 2, cTot: 9 }], inViews: [{ cOff: 1, cTot: 5 }] },
    { name: 'rank 2', inputs: [[3, 13], [3, 4]], attrs: {} },
  ],
});
