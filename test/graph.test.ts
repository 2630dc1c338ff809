// Graph-level tests: the memory plan contract, build-time shape errors, device limits, the executor against
// the composition of the CPU references (batch 1 and 3), fusion, and readback on a lost device.
import { describe, expect, it } from 'vitest';
import { createGpu, GpuDeviceError } from '../src/gpu/device.js';
import { runGraphOnCpu } from '../src/graph/cpu.js';
import { compileGraph } from '../src/graph/executor.js';
import { GraphBuilder, type Tensor } from '../src/graph/ir.js';
import { findOverlaps, planMemory } from '../src/graph/plan.js';
import { demoNet } from '../src/models/demo.js';
import { ShapeError } from '../src/ops/op.js';
import { mulberry32, nmse, uniform } from '../src/ops/random.js';
import { OPS } from '../src/ops/registry.js';
import { testGpu } from './gpu.js';

function chain(layers: number, shape: number[]) {
  const g = new GraphBuilder();
  let x: Tensor = g.input('x', shape);
  for (let i = 0; i < layers; i++) x = g.op1('unary', [x], { act: i % 2 ? 'relu' : 'tanh' }, `layer${i}`);
  g.output('y', x);
  return g.finish();
}

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
    await expect(compileGraph(gpu, g.finish())).rejects.toThrowError(/tensor 'x' \[1, 2, \d+, \d+\] needs \d+ bytes, more than this device's maxStorageBufferBindingSize/);
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
