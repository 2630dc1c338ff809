// The bench's core on SwiftShader at a tiny size: the JSON report has every field, finite, and names the adapter.
// Plus the pieces that need no device: argument parsing, the weight generator against make_fixtures.py, the
// work summary from DispatchSpecs, order statistics, roofline arithmetic, and f16 reported as not implemented.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../bench/args.js';
import { unexpectedDriverLines } from '../bench/driver.js';
import { planBench, runBench, spread, type StageResult } from '../bench/core.js';
import { formatReport } from '../bench/format.js';
import { rooflineShare } from '../bench/roofline.js';
import { ablateConvSg } from '../bench/ablate.js';
import { preprocessWgsl } from '../src/wgsl/preprocess.js';
import { kernelSource } from '../src/wgsl/kernels.js';
import { recipes, weightValues } from '../src/models/random-weights.js';
import { planWork } from '../bench/work.js';
import { tinyModelConfig } from '../src/models/config.js';
import { buildStage1, buildStage2 } from '../src/models/pipeline.js';
import { bindWeights } from '../src/models/load.js';
import { randomWeightsFile } from '../src/models/random-weights.js';
import { readSafetensorsFile } from '../src/io/safetensors.js';
import { f16MatmulSupport } from '../src/ops/op.js';
import { testGpu } from './gpu.js';

const FIX = join(fileURLToPath(new URL('..', import.meta.url)), 'test', 'fixtures');

function finite(v: unknown, path: string): void {
  expect(typeof v, path).toBe('number');
  expect(Number.isFinite(v as number), `${path} = ${String(v)}`).toBe(true);
}

