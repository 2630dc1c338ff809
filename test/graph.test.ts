// Graph-level tests: the memory plan contract, build-time shape errors, device limits, the executor against
// the composition of the CPU references (batch 1 and 3), fusion, and readback on a lost device.
import { describe, expect, it } from 'vitest';
import { createGpu, GpuDeviceError } from '../src/gpu/device.js';
import { runGraphOnCpu } from '../src/graph/cpu.js';
import { compileGraph, type CompileOptions } from '../src/graph/executor.js';
import { compileProgram } from '../src/graph/compile.js';
import { GraphBuilder } from '../src/graph/builder.js';
import type { Tensor } from '../src/graph/ir.js';
import { findOverlaps, opScratchBytes, planMemory } from '../src/graph/plan.js';
import { halfTensors } from '../src/graph/storage.js';
import { fuseGraph } from '../src/graph/fuse.js';
import { efficientnet } from '../src/models/efficientnet.js';
import { bindWeights } from '../src/models/load.js';
import { randomWeightsFile } from '../src/models/random-weights.js';
import { demoNet } from '../src/models/demo.js';
import { ShapeError } from '../src/ops/op.js';
import { mulberry32, nmse, uniform } from '../src/ops/random.js';
import { OPS } from '../src/ops/registry.js';
import { sgLanes } from '../src/ops/conv2d.js';
import { testGpu } from './gpu.js';
import { describeEmulated, emulatedF16 } from './mma-emulation.js';

function chain(layers: number, shape: number[]) {
  const g = new GraphBuilder();
  let x: Tensor = g.input('x', shape);
  for (let i = 0; i < layers; i++) x = g.op1('unary', [x], { act: i % 2 ? 'relu' : 'tanh' }, `layer${i}`);
  g.output('y', x);
  return g.finish();
}

describe('half storage: which tensors are f16', () => {
  /** conv (8x8 out) -> depthwise (out width `w2`) -> conv -> concat with x -> global_pool. */
  function net(w2Odd: boolean) {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 4, 8, 8]);
    const pw = (name: string, t: Tensor, cout: number) => g.op1('conv2d', [t, g.weight(`${name}.w`, [cout, t.shape[1]!, 1, 1])], { kernel: [1, 1], stride: [1, 1], pad: [0, 0], act: 'silu', hasBias: false, hasResidual: false, hasInScale: false }, name);
    const a = pw('expand', x, 8);
    const d = g.op1('depthwise', [a, g.weight('dw.w', [8, 1, 3, 3])], { kernel: 3, stride: w2Odd ? 2 : 1, pad: w2Odd ? 0 : 1, hasBias: false }, 'dw');
    const p = pw('project', d, 4);
    const q = pw('side', p, 4);
    const c = g.op1('concat', [q, pw('other', p, 4)], {}, 'cat');
    g.output('pooled', g.op1('global_pool', [c], { mode: 'avg' }, 'pool'));
    return { graph: g.finish(), x, a, d, p, q, c };
  }
  it('producer writes it, every consumer reads it; never inputs, outputs, concat operands or odd pairs', () => {
    const even = net(false);
    // a: conv -> depthwise; d: depthwise (8 wide) -> conv; p: conv -> two convs. q feeds the concat, c is its output.
    expect([...halfTensors(even.graph)].sort()).toEqual([even.a.id, even.d.id, even.p.id].sort());
    const odd = net(true); // depthwise output 3x3: odd width, written as f32; the projection then has 9 pixels per image
    expect([...halfTensors(odd.graph)].sort()).toEqual([odd.a.id].sort());
  });
  it('the plan gives an f16 tensor half the bytes, and the CPU emulation rounds exactly those tensors', () => {
    const { graph, a, d } = net(false);
    const half = halfTensors(graph);
    const plan = planMemory(graph, () => [], half);
    const f32 = planMemory(net(false).graph);
    expect(plan.placements.get(a.id)!.bytes).toBe(2 * 8 * 64 * 2);
    expect(f32.placements.get(a.id)!.bytes).toBe(2 * 8 * 64 * 4);
    expect(plan.placements.get(d.id)!.bytes).toBe(2 * 8 * 64 * 2);
    expect(findOverlaps(plan)).toEqual([]);
    const rand = mulberry32(3);
    for (const t of graph.tensors) if (t.kind === 'weight') graph.weightData.set(t.id, uniform(rand, t.shape.reduce((p, q) => p * q, 1), -1, 1));
    const inputs = { x: uniform(rand, 2 * 4 * 64, -1, 1) };
    const e = nmse(runGraphOnCpu(graph, inputs, { storage: 'f16' }).pooled!, runGraphOnCpu(graph, inputs).pooled!);
    expect(e).toBeGreaterThan(1e-12);
    expect(e).toBeLessThan(1e-5);
  });
  it('EfficientNet-B7 fused: every MBConv depthwise output with an even width is f16, no graph input or output is', () => {
    const m = efficientnet('efficientnet_b7', { batch: 1, height: 64, width: 64, intermediates: false });
    bindWeights(randomWeightsFile([m]), m);
    fuseGraph(m.graph);
    const half = halfTensors(m.graph);
    const dws = m.graph.liveNodes().filter((n) => n.op === 'depthwise');
    for (const n of dws) expect(half.has(n.outputs[0]!), n.name).toBe(m.graph.tensors[n.outputs[0]!]!.shape[3]! % 2 === 0);
    for (const id of [...m.graph.inputs, ...m.graph.outputs.values()]) expect(half.has(id)).toBe(false);
    const caps = { limits: { maxComputeWorkgroupsPerDimension: 65535, maxComputeWorkgroupStorageSize: 16384 } as GPUSupportedLimits, features: new Set<string>(), subgroupMinSize: 4 };
    const plan = planMemory(m.graph, opScratchBytes(m.graph, caps, half), half);
    expect(findOverlaps(plan)).toEqual([]);
    expect(half.size).toBeGreaterThan(dws.length);
  });
});

