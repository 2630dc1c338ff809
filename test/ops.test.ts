// Every op in the registry against its CPU reference on seeded random inputs, with guard words after every
// output buffer and sentinels around channel views. Error is the normalised MSE against the op's tolerance.
import { describe, expect, it } from 'vitest';
import { capsFor, DEFAULT_TOLERANCE, denseView, makePrepared, F16_CONV_TOLERANCE, f16MatmulSupport, type GpuCaps, type HalfIO, type OpDef, type TestCase } from '../src/ops/op.js';
import { OPS } from '../src/ops/registry.js';
import { mulberry32, nmse, uniform } from '../src/ops/random.js';
import { GUARD_WORDS, runOp } from '../src/ops/run.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import type { DefineValue } from '../src/wgsl/preprocess.js';
import { packHalf, roundToF16, unpackHalf } from '../src/ops/half.js';
import { f32ToF16 } from '../src/io/safetensors.js';
import { kernelSource } from '../src/wgsl/kernels.js';
import { preprocessWgsl } from '../src/wgsl/preprocess.js';
import { numel } from '../src/ops/op.js';
import { chooseSplitK, conv2d, conv2dGeometry, conv2dInputIndex, sgDispatches, sgLanes, sgPrepared, type Conv2dAttrs } from '../src/ops/conv2d.js';
import { depthwise } from '../src/ops/depthwise.js';
import { describeAt128, testGpu } from './gpu.js';
import { describeEmulated, MmaEmulatingCache } from './mma-emulation.js';

describeAt128('every op against its CPU reference (GPU tiles)', () => describe.each(Object.values(OPS) as OpDef<unknown>[])('op $name', (op) => {
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
}));

// The harness's own checks must be able to fail: a planted kernel (y = 2x, plus one stray write chosen by MODE)
// writes past its output, into its input, or past its input; runOp must report each, and a clean run nothing.
const PLANTED_WGSL = `
struct Params { n: u32, pad: u32 };
@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) {
  let i = g.x;
  if (i < P.n) { y[i] = 2.0 * x[i]; }
  if (i == 0u) {
    if (MODE == 1) { y[P.n + ${GUARD_WORDS - 4}u] = 1.0; } // past the output, near the end of its guard words
    if (MODE == 2) { x[3] = 5.0; }                         // into the input
    if (MODE == 3) { x[P.n] = 5.0; }                       // past the input
  }
}`;
class PlantedCache extends PipelineCache {
  protected override source(kernel: string, defines: Record<string, DefineValue>): string {
    return kernel === 'planted' ? `const MODE = ${String(defines.MODE)};\n${PLANTED_WGSL}` : super.source(kernel, defines);
  }
}
const planted = (mode: number): OpDef<null> => ({
  name: `planted${mode}`,
  kind: 'elementwise',
  infer: (inputs) => [inputs[0]!],
  dispatch: (ctx) => [{ kernel: 'planted', defines: { MODE: mode }, grid: [Math.ceil(numel(ctx.outputs[0]!) / 64)], params: [numel(ctx.outputs[0]!), 0], bindings: [{ input: 0 }, { output: 0 }] }],
  reference: ([x]) => [x!.map((v) => 2 * v)],
  cases: [],
});

describe('runOp catches stray writes (its guard words and input checks can fail)', () => {
  const cases = [
    { mode: 0, want: [] as RegExp[] },
    { mode: 1, want: [new RegExp(`^output 0: guard word ${GUARD_WORDS - 4} after the buffer was overwritten$`)] },
    { mode: 2, want: [/^input 0: word 3 was overwritten$/] },
    { mode: 3, want: [/^input 0: guard word 0 after the buffer was overwritten$/] },
  ];
  it.each(cases)('mode $mode', async ({ mode, want }) => {
    const { gpu } = await testGpu();
    const cache = new PlantedCache(gpu.device);
    const x = uniform(mulberry32(3), 100, -1, 1);
    const got = await runOp(gpu, cache, planted(mode), [x], [[1, 100]], null);
    expect(got.violations.length).toBe(want.length);
    want.forEach((re, i) => expect(got.violations[i]).toMatch(re));
    if (mode !== 2) expect(got.outputs[0]).toEqual(x.map((v) => 2 * v)); // mode 2 races with the read of x[3]
  });
});

/**
 * Runs one test case of `op` on seeded inputs (rounded to f16 where `half` stores an input so) and compares every
 * output with the CPU reference (rounded where `half` stores it as f16) under the op's tolerance; `caps` plans the
 * dispatches (a tile policy) instead of the adapter's defaults.
 */
