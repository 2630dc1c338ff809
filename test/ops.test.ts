// Every op in the registry against its CPU reference on seeded random inputs, with guard words after every
// output buffer and sentinels around channel views. Error is the normalised MSE against the op's tolerance.
import { describe, expect, it } from 'vitest';
import { DEFAULT_TOLERANCE, type OpDef } from '../src/ops/op.js';
import { OPS } from '../src/ops/registry.js';
import { mulberry32, nmse, uniform } from '../src/ops/random.js';
import { runOp } from '../src/ops/run.js';
import { numel } from '../src/ops/op.js';
import { chooseSplitK, conv2d } from '../src/ops/conv2d.js';
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

describe('conv2d tile and K-split choices', () => {
  const caps = { limits: { maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits, features: new Set<string>(), subgroupMinSize: 32 };
  const specs = (name: string) => {
    const tc = conv2d.cases.find((c) => c.name.startsWith(name))!;
    expect(tc, name).toBeDefined();
    const dense = (s: readonly number[]) => ({ cOff: 0, cTot: s[1] ?? 1 });
    const outputs = conv2d.infer(tc.inputs, tc.attrs);
    return conv2d.dispatch({ attrs: tc.attrs, inputs: tc.inputs, outputs, inViews: tc.inputs.map((s, i) => tc.inViews?.[i] ?? dense(s)), outViews: outputs.map((s, i) => tc.outViews?.[i] ?? dense(s)), caps });
  };
  it('the split-K cases above really split K (a GEMM pass and a reduction pass), the others do not', () => {
    for (const name of ['split K: Cout 40', 'split K: pointwise']) {
      const d = specs(name);
      expect(d.length, name).toBe(2);
      expect(d[0]!.defines!.SPLITK).toBe(1);
      expect(d[1]!.defines!.ENTRY_REDUCE).toBe(1);
    }
    expect(specs('mid tile pointwise').length).toBe(1);
  });
  it('chooseSplitK: only few tiles with a long K, slices of at least the minimum chunk, K fully covered', () => {
    expect(chooseSplitK(200, 4096, 16)).toEqual({ splits: 1, kChunk: 4096 });
    expect(chooseSplitK(4, 300, 16).splits).toBe(1);
    for (const [tiles, K] of [[40, 3840], [2, 1170], [1, 100000], [127, 512]] as const) {
      const { splits, kChunk } = chooseSplitK(tiles, K, 16);
      expect(splits).toBeGreaterThan(1);
      expect(splits).toBeLessThanOrEqual(16);
      expect(kChunk % 16).toBe(0);
      expect((splits - 1) * kChunk).toBeLessThan(K);
      expect(splits * kChunk).toBeGreaterThanOrEqual(K);
    }
  });
});