describeEmulated('precision f16 in a compiled graph (matrix units emulated)', () => {
  it('prepares constant weights once at compile (no f32 upload, no per-run conversion), converts runtime ones every run, and matches the CPU emulation', async () => {
    const { gpu: real } = await testGpu();
    const { gpu, cache } = emulatedF16(real);
    const g = new GraphBuilder();
    const x = g.input('x', [1, 32, 16, 16]);
    const wB = g.input('wB', [40, 48, 1, 1]); // weights given at run time: not constant
    const conv = (flags: { hasBias: boolean }) => ({ kernel: [1, 1], stride: [1, 1], pad: [0, 0], act: 'silu', hasResidual: false, hasInScale: false, ...flags }) as const;
    const a = g.op1('conv2d', [x, g.weight('wA', [48, 32, 1, 1]), g.weight('bA', [48])], conv({ hasBias: true }), 'convA');
    g.output('y', g.op1('conv2d', [a, wB], conv({ hasBias: false }), 'convB'));
    const graph = g.finish();
    const rand = mulberry32(8);
    for (const t of graph.tensors) if (t.kind === 'weight') graph.weightData.set(t.id, uniform(rand, t.shape.reduce((p, q) => p * q, 1), -1, 1));
    const inputs = { x: uniform(rand, 32 * 256, -1, 1), wB: uniform(rand, 40 * 48, -1, 1) };
    const cg = await compileGraph(gpu, graph, { cache, precision: 'f16' });
    try {
      // convA: input conversion + GEMM on the prepared weights; convB: its weights' conversion + GEMM reading a
      // (f16, K = 48) in place
      expect(cg.stats.dispatches).toBe(4);
      expect(cg.stats.halfTensors.half).toBe(1);
      // wA as f16 (48 x 32 halves = 3072 bytes), bA as f32 (192 bytes -> 256); wA's f32 copy is not on the device
      expect(cg.stats.weightBytes).toBe(3072 + 256);
      const got = (await cg.run(inputs)).outputs.y!;
      const want = runGraphOnCpu(graph, inputs, { precision: 'f16' }).y!;
      const e = nmse(got, want);
      expect(e, `nmse ${e.toExponential(2)} from the CPU emulation`).toBeLessThanOrEqual(1e-7);
      expect(nmse(got, runGraphOnCpu(graph, inputs).y!)).toBeGreaterThan(1e-9); // f16 did happen
    } finally {
      cg.destroy();
    }
  });
});

