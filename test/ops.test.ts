// Every op in the registry against its CPU reference on seeded random inputs, with guard words after every
// output buffer and sentinels around channel views. Error is the normalised MSE against the op's tolerance.
import { describe, expect, it } from 'vitest';
import { DEFAULT_TOLERANCE, type OpDef } from '../src/ops/op.js';
import { OPS } from '../src/ops/registry.js';
import { mulberry32, nmse, uniform } from '../src/ops/random.js';
import { runOp } from '../src/ops/run.js';
import { numel } from '../src/ops/op.js';
import { testGpu } from './gpu.js';

describe.each(Object.values(OPS) as OpDef<unknown>[])('op $name', (op) => {
  const tol = op.tolerance ?? DEFAULT_TOLERANCE[op.kind];
  it('has test cases', () => expect(op.cases.length).toBeGreaterThan(0));
  it.each(op.cases.map((c, i) => ({ ...c, index: i })))('$name', async (tc) => {
    const { gpu, cache } = await testGpu();
    const rand = mulberry32(1234 + tc.index * 7919);
    const inputs = tc.inputs.map((s, i) => {
      const [lo, hi] = tc.ranges?.[i] ?? [-1, 1];
      return uniform(rand, numel(s), lo, hi);
    });
    const outShapes = op.infer(tc.inputs, tc.attrs);
    const ref = op.reference(inputs, { attrs: tc.attrs, inputs: tc.inputs, outputs: outShapes });
    const opts: Parameters<typeof runOp>[6] = {};
    if (tc.inViews) opts.inViews = tc.inViews;
    if (tc.outViews) opts.outViews = tc.outViews;
    const got = await runOp(gpu, cache, op, inputs, tc.inputs, tc.attrs, opts);
    expect(got.violations).toEqual([]);
    expect(got.outputs.length).toBe(ref.length);
    got.outputs.forEach((o, i) => {
      expect(o.length).toBe(numel(outShapes[i]!));
      // Reject degenerate references (all zeros) so the comparison means something.
      expect(ref[i]!.some((v) => v !== 0)).toBe(true);
      const err = nmse(o, ref[i]!);
      expect(err, `output ${i} nmse ${err.toExponential(2)} > ${tol}`).toBeLessThanOrEqual(tol);
    });
  });
});