async function checkCase<A>(gpu: Awaited<ReturnType<typeof testGpu>>['gpu'], cache: PipelineCache, op: OpDef<A>, tc: TestCase<A>, seed: number, opts: { half?: HalfIO; caps?: GpuCaps; constant?: boolean[] } = {}) {
  const { half } = opts;
  const tol = op.tolerance ?? DEFAULT_TOLERANCE[op.kind];
  const rand = mulberry32(seed);
  const inputs = tc.inputs.map((s, i) => {
    const [lo, hi] = tc.ranges?.[i] ?? [-1, 1];
    const v = uniform(rand, numel(s), lo, hi);
    return half?.inputs[i] ? v.map(roundToF16) : v;
  });
  const outShapes = op.infer(tc.inputs, tc.attrs);
  const ref = op.reference(inputs, { attrs: tc.attrs, inputs: tc.inputs, outputs: outShapes }).map((r, i) => (half?.outputs[i] ? r.map(roundToF16) : r));
  const got = await runOp(gpu, cache, op, inputs, tc.inputs, tc.attrs, {
    ...(tc.inViews ? { inViews: tc.inViews } : {}),
    ...(tc.outViews ? { outViews: tc.outViews } : {}),
    ...(half ? { half } : {}),
    ...(opts.caps ? { caps: opts.caps } : {}),
    ...(opts.constant ? { constant: opts.constant } : {}),
  });
  expect(got.violations).toEqual([]);
  got.outputs.forEach((o, i) => {
    expect(ref[i]!.some((v) => v !== 0)).toBe(true);
    const err = nmse(o, ref[i]!);
    expect(err, `output ${i}${half?.outputs[i] ? ' (f16)' : ''} nmse ${err.toExponential(2)} > ${tol}`).toBeLessThanOrEqual(tol);
  });
}

// Half storage (src/graph/storage.ts): every case where the op's halfIO allows a packed-f16 input or output, run
// with all of those in f16. The reference sees the f16 inputs rounded and its f16 outputs are rounded (what the
// GPU stores); the op's own tolerance applies. The list is built from halfIO, so an op that gains f16 support
// gains these tests.
const halfCases = (Object.values(OPS) as OpDef<unknown>[]).flatMap((op) =>
  !op.halfIO
    ? []
    : op.cases.flatMap((tc, index) => {
        const half = op.halfIO!({ attrs: tc.attrs, inputs: tc.inputs, outputs: op.infer(tc.inputs, tc.attrs) });
        return half.inputs.some(Boolean) || half.outputs.some(Boolean) ? [{ op, tc, index, half, label: `${op.name}: ${tc.name}` }] : [];
      }),
);

describeAt128('half storage: ops reading and writing packed f16 (GPU tiles)', () => {
  it('some cases of depthwise, conv2d and global_pool read f16, and some of depthwise and conv2d write it', () => {
    const by = (name: string, what: 'inputs' | 'outputs') => halfCases.filter((c) => c.op.name === name && c.half[what].some(Boolean)).length;
    for (const name of ['depthwise', 'conv2d', 'global_pool']) expect(by(name, 'inputs'), name).toBeGreaterThan(2);
    for (const name of ['depthwise', 'conv2d']) expect(by(name, 'outputs'), name).toBeGreaterThan(2);
  });
  it('refuses an f16 tensor the op cannot take, naming it (depthwise output of odd width)', async () => {
    const { gpu, cache } = await testGpu();
    const tc = depthwise.cases.find((c) => c.name.startsWith('k3 s1 silu 7x9'))!;
    const inputs = tc.inputs.map((s) => new Float32Array(numel(s)));
    await expect(runOp(gpu, cache, depthwise, inputs, tc.inputs, tc.attrs, { half: { inputs: [true, false, false], outputs: [true] } })).rejects.toThrowError(/depthwise: output 0 cannot be f16/);
  });
  it.each(halfCases)('$label', async ({ op, tc, index, half }) => {
    const { gpu, cache } = await testGpu();
    await checkCase(gpu, cache, op, tc, 4321 + index * 7919, { half });
  });
});