describe('tile policy: a compile option, per graph', () => {
  /**
   * conv 3x3 (64 -> 24 channels, K = 576, 2 x 16 x 16 outputs: `mid` tile and a K split under 'auto', `big`
   * unsplit under 'legacy'), then depthwise 3x3 on 24 x 24 planes (32 x 32 tile under 'auto', 32 x 16 under
   * 'legacy'). Built fresh for each compile (fusion edits a graph in place).
   */
  function net() {
    const g = new GraphBuilder();
    const x = g.input('x', [2, 64, 24, 24]);
    const c = g.op1('conv2d', [x, g.weight('c.w', [24, 64, 3, 3]), g.weight('c.b', [24])], { kernel: [3, 3], stride: [1, 1], pad: [1, 1], act: 'relu', hasBias: true, hasResidual: false, hasInScale: false }, 'conv');
    g.output('y', g.op1('depthwise', [c, g.weight('d.w', [24, 1, 3, 3]), g.weight('d.b', [24])], { kernel: 3, stride: 1, pad: 1, hasBias: true }, 'dw'));
    const graph = g.finish();
    const rand = mulberry32(15);
    for (const t of graph.tensors) if (t.kind === 'weight') graph.weightData.set(t.id, uniform(rand, t.shape.reduce((p, q) => p * q, 1), -0.2, 0.2));
    return graph;
  }
  const x = uniform(mulberry32(16), 2 * 64 * 24 * 24, -1, 1);
  /** The dispatches' kernel and defines, per node, as compileGraph would make them. */
  const specsOf = (caps: Parameters<typeof compileProgram>[0], opts: CompileOptions) =>
    compileProgram(caps, net(), opts).nodes.map((n) => n.specs.map((d) => ({ kernel: d.kernel, defines: d.defines, grid: d.grid })));

  it("graphs compiled with 'auto', 'legacy', 'software' and no option in one process, interleaved, each keep their tiles and match the CPU reference", async () => {
    const { gpu, cache } = await testGpu();
    const auto = specsOf(gpu, { tiles: 'auto' });
    const legacy = specsOf(gpu, { tiles: 'legacy' });
    const software = specsOf(gpu, { tiles: 'software' });
    const dflt = specsOf(gpu, {});
    // no option: 'software' on a software adapter (the tests' lavapipe and SwiftShader), 'auto' on a GPU
    expect(dflt).toEqual(gpu.isSoftware ? software : auto);
    expect(specsOf({ ...gpu, isSoftware: false } as Parameters<typeof compileProgram>[0], {})).toEqual(auto);
    expect(specsOf({ ...gpu, isSoftware: true } as Parameters<typeof compileProgram>[0], {})).toEqual(software);
    expect(legacy).not.toEqual(auto);
    // conv: a K split (GEMM + reduce) under 'auto', one GEMM with the 64-row tile under 'legacy', under 'software'
    // one DIRECT GEMM (8-row tile, no workgroup memory), or on 16-lane subgroups (lavapipe at 512 bits; the
    // weights are constants) the subgroup kernel with row segments (3x3, stride 1, rows of 24)
    expect(auto[0]!.length).toBe(2);
    expect(legacy[0]!.length).toBe(1);
    expect(software[0]!.length).toBe(1);
    expect(auto[0]![0]!.defines?.TM).toBe(32);
    expect(legacy[0]![0]!.defines?.TM).toBe(64);
    if (sgLanes({ ...gpu, tiles: 'software' }) === 16) expect(software[0]![0]!).toMatchObject({ kernel: 'conv2d_sg', defines: { L: 16, SEG: 1 } });
    else expect(software[0]![0]!).toMatchObject({ kernel: 'conv2d', defines: { TM: 8, DIRECT: 1 } });
    expect(auto[0]![0]!.defines?.DIRECT).toBe(0);
    // depthwise: a different tile (its grid differs for the same 24 x 24 planes)
    expect(legacy[1]).not.toEqual(auto[1]);
    const want = runGraphOnCpu(net(), { x }).y!;
    const compiled = [];
    try {
      // Compiled interleaved (auto, legacy, software, default), then run interleaved twice.
      for (const tiles of ['auto', 'legacy', 'software', undefined] as const) compiled.push(await compileGraph(gpu, net(), { cache, ...(tiles ? { tiles } : {}) }));
      expect(compiled.map((c) => c.stats.dispatches)).toEqual([3, 2, 2, gpu.isSoftware ? 2 : 3]);
      for (let round = 0; round < 2; round++)
        for (const cg of compiled) {
          const e = nmse((await cg.run({ x })).outputs.y!, want);
          expect(e, `nmse ${e.toExponential(2)}`).toBeLessThanOrEqual(1e-7);
        }
    } finally {
      for (const cg of compiled) cg.destroy();
    }
  });

  it('an unknown policy is refused by name', () => {
    expect(() => specsOf({ limits: {} as GPUSupportedLimits, features: new Set(), subgroupMinSize: 4, adapterName: 't' }, { tiles: 'fast' as 'auto' })).toThrowError(/tile policy must be 'auto', 'legacy' or 'software', got 'fast'/);
  });

  it("the CPU's f16 emulation follows the policy it is given", () => {
    // A pointwise conv (K = 512, 24 outputs, 128 pixels): under 'auto' its K is split, so it stays f32 in an f16
    // graph; under 'legacy' it is not, so it takes the matrix-unit path and the emulation rounds its operands.
    const g = new GraphBuilder();
    const xin = g.input('x', [1, 512, 8, 16]);
    g.output('y', g.op1('conv2d', [xin, g.weight('w', [24, 512, 1, 1])], { kernel: [1, 1], stride: [1, 1], pad: [0, 0], act: 'none', hasBias: false, hasResidual: false, hasInScale: false }, 'pw'));
    const graph = g.finish();
    const rand = mulberry32(17);
    for (const t of graph.tensors) if (t.kind === 'weight') graph.weightData.set(t.id, uniform(rand, t.shape.reduce((p, q) => p * q, 1), -1, 1));
    const inputs = { x: uniform(rand, 512 * 128, -1, 1) };
    const f32 = runGraphOnCpu(graph, inputs).y!;
    expect(runGraphOnCpu(graph, inputs, { precision: 'f16', storage: 'f32', tiles: 'auto' }).y!).toEqual(f32);
    expect(nmse(runGraphOnCpu(graph, inputs, { precision: 'f16', storage: 'f32', tiles: 'legacy' }).y!, f32)).toBeGreaterThan(1e-9);
  });
});