describe('bench helpers', () => {
  it('reimplements make_fixtures.py weight_values exactly', () => {
    // Printed by: from make_fixtures import weight_values; list(weight_values(0, 3, 5, 0.0, 11, 12)), (7, 120, 3, 1.0, 9, 9)
    expect(Array.from(weightValues(0, 3, 5, 0, 11, 12))).toEqual([0.0693359375, 0.129638671875, -0.140869140625, -0.1865234375, 0.0703125]);
    expect(Array.from(weightValues(7, 120, 3, 1, 9, 9))).toEqual([1.27734375, 1.45703125, 0.646484375]);
  });

  it('assigns the recipes make_fixtures.py recorded in the fixtures (center, bits, q per tensor)', async () => {
    // running_var is left out: make_fixtures may calibrate its centre with a forward pass; the bench does not.
    let checked = 0;
    for (const f of ['tiny', 'default', 'efficientnet_b0', 'efficientnet_b7']) {
      const path = join(FIX, `${f}.fixture.safetensors`);
      if (!existsSync(path)) continue;
      const meta = (await readSafetensorsFile(path)).metadata['fixture.weights'];
      if (!meta) continue;
      const manifest = (JSON.parse(meta) as { manifest: Array<[string, number[], number, number, number]> }).manifest;
      const r = recipes(manifest.map(([name, shape]) => ({ name, shape })));
      for (const [name, , c, bits, q] of manifest) {
        if (name.endsWith('.running_var')) continue;
        expect(r.get(name), name).toEqual([c, bits, q]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  it('parses the command line', () => {
    const p = parseBenchArgs(['--size', '64x48,32', '--batch', '1,2', '--stages', 'stage1', '--model', 'efficientnet_b7', '--profile', '--json', '--peers', 'torch,ort', '--peak-gflops', '5']);
    expect(p.opts.sizes).toEqual([[64, 48], [32, 32]]);
    expect(p.opts.batches).toEqual([1, 2]);
    expect(p.opts.stages).toEqual(['stage1']);
    expect(p.opts.models).toEqual(['efficientnet_b7']);
    expect(p.opts.peers).toEqual(['torch', 'ort']);
    expect(p.opts.peakGflops).toBe(5);
    expect(p.json).toBe(true);
    expect(parseBenchArgs(['--dawn-flags', 'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable-dawn-features=x']).opts.dawnFlags).toEqual([
      'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia',
      'disable-dawn-features=x',
    ]);
    expect(() => parseBenchArgs(['--size', 'big'])).toThrow(/--size/);
    expect(() => parseBenchArgs(['--peers', 'tf'])).toThrow(/unknown tf/);
    expect(parseBenchArgs(['--host-wait', 'spin']).opts.hostWait).toBe('spin');
    expect(parseBenchArgs([]).opts.hostWait).toBeUndefined();
    expect(() => parseBenchArgs(['--host-wait', 'nap'])).toThrow(/--host-wait takes sleep or spin, got 'nap'/);
  });

  it("drops lavapipe's two limit notices from the driver's output and keeps anything else", () => {
    const lavapipe =
      'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n' +
      'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n';
    expect(unexpectedDriverLines(lavapipe)).toEqual([]);
    expect(unexpectedDriverLines(`${lavapipe}MESA: error: ZINK: failed to choose pdev\n\n`)).toEqual(['MESA: error: ZINK: failed to choose pdev']);
    expect(() => parseBenchArgs(['--frobnicate'])).toThrow(/unknown option/);
    expect(parseBenchArgs(['--storage', 'f16']).opts.storage).toBe('f16');
    expect(() => parseBenchArgs(['--storage', 'f8'])).toThrow(/--storage must be f32 or f16/);
  });

  it('summarises runs and roofline arithmetic', () => {
    const s = spread([4, 1, 3, 2]);
    expect([s.medianMs, s.minMs, s.maxMs, s.p25Ms, s.p75Ms]).toEqual([2.5, 1, 4, 1.75, 3.25]);
    // 2 GFLOP and 1 GB at 10 GFLOP/s and 10 GB/s: compute-bound, 0.2 s ideal; measured 0.4 s -> 50%.
    expect(rooflineShare(2e9, 1e9, 0.4, { gflops: 10, gbs: 10 })).toEqual({ idealS: 0.2, share: 0.5 });
  });

  it('sums FLOPs and bytes from the DispatchSpecs of a planned graph', () => {
    const cfg = tinyModelConfig();
    const m = buildStage1(cfg, { batch: 1, height: 32, width: 32 });
    bindWeights(randomWeightsFile([m]), m, { allowUnexpected: true });
    const w = planWork(m.graph);
    expect(w.dispatches).toBeGreaterThan(50);
    expect(w.flops).toBeGreaterThan(1e6);
    expect(w.bytes).toBeGreaterThan(1e5);
    expect(w.byOp.conv2d!.flops).toBeGreaterThan(w.flops / 2);
  });

  it('plans half storage: the same FLOPs, fewer bytes (depthwise near half), a smaller arena', () => {
    const cfg = tinyModelConfig();
    const plan = (storage: 'f32' | 'f16') => {
      const m = buildStage2(cfg, { batch: 2, height: 64, width: 64 }); // at 64x64 every depthwise plane is even-sized
      bindWeights(randomWeightsFile([m]), m, { allowUnexpected: true });
      return planWork(m.graph, undefined, true, undefined, storage);
    };
    const f32 = plan('f32');
    const f16 = plan('f16');
    expect(f16.flops).toBe(f32.flops);
    expect(f16.dispatches).toBe(f32.dispatches);
    expect(f16.bytes).toBeLessThan(f32.bytes); // the tiny stage 2 has much besides EfficientNet blocks
    expect(f16.byOp.depthwise!.bytes).toBeLessThan(0.6 * f32.byOp.depthwise!.bytes); // activations halved, weights f32
    expect(f16.arenaBytes).toBeLessThan(f32.arenaBytes);
  });

  it('plans precision f16 (H100 caps with subgroup matrices): matrix-unit GEMMs on weights prepared once, as compileGraph would', () => {
    const rows = planBench({ models: ['efficientnet_b0'], stages: [], sizes: [[512, 512]], batches: [16], precision: 'f16' });
    const f32 = planBench({ models: ['efficientnet_b0'], stages: [], sizes: [[512, 512]], batches: [16], precision: 'f32' });
    expect([rows[0]!.precision, rows[0]!.storage]).toEqual(['f16', 'f16']);
    expect(rows[0]!.flops).toBe(f32[0]!.flops);
    // the pointwise convs' weights are on the device as f16 copies only (the rest stay f32)
    expect(rows[0]!.weightBytes).toBeLessThan(0.75 * f32[0]!.weightBytes);
    expect(rows[0]!.weightBytes).toBeGreaterThan(0.5 * f32[0]!.weightBytes);
    // a matrix-unit conv is its input's conversion (unless read in place) and the GEMM: never more than two
    // dispatches, so at most twice the f32 plan's conv2d count
    expect(rows[0]!.byOp.conv2d!.dispatches).toBeGreaterThan(f32[0]!.byOp.conv2d!.dispatches);
    expect(rows[0]!.byOp.conv2d!.dispatches).toBeLessThanOrEqual(2 * f32[0]!.byOp.conv2d!.dispatches);
  });
});

describe('bench on the GPU', () => {
  it('measures f16 where the adapter has it, else says why not instead of measuring f32 under its name', async () => {
    const { gpu, cache } = await testGpu();
    const rep = await runBench({ gpu, cache, config: 'tiny', sizes: [[32, 32]], batches: [1], stages: ['stage1'], precision: 'f16', repeats: 1, warmup: 0 });
    if (f16MatmulSupport(gpu)) {
      expect(rep.results).toEqual([]);
      expect(rep.notMeasured[0]!.reason).toMatch(/^f16: not available on .*: missing feature/);
    } else {
      expect(rep.results.map((r) => r.precision)).toEqual(['f16']);
      expect(rep.results[0]!.outputs.finite).toBe(true);
    }
  });

  it('runs stage 1 of the tiny config at 32x32, batch 1, 2 repeats', async () => {
    const { gpu, cache } = await testGpu();
    const rep = await runBench({ gpu, cache, config: 'tiny', sizes: [[32, 32]], batches: [1], stages: ['stage1'], repeats: 2, warmup: 0 });
    const json = JSON.parse(JSON.stringify(rep)) as typeof rep;
    expect(json.adapter.name.length).toBeGreaterThan(3);
    expect(json.adapter.name).toBe(gpu.adapterName);
    expect(json.notMeasured).toEqual([]);
    expect(json.results).toHaveLength(1);
    const r = json.results[0]! as StageResult;
    expect(r.adapter).toBe(gpu.adapterName);
    expect(r.software).toBe(gpu.isSoftware);
    expect([r.target, r.config, r.batch, r.height, r.width, r.precision]).toEqual(['stage1', 'tiny', 1, 32, 32, 'f32']);
    for (const k of ['weightsMs', 'buildMs', 'compileMs', 'pipelineCompileMs', 'pipelinesCompiled', 'firstRunMs', 'slicesPerS', 'msPerSlice', 'dispatches', 'flops', 'bytes', 'achievedGflops'] as const) finite(r[k], k);
    for (const k of ['runs', 'medianMs', 'minMs', 'maxMs', 'p25Ms', 'p75Ms'] as const) finite(r.steady[k], `steady.${k}`);
    for (const k of ['arenaBytes', 'weightBytes', 'ioBytes', 'uniformBytes', 'totalBytes'] as const) finite(r.memory[k], `memory.${k}`);
    expect(r.steady.runs).toBe(2);
    expect(r.steady.samplesMs).toHaveLength(2);
    expect(r.steady.minMs).toBeLessThanOrEqual(r.steady.medianMs);
    expect(r.dispatches).toBeGreaterThan(50);
    expect(r.memory.weightBytes).toBeGreaterThan(0);
    expect(r.flops).toBeGreaterThan(1e6);
    expect(r.slicesPerS).toBeCloseTo(1000 / r.steady.medianMs, 6);
    expect(json.commit).toMatch(/^[0-9a-f]+|unknown/);
    // The process's CPU time beside the wall times (the compile and every run do some host work, on any adapter).
    for (const k of ['compileMs', 'firstRunMs', 'steadyMedianMs'] as const) {
      finite(r.cpu?.[k], `cpu.${k}`);
      expect(r.cpu![k], `cpu.${k}`).toBeGreaterThan(0);
    }
    expect(formatReport(json)).toContain('slices per CPU-second');
  }, 120_000);
});

describe('bench/kernels.ts --ablate (bench/ablate.ts)', () => {
  // conv2d_sg as the engine compiles it for a pointwise (VEC_X) and a 3 x 3 row-segment (SEG) convolution.
  const base = { ACT: 2, BIND_BIAS: 3, BIND_RES: 0, BIND_SCALE: 0, BIND_Y: 4, CG: 1, HAS_BIAS: 1, HAS_RES: 0, HAS_SCALE: 0, L: 16, RES_F16: 0, RM: 2, VEC_Y: 1, X_F16: 0, Y_F16: 0 };
  const sources = {
    pointwise: preprocessWgsl(kernelSource('conv2d_sg')!, { ...base, POINTWISE: 1, SEG: 0, VEC_X: 1 }, kernelSource, 'conv2d_sg.wgsl'),
    seg: preprocessWgsl(kernelSource('conv2d_sg')!, { ...base, POINTWISE: 0, SEG: 1, KW: 3, VEC_X: 0 }, kernelSource, 'conv2d_sg.wgsl'),
  };
  it.each(Object.entries(sources))('%s: each ablation takes out what it names and nothing else', (_, src) => {
    expect(src).toContain('subgroupBroadcast(');
    const b = ablateConvSg(src, 'b');
    expect(b).not.toContain('subgroupBroadcast(');
    expect(b).toMatch(/\bwp\[/);
    const w = ablateConvSg(src, 'w');
    expect(w.replace(/fn abl_w[^\n]*/, '')).not.toMatch(/\bwp\[/);
    expect(w).toContain('subgroupBroadcast(');
    const x = ablateConvSg(src, 'x');
    expect(x).not.toBe(src);
    expect(x.split('\n').filter((l) => !/fn (load_x|abl_x)/.test(l)).join('\n')).not.toMatch(/\bload_x\(|x4\[\(xbase/);
    expect(ablateConvSg(src, 'bxw')).toBe(ablateConvSg(ablateConvSg(ablateConvSg(src, 'b'), 'x'), 'w'));
  });
  it('refuses what it does not know, and a kernel that no longer has what it would take out', () => {
    expect(() => ablateConvSg(sources.seg, 'q')).toThrow(/takes b, x and w/);
    expect(() => ablateConvSg(sources.seg.replaceAll('subgroupBroadcast(', 'subgroupShuffle('), 'b')).toThrow(/no longer has the shape/);
    expect(() => ablateConvSg(sources.seg.replace(/\bwp\[/g, 'wq['), 'w')).toThrow(/no longer has the shape/);
    expect(() => ablateConvSg(sources.pointwise.replaceAll('x4[(xbase', 'x4[(xbase2'), 'x')).toThrow(/no longer has the shape/);
    expect(() => ablateConvSg(ablateConvSg(sources.seg, 'b').replace(/\bwp\[/g, 'wq['), 'w')).toThrow(/no longer has the shape/);
  });
});