// Tile policy 'software' (the default on SwiftShader and lavapipe): the DIRECT kernels (no workgroup memory, a
// workgroup of one SIMD group, per-plane walks instead of per-element divisions) of conv2d, depthwise, resize,
// linear, the squeeze-excite FCs and apply, and the elementwise kernels; every case of every op again, f32 and,
// where halfIO allows, half storage, against the same references.
describe("every op under tile policy 'software' (DIRECT kernels)", () => {
  const runs = (Object.values(OPS) as OpDef<unknown>[]).flatMap((op) =>
    op.cases.flatMap((tc, index) => {
      const half = op.halfIO?.({ attrs: tc.attrs, inputs: tc.inputs, outputs: op.infer(tc.inputs, tc.attrs), tiles: 'software' }) ?? { inputs: [], outputs: [] };
      const f16 = half.inputs.some(Boolean) || half.outputs.some(Boolean);
      return [{ op, tc, index, half: undefined, label: `${op.name}: ${tc.name}` }, ...(f16 ? [{ op, tc, index, half, label: `${op.name}: ${tc.name} (half storage)` }] : [])];
    }),
  );
  /** Caps of a software adapter planning under tile policy 'software' (no device needed to plan). */
  const softPlanCaps: GpuCaps = { limits: { maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits, features: new Set<string>(), subgroupMinSize: 4, tiles: 'software' };
  it("squeeze-excite's FC dispatches are the DIRECT entries (the plane pool keeps its own)", () => {
    for (const op of [OPS.se_scale, OPS.squeeze_excite] as OpDef<unknown>[])
      for (const tc of op.cases) {
        const specs = op.dispatch(caseContext(op, tc, softPlanCaps));
        const fc = specs.filter((d) => d.defines!.ENTRY_FC1 || d.defines!.ENTRY_FC2);
        expect(fc.map((d) => d.defines!.DIRECT), `${op.name}: ${tc.name}`).toEqual([1, 1]);
      }
  });
  it('depthwise plans one DIRECT dispatch per case, the pooled mean written by it (no scratch, no second pass)', () => {
    for (const tc of depthwise.cases) {
      const ctx = caseContext(depthwise, tc, softPlanCaps);
      const specs = depthwise.dispatch(ctx);
      expect(specs.map((d) => d.defines!.DIRECT), tc.name).toEqual([1]);
      expect(specs[0]!.defines!.POOL, tc.name).toBe(tc.attrs.pool ? 2 : 0);
      expect(depthwise.scratch!(ctx), tc.name).toEqual([]);
    }
  });
  it('every case plans one DIRECT dispatch (no K split), and s4, s8 and s32 are all taken', () => {
    const seen = new Set<number>();
    for (const tc of conv2d.cases) {
      const specs = conv2d.dispatch(caseContext(conv2d, tc, softPlanCaps));
      expect(specs.map((d) => d.defines!.DIRECT), tc.name).toEqual([1]);
      seen.add(Number(specs[0]!.defines!.TM));
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([4, 8, 32]);
  });
  it.each(runs)('$label', async ({ op, tc, index, half }) => {
    const { gpu, cache } = await testGpu();
    await checkCase(gpu, cache, op, tc, 2468 + index * 7919, { caps: capsFor(gpu, 'f32', undefined, 'software'), ...(half ? { half } : {}) });
  });
});

/** The dispatch context of conv2d's first case whose name starts with `name`, its views as the case gives them. */
function conv2dContext(name: string, caps: GpuCaps, half?: HalfIO, constant?: boolean[]) {
  const tc = conv2d.cases.find((c) => c.name.startsWith(name))!;
  expect(tc, name).toBeDefined();
  return caseContext(conv2d, tc, caps, half, constant);
}

/** The dispatch context of a test case of `op`, its views as the case gives them. */
function caseContext<A>(op: OpDef<A>, tc: TestCase<A>, caps: GpuCaps, half?: HalfIO, constant?: boolean[]) {
  const outputs = op.infer(tc.inputs, tc.attrs);
  return { attrs: tc.attrs, inputs: tc.inputs, outputs, inViews: tc.inputs.map((s, i) => tc.inViews?.[i] ?? denseView(s)), outViews: outputs.map((s, i) => tc.outViews?.[i] ?? denseView(s)), caps, ...(half ? { half } : {}), ...(constant ? { constant } : {}) };
}

// conv2d's subgroup kernel (kernels/conv2d_sg.wgsl): what tile policy 'software' picks on an adapter with 16-lane
// subgroups (lavapipe at its default 512-bit SIMD) for constant weights, prepared once at compile. Every conv2d case,
// f32 and half storage, with the weights marked constant as a compiled graph marks them, on this adapter: on lavapipe
// (16 lanes) the subgroup kernel, on SwiftShader (4 lanes) the DIRECT kernel the engine picks there instead. The
// kernel at 4 lanes (which the engine does not pick) runs here too, forced through its lanes list, so a change
// to the lane layout that only breaks the narrow case is caught on either adapter.
describe("conv2d's subgroup kernel (tile policy 'software', constant weights)", () => {
  const limits = { maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits;
  const lanes16: GpuCaps = { limits, features: new Set(['subgroups']), subgroupMinSize: 16, subgroupMaxSize: 16, tiles: 'software' };
  const weightsConst = (tc: TestCase<Conv2dAttrs>) => tc.inputs.map((_, i) => i === 1);
  it('is planned for every case with more than 4 output channels, only with 16-lane subgroups and constant weights', () => {
    const seen = { cg: new Set<number>(), rm: new Set<number>(), seg: new Set<number>(), vecX: new Set<number>(), vecY: new Set<number>() };
    for (const tc of conv2d.cases) {
      const ctx = caseContext(conv2d, tc, lanes16, undefined, weightsConst(tc));
      const specs = conv2d.dispatch(ctx);
      const cout = tc.inputs[1]![0]!;
      if (cout <= 4) {
        expect(specs.map((d) => d.kernel), tc.name).toEqual(['conv2d']);
        continue;
      }
      expect(specs.map((d) => d.kernel), tc.name).toEqual(['conv2d_sg']);
      expect(specs[0]!.defines!.L, tc.name).toBe(16);
      expect(specs[0]!.bindings[1], tc.name).toEqual({ prepared: 0 });
      seen.cg.add(Number(specs[0]!.defines!.CG));
      seen.rm.add(Number(specs[0]!.defines!.RM));
      seen.seg.add(Number(specs[0]!.defines!.SEG));
      seen.vecX.add(Number(specs[0]!.defines!.VEC_X));
      seen.vecY.add(Number(specs[0]!.defines!.VEC_Y));
      expect(conv2d.scratch!(ctx), tc.name).toEqual([]);
      // W' [Cout, taps * CinP], CinP = Cin rounded up to 4
      const [, cin, kh, kw] = tc.inputs[1]! as [number, number, number, number];
      expect(conv2d.prepare!(ctx).map((p) => p.words), tc.name).toEqual([cout * kh * kw * Math.ceil(cin / 4) * 4]);
      // not constant, 4-lane subgroups, no subgroups, another policy: the DIRECT (or GPU) kernel
      expect(conv2d.dispatch(caseContext(conv2d, tc, lanes16)).map((d) => d.kernel), tc.name).toEqual(['conv2d']);
      expect(conv2d.dispatch(caseContext(conv2d, tc, { ...lanes16, subgroupMinSize: 4, subgroupMaxSize: 4 }, undefined, weightsConst(tc)))[0]!.kernel).toBe('conv2d');
      expect(conv2d.dispatch(caseContext(conv2d, tc, { ...lanes16, features: new Set() }, undefined, weightsConst(tc)))[0]!.kernel).toBe('conv2d');
      expect(conv2d.dispatch(caseContext(conv2d, tc, { ...lanes16, tiles: 'auto' }, undefined, weightsConst(tc))).every((d) => d.kernel !== 'conv2d_sg')).toBe(true);
    }
    expect([...seen.cg].sort(), 'column groups').toEqual([1, 2]);
    expect([...seen.rm].sort(), 'rows per lane').toEqual([1, 2]);
    expect([...seen.seg].sort(), 'row segments').toEqual([0, 1]);
    expect([...seen.vecX].sort(), 'vec4 input loads').toEqual([0, 1]);
    expect([...seen.vecY].sort(), 'vec4 output stores').toEqual([0, 1]);
  });
  it('W\' in row-segment order for 3-wide kernels over rows of 16 or more: (ky, 4 channels, kx, channel)', () => {
    const tc = conv2d.cases.find((c) => c.name.startsWith('rows: 3x3 s1 p1 2x7x19x21'))!;
    const ctx = caseContext(conv2d, tc, lanes16, undefined, weightsConst(tc));
    expect(conv2d.dispatch(ctx)[0]!.defines!.SEG).toBe(1);
    const w = uniform(mulberry32(6), numel(tc.inputs[1]!), -1, 1);
    const [wp] = makePrepared(conv2d, ctx, (i) => (i === 1 ? w : new Float32Array(numel(tc.inputs[i]!))));
    const got = new Float32Array(wp!.buffer);
    const [cout, cin, cinP] = [12, 7, 8];
    const kp = 9 * cinP;
    for (let m = 0; m < cout; m++)
      for (let ky = 0; ky < 3; ky++)
        for (let cb = 0; cb < cinP; cb += 4)
          for (let kx = 0; kx < 3; kx++)
            for (let c = 0; c < 4; c++) {
              const ci = cb + c;
              expect(got[m * kp + ((ky * 2 + cb / 4) * 3 + kx) * 4 + c]).toBe(ci < cin ? w[((m * cin + ci) * 3 + ky) * 3 + kx]! : 0);
            }
  });
  it('W\' is W in tap-major order, channels padded with zeros to a multiple of 4', () => {
    const tc = conv2d.cases.find((c) => c.name.startsWith('3x3 s1 p1 7x9 Cin 5 Cout 13'))!;
    const ctx = caseContext(conv2d, tc, lanes16, undefined, weightsConst(tc));
    const w = uniform(mulberry32(5), numel(tc.inputs[1]!), -1, 1);
    const [wp] = makePrepared(conv2d, ctx, (i) => (i === 1 ? w : new Float32Array(numel(tc.inputs[i]!))));
    const got = new Float32Array(wp!.buffer);
    const [cout, cin] = [13, 5];
    const kp = 9 * 8;
    for (let m = 0; m < cout; m++)
      for (let t = 0; t < 9; t++)
        for (let ci = 0; ci < 8; ci++) expect(got[m * kp + t * 8 + ci]).toBe(ci < cin ? w[(m * cin + ci) * 9 + t]! : 0);
  });
  const runs = conv2d.cases.flatMap((tc, index) => {
    const half = conv2d.halfIO!({ attrs: tc.attrs, inputs: tc.inputs, outputs: conv2d.infer(tc.inputs, tc.attrs), tiles: 'software' });
    const f16 = half.inputs.some(Boolean) || half.outputs.some(Boolean);
    return [{ tc, index, half: undefined, label: tc.name }, ...(f16 ? [{ tc, index, half, label: `${tc.name} (half storage)` }] : [])];
  });
  it.each(runs)('$label', async ({ tc, index, half }) => {
    const { gpu, cache } = await testGpu();
    const caps = capsFor(gpu, 'f32', undefined, 'software');
    const ctx = caseContext(conv2d, tc, caps, half, weightsConst(tc));
    const want = sgLanes(caps) > 0 && tc.inputs[1]![0]! > 4 ? 'conv2d_sg' : 'conv2d';
    expect(conv2d.dispatch(ctx).map((d) => d.kernel)).toEqual([want]);
    await checkCase(gpu, cache, conv2d, tc, 9753 + index * 7919, { caps, constant: weightsConst(tc), ...(half ? { half } : {}) });
  });
  // The kernel itself at 4 lanes (the subgroup size of SwiftShader and of lavapipe at 128 bits, where the engine
  // keeps DIRECT), forced through an op that plans only it: on SwiftShader as it would run there, on 16-lane
  // lavapipe as a workgroup of 4 in lanes 0..3 of a 16-lane group.
  const conv2dSg4: OpDef<Conv2dAttrs> = {
    ...conv2d,
    scratch: () => [],
    prepare: (ctx) => sgPrepared(conv2dGeometry(ctx.inputs, ctx.attrs), 4),
    dispatch: (ctx) => sgDispatches(ctx, 4),
  };
  it.each(runs.filter((r) => r.tc.inputs[1]![0]! > 4))('at 4 lanes: $label', async ({ tc, index, half }) => {
    const { gpu, cache } = await testGpu();
    const caps = capsFor(gpu, 'f32', undefined, 'software');
    expect(caps.features.has('subgroups')).toBe(true);
    await checkCase(gpu, cache, conv2dSg4, tc, 8642 + index * 7919, { caps, constant: weightsConst(tc), ...(half ? { half } : {}) });
  });
});

describe('conv2d tile and K-split choices', () => {
  const limits = { maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits;
  const caps: GpuCaps = { limits, features: new Set<string>(), subgroupMinSize: 32 };
  const f16Caps: GpuCaps = { limits: { ...limits, maxComputeWorkgroupStorageSize: 49152 } as GPUSupportedLimits, features: new Set(['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix']), subgroupMinSize: 32, subgroupMaxSize: 32, precision: 'f16' };
  const context = (name: string, c: GpuCaps = caps, half?: HalfIO, constant?: boolean[]) => conv2dContext(name, c, half, constant);
  const specs = (name: string, c: GpuCaps = caps, half?: HalfIO, constant?: boolean[]) => conv2d.dispatch(context(name, c, half, constant));
  it('with constant weights (a compiled graph), the matrix-unit path binds them prepared once and drops their conversion pass', () => {
    const weightsConst = [false, true, true];
    const m128 = specs('mma m128', f16Caps, undefined, weightsConst);
    expect(m128.map((d) => d.defines!.ENTRY_CONVERT)).toEqual([1, 0]);
    expect(m128[0]!.bindings[0]).toEqual({ input: 0 });
    expect(m128[1]!.bindings.slice(0, 2)).toEqual([{ prepared: 0 }, { scratch: 0 }]);
    expect(conv2d.scratch!(context('mma m128', f16Caps, undefined, weightsConst))).toEqual([2 * 48 * 8 * 12 / 2]);
    expect(conv2d.prepare!(context('mma m128', f16Caps, undefined, weightsConst)).map((p) => ({ from: p.from, words: p.words }))).toEqual([{ from: [1], words: (160 * 48) / 2 }]);
    // dense f16 input, K % 16 == 0, prepared weights: the GEMM alone, no scratch
    const half: HalfIO = { inputs: [true, false], outputs: [true] };
    const m32 = specs('mma m32', f16Caps, half, [false, true]);
    expect(m32.map((d) => d.kernel)).toEqual(['conv2d_mma']);
    expect(m32[0]!.bindings.slice(0, 2)).toEqual([{ prepared: 0 }, { input: 0 }]);
    expect(conv2d.scratch!(context('mma m32', f16Caps, half, [false, true]))).toEqual([]);
    // not the matrix-unit path, or weights not constant: nothing prepared
    expect(conv2d.prepare!(context('mma m128', caps, undefined, weightsConst))).toEqual([]);
    expect(conv2d.prepare!(context('mma m128', f16Caps))).toEqual([]);
  });
  it('with half storage, the matrix-unit GEMM reads a dense f16 input with K % 16 == 0 and no scale in place (no conversion pass for it)', () => {
    const inPlace = specs('mma m32', f16Caps, { inputs: [true, false], outputs: [true] });
    expect(inPlace.map((d) => d.defines!.ENTRY_CONVERT)).toEqual([1, 0]);
    expect(inPlace[1]!.bindings[1]).toEqual({ input: 0 });
    expect(inPlace[1]!.defines!.Y_F16).toBe(1);
    expect(conv2d.scratch!({ attrs: conv2d.cases.find((c) => c.name.startsWith('mma m32'))!.attrs, inputs: [[2, 16, 16, 16], [24, 16, 1, 1]], outputs: [[2, 24, 16, 16]], inViews: [{ cOff: 0, cTot: 16 }, { cOff: 0, cTot: 24 }], outViews: [{ cOff: 0, cTot: 24 }], caps: f16Caps, half: { inputs: [true, false], outputs: [true] } })).toHaveLength(1);
    // K = 37 (padded to 48), or an input scale, or a view: the input still goes through its conversion pass (reading f16).
    const padded = specs('mma m128', f16Caps, { inputs: [true, false, false], outputs: [false] });
    expect(padded.map((d) => d.defines!.ENTRY_CONVERT)).toEqual([1, 1, 0]);
    expect(padded[1]!.defines!.X_F16).toBe(1);
    const scaled = specs('mma m64', f16Caps, { inputs: [true, false, false, true, false], outputs: [false] });
    expect(scaled.map((d) => d.defines!.ENTRY_CONVERT)).toEqual([1, 1, 0]);
    expect(scaled[2]!.defines!.RES_F16).toBe(1);
  });
  it('precision f16 takes the matrix-unit path (two f16 conversions, then the GEMM) for pointwise GEMMs of whole 16-pixel images over 16 x 64 that are not split, and only where the adapter has it', () => {
    const kernels = (name: string, c: GpuCaps) => specs(name, c).map((d) => `${d.kernel}${d.defines!.ENTRY_CONVERT ? ':convert' : ''}`);
    const tiles = { 'mma m128': 4, 'mma m64': 2, 'mma m32': 1 } as const;
    for (const name of F16_CASES) {
      expect(kernels(name, f16Caps), name).toEqual(['conv2d_mma:convert', 'conv2d_mma:convert', 'conv2d_mma']);
      expect(specs(name, f16Caps)[2]!.defines!.SG_WR, name).toBe(tiles[name as keyof typeof tiles]);
      expect(kernels(name, caps), `${name} (f32)`).toEqual(['conv2d']);
    }
    expect(kernels('1x1 s1 bias (pointwise path, wide tile)', f16Caps)).toEqual(['conv2d']); // Cout 12
    expect(kernels('big tile pointwise: inScale', f16Caps)).toEqual(['conv2d']); // 9x9 pixels: not whole 16-pixel blocks
    expect(kernels('big tile: Cout 70', f16Caps)).toEqual(['conv2d']); // 3x3
    expect(kernels('split K: pointwise', f16Caps)).toEqual(['conv2d', 'conv2d']); // split GEMMs stay f32
    expect(kernels(F16_CASES[0]!, { ...f16Caps, features: new Set(['shader-f16', 'subgroups']) })).toEqual(['conv2d']);
    expect(f16MatmulSupport({ ...f16Caps, features: new Set(['shader-f16', 'subgroups']) })).toMatch(/missing feature chromium-experimental-subgroup-matrix/);
    expect(f16MatmulSupport({ ...f16Caps, subgroupMinSize: 4, subgroupMaxSize: 4 })).toMatch(/subgroup size 4\.\.4/);
  });
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

/** conv2d cases that take the f16 matrix-unit kernel (pointwise, whole 16-pixel blocks, more than 16 output channels and 64 columns, K not split). */
const F16_CASES = ['mma m128', 'mma m64', 'mma m32'];

describe('conv2d with f16 operands on the matrix units', () => {
  const refs = (name: string) => {
    const tc = conv2d.cases.find((c) => c.name.startsWith(name))!;
    const rand = mulberry32(99);
    const inputs = tc.inputs.map((shape) => uniform(rand, numel(shape), -1, 1));
    const ctx = { attrs: tc.attrs, inputs: tc.inputs, outputs: conv2d.infer(tc.inputs, tc.attrs) };
    return { tc, inputs, f32: conv2d.reference(inputs, ctx)[0]!, f16: conv2d.reference(inputs, { ...ctx, precision: 'f16' })[0]! };
  };
  it('the CPU reference emulates the f16 rounding exactly where the GPU takes the matrix-unit path', () => {
    for (const name of F16_CASES) {
      const r = refs(name);
      const e = nmse(r.f16, r.f32);
      expect(e, name).toBeGreaterThan(1e-11);
      expect(e, name).toBeLessThanOrEqual(F16_CONV_TOLERANCE);
    }
    for (const name of ['1x1 s1 bias (pointwise path, wide tile)', 'big tile pointwise: inScale', 'big tile: Cout 70', 'split K: pointwise']) {
      const r = refs(name);
      expect(r.f16, name).toEqual(r.f32);
    }
  });
  // On an adapter with shader-f16 and subgroup matrices (the H100 with COVIDCT_TEST_HARDWARE=1): the result is the
  // f16-emulating reference's within conv2d's tolerance, and within F16_CONV_TOLERANCE of the f32 reference.
  // Elsewhere (SwiftShader): asking for f16 is refused with an error naming what is missing.
  it.each(F16_CASES)('%s', async (name) => {
    const { gpu, cache } = await testGpu();
    const { tc, inputs, f32, f16 } = refs(name);
    const run = () => runOp(gpu, cache, conv2d, inputs, tc.inputs, tc.attrs, { ...(tc.inViews ? { inViews: tc.inViews } : {}), ...(tc.outViews ? { outViews: tc.outViews } : {}), precision: 'f16' });
    const missing = f16MatmulSupport(gpu);
    if (missing) {
      await expect(run()).rejects.toThrowError(/precision 'f16' is not available on .*: (missing feature|subgroup size)/);
      return;
    }
    const got = await run();
    expect(got.violations).toEqual([]);
    const e16 = nmse(got.outputs[0]!, f16);
    const e32 = nmse(got.outputs[0]!, f32);
    expect(e16, `nmse ${e16.toExponential(2)} from the f16-emulating reference`).toBeLessThanOrEqual(DEFAULT_TOLERANCE.conv);
    expect(e32, `nmse ${e32.toExponential(2)} from the f32 reference`).toBeLessThanOrEqual(F16_CONV_TOLERANCE);
  });
});

describe("conv2d's f16 conversion passes (the matrix-unit path's first half, on any adapter)", () => {
  // ENTRY_CONVERT of kernels/conv2d_mma.wgsl needs no f16 or subgroup feature, so it runs here even where the GEMM
  // cannot: the dispatches are planned for f16 caps and only the conversions run. Their scratch must hold exactly
  // the zero-padded, rounded copies: weights [Mp, Kp], input [N, Kp, HW] (view, scale, f16 input when half).
  const f16Plan = (gpu: GpuCaps): GpuCaps => ({ ...gpu, features: new Set(['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix']), subgroupMinSize: 32, subgroupMaxSize: 32, precision: 'f16' });
  it.each(F16_CASES.flatMap((name) => [false, true].map((half) => ({ name, half }))))('$name, input in half storage: $half', async ({ name, half }) => {
    const { gpu, cache } = await testGpu();
    const tc = conv2d.cases.find((c) => c.name.startsWith(name))!;
    const rand = mulberry32(77);
    const inputs = tc.inputs.map((shape, i) => {
      const v = uniform(rand, numel(shape), -1, 1);
      return half && i === 0 ? v.map(roundToF16) : v;
    });
    const idx = conv2dInputIndex(tc.attrs);
    const halfIO: HalfIO = { inputs: tc.inputs.map((_, i) => half && i === 0), outputs: [false] };
    const got = await runOp(gpu, cache, conv2d, inputs, tc.inputs, tc.attrs, {
      ...(tc.inViews ? { inViews: tc.inViews } : {}),
      ...(tc.outViews ? { outViews: tc.outViews } : {}),
      half: halfIO,
      caps: f16Plan(capsFor(gpu, 'f32')),
      only: (d) => d.defines?.ENTRY_CONVERT === 1,
    });
    expect(got.violations).toEqual([]);
    const [N, K, H, W] = tc.inputs[0]! as [number, number, number, number];
    const M = tc.inputs[1]![0]!;
    const Kp = Math.ceil(K / 16) * 16;
    const Mp = Math.ceil(M / 16) * 16;
    const wantW = new Float32Array(Mp * Kp);
    for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) wantW[m * Kp + k] = inputs[1]![m * K + k]!;
    const HW = H * W;
    const scale = tc.attrs.hasInScale ? inputs[idx.inScale]! : null;
    const wantX = new Float32Array(N * Kp * HW);
    for (let n = 0; n < N; n++)
      for (let k = 0; k < K; k++)
        for (let p = 0; p < HW; p++) wantX[(n * Kp + k) * HW + p] = Math.fround(inputs[0]![(n * K + k) * HW + p]! * (scale ? scale[n * K + k]! : 1));
    expect(got.scratch[0]).toEqual(packHalf(wantW));
    // ... and the copy prepared on the CPU for constant weights (OpDef.prepare) is the same, word for word
    const prep = conv2d.prepare!(conv2dContext(name, f16Plan(capsFor(gpu, 'f32')), undefined, tc.inputs.map((_, i) => i === 1)));
    expect(prep.length).toBe(1);
    expect(prep[0]!.make([inputs[1]!])).toEqual(got.scratch[0]);
    // A dense f16 input with K % 16 == 0 and no scale is read in place (no copy, no scratch for it).
    const inPlace = half && !scale && K % 16 === 0 && !tc.inViews?.[0];
    expect(got.scratch.length).toBe(inPlace ? 1 : 2);
    if (!inPlace) expect(got.scratch[1]).toEqual(packHalf(wantX));
  });
});

describeEmulated("conv2d's matrix-unit GEMM on any adapter (matrix units emulated)", () => {
  // test/mma-emulation.ts rewrites the GEMM's matrix builtins into plain WGSL, so the whole matrix-unit path
  // (conversion passes, GEMM, epilogue, views, half storage, the in-place f16 input) runs here against the
  // reference that emulates the f16 rounding, at conv2d's tolerance. The hardware tests run the real builtins.
  const f16Plan = (gpu: GpuCaps): GpuCaps => ({ ...gpu, features: new Set(['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix']), subgroupMinSize: 32, subgroupMaxSize: 32, precision: 'f16' });
  let emulating: MmaEmulatingCache | null = null;
  const variants = F16_CASES.flatMap((name) => {
    const tc = conv2d.cases.find((c) => c.name.startsWith(name))!;
    const all = conv2d.halfIO!({ attrs: tc.attrs, inputs: tc.inputs, outputs: conv2d.infer(tc.inputs, tc.attrs) });
    const none: HalfIO = { inputs: all.inputs.map(() => false), outputs: [false] };
    // f16 storage: every input and output conv2d's halfIO allows (x, residual, y)
    return [
      { name, half: none, label: 'f32 storage', prepared: false },
      { name, half: none, label: 'f32, W prepared', prepared: true },
      { name, half: all, label: 'f16 storage', prepared: false },
      { name, half: all, label: 'f16, W prepared', prepared: true },
    ];
  });
  it('every case has an f16 variant that writes f16, and one reads its input in place', () => {
    expect(variants.filter((v) => v.half.outputs[0]).length).toBe(2 * F16_CASES.length);
    expect(variants.some((v) => v.half.inputs[0] && v.name === 'mma m32')).toBe(true);
  });
  it.each(variants)('$name, $label', async ({ name, half, prepared }) => {
    const { gpu } = await testGpu();
    emulating ??= new MmaEmulatingCache(gpu.device);
    const tc = conv2d.cases.find((c) => c.name.startsWith(name))!;
    const rand = mulberry32(555);
    const inputs = tc.inputs.map((shape, i) => {
      const v = uniform(rand, numel(shape), -1, 1);
      return half.inputs[i] ? v.map(roundToF16) : v;
    });
    const ctx = { attrs: tc.attrs, inputs: tc.inputs, outputs: conv2d.infer(tc.inputs, tc.attrs), precision: 'f16' as const };
    const ref = conv2d.reference(inputs, ctx)[0]!.map((v) => (half.outputs[0] ? roundToF16(v) : v));
    const got = await runOp(gpu, emulating, conv2d, inputs, tc.inputs, tc.attrs, {
      ...(tc.inViews ? { inViews: tc.inViews } : {}),
      ...(tc.outViews ? { outViews: tc.outViews } : {}),
      half,
      caps: f16Plan(capsFor(gpu, 'f32')),
      ...(prepared ? { constant: tc.inputs.map((_, i) => i === 1) } : {}),
    });
    expect(got.violations).toEqual([]);
    expect(got.scratch.length, 'scratch buffers').toBe((prepared ? 0 : 1) + (half.inputs[0] && name === 'mma m32' ? 0 : 1));
    const err = nmse(got.outputs[0]!, ref);
    expect(err, `nmse ${err.toExponential(2)} from the f16-emulating reference`).toBeLessThanOrEqual(DEFAULT_TOLERANCE.conv);
  });
});

describe('pack_half2 (kernels/common.wgsl) on this adapter', () => {
  // Every kernel that writes half storage packs through pack_half2; it must round like roundToF16 (nearest, ties
  // to even), bit for bit, although WGSL lets pack2x16float pick either neighbour (round_f16 makes sure).
  it('packs exactly what packHalf (the CPU) packs: ties, subnormals, both signs, across the f16 range', async () => {
    const { gpu } = await testGpu();
    const d = gpu.device;
    const rand = mulberry32(11);
    const n = 4096;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = (rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 26);
    // exact ties and near-ties around 1 and in the subnormal range
    x.set([1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 0.75 * 2 ** -10, -(1 + 2 ** -11), 2 ** -25, 3 * 2 ** -25, 1.5 * 2 ** -24, 65504, 2 ** -14 - 2 ** -26, 0, -0]);
    const code = preprocessWgsl(
      '#include "common.wgsl"\n@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n@group(0) @binding(1) var<storage, read_write> y: array<u32>;\n' +
        '@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { let i = g.x; if (i < arrayLength(&y)) { y[i] = pack_half2(x[2u * i], x[2u * i + 1u]); } }',
      {},
      kernelSource,
    );
    const xb = d.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    d.queue.writeBuffer(xb, 0, x);
    const yb = d.createBuffer({ size: n * 2, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const rb = d.createBuffer({ size: n * 2, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    d.pushErrorScope('validation');
    try {
      const p = d.createComputePipeline({ layout: 'auto', compute: { module: d.createShaderModule({ code }), entryPoint: 'main' } });
      const bg = d.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: xb } }, { binding: 1, resource: { buffer: yb } }] });
      const e = d.createCommandEncoder();
      const pass = e.beginComputePass();
      pass.setPipeline(p);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(n / 2 / 64);
      pass.end();
      e.copyBufferToBuffer(yb, 0, rb, 0, n * 2);
      d.queue.submit([e.finish()]);
      const err = await d.popErrorScope();
      expect(err?.message ?? null, 'pack_half2 kernel').toBeNull();
      await rb.mapAsync(GPUMapMode.READ);
      const got = new Uint32Array(rb.getMappedRange().slice(0));
      rb.unmap();
      const want = packHalf(x);
      const bad = [...got.keys()].filter((i) => got[i] !== want[i]);
      expect(bad.slice(0, 5).map((i) => `${x[2 * i]}, ${x[2 * i + 1]}: ${got[i]!.toString(16)} != ${want[i]!.toString(16)}`)).toEqual([]);
    } finally {
      for (const b of [xb, yb, rb]) b.destroy();
    }
  });
});

describe('roundToF16 (the CPU side of the f16 emulation)', () => {
  it('rounds to IEEE binary16: ties to even, subnormals, overflow to infinity; idempotent; within half a spacing', () => {
    const known: Array<[number, number]> = [
      [1, 1], [1 + 2 ** -11, 1], [1 + 3 * 2 ** -11, 1 + 2 ** -9], [1 + 2 ** -10, 1 + 2 ** -10], [-0.1, -0.0999755859375], [1 / 3, 0.333251953125],
      [65504, 65504], [65519, 65504], [65520, Infinity], [-70000, -Infinity], [2 ** -24, 2 ** -24], [2 ** -25, 0], [3 * 2 ** -26, 2 ** -24], [1.5 * 2 ** -14, 1.5 * 2 ** -14], [0, 0],
    ];
    for (const [x, want] of known) expect(roundToF16(x), `${x}`).toBe(want);
    expect(roundToF16(NaN)).toBeNaN();
    const rand = mulberry32(5);
    for (let i = 0; i < 10000; i++) {
      const x = Math.fround((rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 28));
      const r = roundToF16(x);
      expect(roundToF16(r)).toBe(r);
      const spacing = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(x) || 1)), -14) - 10);
      expect(Math.abs(r - x)).toBeLessThanOrEqual(spacing / 2 + 1e-30);
    }
  });
  it("packHalf (bulk, with its inline path for normal halves) packs every f32 bit pattern as roundToF16's conversion does", () => {
    // 2^20 seeded random bit patterns (every exponent, Inf and NaN among them) plus each exponent's rounding edges, odd count
    const rand = mulberry32(17);
    const bits: number[] = [];
    for (let i = 0; i < 1 << 20; i++) bits.push((rand() * 2 ** 32) >>> 0);
    for (let e = 0; e < 256; e++) for (const m of [0, 0xfff, 0x1000, 0x1001, 0x3000, 0x7fefff, 0x7ff000, 0x7fffff]) bits.push(((e << 23) | m) >>> 0, ((1 << 31) | (e << 23) | m) >>> 0);
    bits.push(0x3f800000);
    const x = new Float32Array(new Uint32Array(bits).buffer);
    const words = packHalf(x);
    expect(words.length).toBe((x.length + 1) / 2);
    const bad: string[] = [];
    for (let i = 0; i < x.length && bad.length < 5; i++) {
      const got = (words[i >> 1]! >>> ((i & 1) * 16)) & 0xffff;
      const want = f32ToF16(x[i]!);
      if (got !== want) bad.push(`${bits[i]!.toString(16)}: ${got.toString(16)} != ${want.toString(16)}`);
    }
    expect(bad).toEqual([]);
    expect(words[words.length - 1]! >>> 16, 'the odd count leaves the last high half zero').toBe(0);
    expect(unpackHalf(words, x.length).filter((v, i) => !Number.isNaN(v) && v !== roundToF16(x[i]!)).length).toBe(0);
  });
});