describe('memory plan', () => {
  it('packs a 20-layer chain far below the sum of its tensors, with no live overlaps', () => {
    const graph = chain(20, [2, 8, 16, 16]);
    const plan = planMemory(graph);
    expect(findOverlaps(plan)).toEqual([]);
    const tensorBytes = 2 * 8 * 16 * 16 * 4;
    // 19 intermediate tensors go through the arena; at most two are live at once.
    expect(plan.unpackedBytes).toBe(19 * tensorBytes);
    expect(plan.arenaBytes).toBeLessThanOrEqual(2 * tensorBytes);
    expect(plan.arenaBytes).toBeGreaterThan(0);
  });

  it('never places graph inputs or outputs in the arena and keeps a concat free', () => {
    const g = new GraphBuilder();
    const x = g.input('x', [1, 3, 5, 5]);
    const a = g.op1('unary', [x], { act: 'relu' }, 'a');
    const b = g.op1('unary', [x], { act: 'tanh' }, 'b');
    const c = g.op1('concat', [a, b, x], {}, 'cat');
    const y = g.op1('unary', [c], { act: 'sigmoid' }, 'y');
    g.output('y', y);
    g.output('a', a);
    const graph = g.finish();
    const plan = planMemory(graph);
    expect(plan.placements.get(x.id)).toEqual({ where: 'input', bytes: 3 * 25 * 4 });
    expect(plan.placements.get(y.id)?.where).toBe('output');
    // b is written in place into the concat buffer; a is a graph output and x a graph input, so both are copied.
    expect(plan.views.get(b.id)).toEqual({ base: c.id, cOff: 3 });
    expect(plan.views.has(a.id)).toBe(false);
    expect(plan.views.has(x.id)).toBe(false);
    expect(graph.nodes.find((n) => n?.name === 'cat')!.attrs.inPlace).toEqual([false, true, false]);
    expect(findOverlaps(plan)).toEqual([]);
  });

  it('finds an overlap when one is planted (the checker itself works)', () => {
    const plan = planMemory(chain(4, [1, 4, 4, 4]));
    const [r0, r1] = plan.arena.filter((r) => r.key >= 0);
    r1!.firstStep = r0!.firstStep;
    r1!.lastStep = r0!.lastStep;
    r1!.offset = r0!.offset;
    expect(findOverlaps(plan).length).toBeGreaterThan(0);
  });
});

describe('graph building', () => {
  it('fails at build time on mismatched shapes, naming the node, the op and the shapes', () => {
    const g = new GraphBuilder();
    const a = g.input('a', [2, 3, 5, 5]);
    const b = g.input('b', [2, 4, 5, 5]);
    expect(() => g.op1('binary', [a, b], { op: 'add' }, 'residual_add')).toThrowError(ShapeError);
    expect(() => g.op1('binary', [a, b], { op: 'add' }, 'residual_add')).toThrowError(/node 'residual_add(_\d+)?': binary: .*\[2, 3, 5, 5\], \[2, 4, 5, 5\]/);
  });

  it('rejects a tensor beyond maxStorageBufferBindingSize with a clear error before touching the device', async () => {
    const { gpu } = await testGpu();
    const limit = gpu.limits.maxStorageBufferBindingSize;
    const side = Math.ceil(Math.sqrt(limit / 4 / 2)) + 1; // [1, 2, side, side] f32 is just over the limit
    const g = new GraphBuilder();
    const x = g.input('x', [1, 2, side, side]);
    g.output('y', g.op1('unary', [x], { act: 'relu' }, 'relu'));
    await expect(compileGraph(gpu, g.finish())).rejects.toThrowError(/tensor 'x' \[1, 2, \d+, \d+\] needs \d+ bytes \([\d.]+ MiB\), more than this device's maxStorageBufferBindingSize/);
  });
});

const NEEDED = ['conv2d', 'depthwise', 'global_pool', 'linear', 'resize_bilinear', 'se_scale', 'squeeze_excite'];

describe('executor', () => {
  it('has every op the end-to-end graph needs', () => {
    expect(NEEDED.filter((o) => !OPS[o])).toEqual([]);
  });

  it.each([1, 3])('runs conv, depthwise, SE, residual, resize and concat end to end, batch %i, fused and unfused', async (batch) => {
    const { gpu, cache } = await testGpu();
    const x = uniform(mulberry32(7 * batch), batch * 3 * 7 * 9);
    const ref = runGraphOnCpu(demoNet(batch, 99 + batch), { x });
    for (const fuse of [false, true]) {
      const graph = demoNet(batch, 99 + batch);
      const compiled = await compileGraph(gpu, graph, { cache, fuse });
      try {
        const planOverlaps = findOverlaps(compiled.plan);
        expect(planOverlaps).toEqual([]);
        if (fuse) {
          expect(compiled.stats.fusion!.foldedBatchNorm).toBe(4);
          expect(compiled.stats.fusion!.fusedSqueezeExcite).toBe(1);
          expect(compiled.stats.fusion!.fusedResidual).toBe(1);
          expect(graph.liveNodes().map((n) => n.op)).not.toContain('batchnorm');
        }
        const got = await compiled.run({ x });
        expect(got.adapter).toBe(gpu.adapterName);
        for (const name of ['y', 'pooled']) {
          const err = nmse(got.outputs[name]!, ref[name]!);
          expect(err, `${name} (fuse=${fuse}) nmse ${err}`).toBeLessThanOrEqual(1e-7);
        }
      } finally {
        compiled.destroy();
      }
    }
  });

  it('profiles every dispatch with timestamp queries where the adapter has them', async () => {
    const { gpu, cache } = await testGpu();
    const compiled = await compileGraph(gpu, chain(5, [1, 4, 9, 7]), { cache });
    try {
      const r = await compiled.run({ x: uniform(mulberry32(3), 4 * 63) }, { profile: gpu.features.has('timestamp-query') });
      if (gpu.features.has('timestamp-query')) {
        expect(r.timings!.length).toBe(compiled.stats.dispatches);
        expect(r.timings!.every((t) => Number.isFinite(t.ns) && t.ns >= 0)).toBe(true);
      } else {
        expect(r.timings).toBeUndefined();
      }
    } finally {
      compiled.destroy();
    }
  });

  it('rejects wrong inputs with a message naming them', async () => {
    const { gpu, cache } = await testGpu();
    const compiled = await compileGraph(gpu, chain(2, [1, 2, 3, 3]), { cache });
    try {
      await expect(compiled.run({})).rejects.toThrowError(/missing input 'x'/);
      await expect(compiled.run({ x: new Float32Array(5) })).rejects.toThrowError(/input 'x' has 5 values; shape \[1, 2, 3, 3\] needs 18/);
      await expect(compiled.run({ x: new Float32Array(18), z: new Float32Array(1) })).rejects.toThrowError(/unknown input 'z'/);
    } finally {
      compiled.destroy();
    }
  });

  it('raises an error instead of returning zeros when the device is lost', async () => {
    // A device of its own (it is destroyed here), on the adapter the other tests use.
    const gpu = await createGpu({ forceSoftware: process.env.COVIDCT_TEST_HARDWARE !== '1' });
    const compiled = await compileGraph(gpu, chain(2, [1, 2, 3, 3]));
    const ok = await compiled.run({ x: new Float32Array(18).fill(0.5) });
    expect(ok.outputs.y!.every((v) => v !== 0)).toBe(true);
    gpu.device.destroy();
    await gpu.lost;
    await expect(compiled.run({ x: new Float32Array(18).fill(0.5) })).rejects.toThrowError(GpuDeviceError);
    await expect(compiled.run({ x: new Float32Array(18).fill(0.5) })).rejects.toThrowError(/device lost/);
  });
});
