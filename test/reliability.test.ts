// GPU resources over long runs (issue 15, "GPU faults and long runs"): live GPU buffers are counted through a
// wrapper of device.createBuffer / GPUBuffer.destroy (trackBuffers), so a leak shows as a count that grows.
import { defaultWeights } from '../src/node/default-weights.js';
import { describe, expect, it } from 'vitest';
import { compileGraph } from '../src/graph/executor.js';
import { GraphBuilder } from '../src/graph/builder.js';
import { mulberry32, uniform } from '../src/ops/random.js';
import { createGpu, GpuDeviceError, type GpuContext } from '../src/gpu/device.js';
import { GpuLimitError } from '../src/gpu/limits.js';
import { DEFAULT_GPU_TIMEOUT_MS, GpuTimeoutError } from '../src/gpu/watchdog.js';
import { codecStats, decodeJpeg2000, MAX_CODEC_HEAP } from '../src/io/dicom/codecs.js';
import { TARGETS } from './fuzz/targets.js';
import { compileProgram } from '../src/graph/compile.js';
import { loadPipeline } from '../src/models/load.js';
import { testGpu, testSoftwareDriver } from './gpu.js';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { analyzeVolume, AnalysisAbortedError } from '../src/analysis/analyze.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { chestPhantomVolume } from '../src/analysis/phantom.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import { EXIT, exitCodeOf } from '../src/cli/common.js';
import { ROOT } from './fixtures.js';
import { pendingWaits } from '../src/gpu/wait.js';

/** A full garbage collection (V8's gc, made reachable here without starting node with --expose-gc). */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Counts the live GPU buffers of a device from now on: createBuffer adds one, the first destroy() removes it. */
export function trackBuffers(device: GPUDevice): { live: () => number; created: () => number; stop: () => void } {
  const live = new Set<GPUBuffer>();
  let created = 0;
  const original = device.createBuffer;
  device.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor): GPUBuffer {
    const b = original.call(this, desc);
    created++;
    live.add(b);
    const destroy = b.destroy;
    b.destroy = function (this: GPUBuffer) {
      live.delete(b);
      return destroy.call(this);
    };
    return b;
  };
  return { live: () => live.size, created: () => created, stop: () => void (device.createBuffer = original) };
}

/**
 * Counts every live GPU object a device hands out that must be destroyed: buffers, textures and query sets
 * (createX adds one, its first destroy() removes it), per kind.
 */
export function trackGpuObjects(device: GPUDevice): { live: () => { buffers: number; textures: number; querySets: number }; stop: () => void } {
  const kinds = { buffers: 'createBuffer', textures: 'createTexture', querySets: 'createQuerySet' } as const;
  const live = { buffers: new Set<unknown>(), textures: new Set<unknown>(), querySets: new Set<unknown>() };
  const originals: Array<() => void> = [];
  for (const [kind, method] of Object.entries(kinds) as Array<[keyof typeof kinds, (typeof kinds)[keyof typeof kinds]]>) {
    const dev = device as unknown as Record<string, (d: unknown) => { destroy: () => void }>;
    const original = dev[method]!;
    dev[method] = function (this: GPUDevice, desc: unknown) {
      const o = original.call(this, desc);
      live[kind].add(o);
      const destroy = o.destroy;
      o.destroy = function (this: unknown) {
        live[kind].delete(o);
        return destroy.call(this);
      };
      return o;
    };
    originals.push(() => void (dev[method] = original));
  }
  return { live: () => ({ buffers: live.buffers.size, textures: live.textures.size, querySets: live.querySets.size }), stop: () => originals.forEach((f) => f()) };
}

/** A small graph: a 3x3 convolution with bias and SiLU, a depthwise 3x3, global average pool. */
function smallGraph() {
  const g = new GraphBuilder();
  const x = g.input('x', [1, 4, 32, 32]);
  const c = g.op1('conv2d', [x, g.weight('c.w', [8, 4, 3, 3]), g.weight('c.b', [8])], { kernel: [3, 3], stride: [1, 1], pad: [1, 1], act: 'silu', hasBias: true, hasResidual: false, hasInScale: false }, 'conv');
  const d = g.op1('depthwise', [c, g.weight('d.w', [8, 1, 3, 3])], { kernel: 3, stride: 1, pad: 1, hasBias: false }, 'dw');
  g.output('y', g.op1('global_pool', [d], { mode: 'avg' }, 'pool'));
  const graph = g.finish();
  const rand = mulberry32(21);
  for (const t of graph.tensors) if (t.kind === 'weight') graph.weightData.set(t.id, uniform(rand, t.shape.reduce((p, q) => p * q, 1), -1, 1));
  return { graph, inputs: { x: uniform(rand, 4 * 32 * 32, -1, 1) } };
}

describe('no leaks', () => {
  it('200 runs of a compiled graph (1000 with COVIDCT_LEAK_RUNS=1000) leave the live GPU buffers and the process memory flat; destroy() frees every buffer', async () => {
    const { gpu, cache } = await testGpu();
    const tracker = trackBuffers(gpu.device);
    try {
      const { graph, inputs } = smallGraph();
      const cg = await compileGraph(gpu, graph, { cache });
      const first = (await cg.run(inputs)).outputs.y!;
      for (let i = 0; i < 20; i++) await cg.run(inputs); // warm: pools of readback buffers fill
      const liveWarm = tracker.live();
      // 200 runs in the suite (about 6 s on lavapipe); COVIDCT_LEAK_RUNS=1000 for the issue's figure.
      const runs = Number(process.env.COVIDCT_LEAK_RUNS ?? 200);
      const rss: number[] = [];
      const heap: number[] = [];
      for (let i = 0; i < runs; i++) {
        if (i % (runs / 4) === 0) {
          gc();
          const m = process.memoryUsage();
          rss.push(m.rss);
          heap.push(m.heapUsed);
        }
        const y = (await cg.run(inputs)).outputs.y!;
        if (i % 50 === 0) expect(y).toEqual(first);
      }
      gc();
      const end = process.memoryUsage();
      rss.push(end.rss);
      heap.push(end.heapUsed);
      const liveAfter = tracker.live();
      const mb = (l: number[]) => l.map((n) => (n / 2 ** 20).toFixed(1)).join(' -> ');
      console.log(`${runs} runs: live GPU buffers ${liveWarm} -> ${liveAfter} (${tracker.created()} created in all); at each quarter: rss ${mb(rss)} MiB, heap ${mb(heap)} MiB`);
      expect(liveAfter, `live GPU buffers after ${runs} runs`).toBe(liveWarm);
      // Host memory: after a full GC, the last half of the runs may not grow the JS heap by 4 MiB (a leak of 40 KiB
      // per run, an output copy and its promise chain kept, would in the suite's 200 runs). Measured (lavapipe,
      // 1000 runs, at each quarter): heap 13.9 -> 14.3 -> 14.3 -> 14.5 -> 14.6 MiB; RSS 177 -> 213 -> 249 -> 235 ->
      // 238 MiB (native memory grows over the first half, then stays: not asserted, the drivers' own).
      expect(heap[4]! - heap[2]!, 'heap growth over the second half of the runs').toBeLessThan(4 * 2 ** 20);
      cg.destroy();
      expect(tracker.live(), 'live GPU buffers after destroy()').toBe(0);
    } finally {
      tracker.stop();
    }
  });
});

describe('device lost', () => {
  it('a device destroyed during runs gives GpuDeviceError (never an output), and a new device works afterwards in the same process', async () => {
    const { graph, inputs } = smallGraph();
    const gpu = await createGpu({ forceSoftware: testSoftwareDriver() ?? false });
    const cg = await compileGraph(gpu, graph);
    const want = (await cg.run(inputs)).outputs.y!;
    // Runs in flight when the device goes, and a run after it: each rejects with GpuDeviceError, none resolves.
    const inFlight = [0, 1, 2].map(() => cg.run(inputs));
    gpu.device.destroy();
    const outcomes = await Promise.allSettled([...inFlight, cg.run(inputs)]);
    const resolved = outcomes.filter((o) => o.status === 'fulfilled').length;
    const errors = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error] : []));
    console.log(`device destroyed with 3 runs in flight: ${resolved} resolved, ${errors.length} rejected: ${[...new Set(errors.map((e) => `${e.name}: ${e.message}`))].join(' | ')}`);
    // A run the device finished before destroy() took effect may resolve, with the right output; the run after it cannot.
    outcomes.forEach((o) => o.status === 'fulfilled' && expect(o.value.outputs.y).toEqual(want));
    expect(outcomes[3]!.status).toBe('rejected');
    for (const e of errors) expect(e, e.stack).toBeInstanceOf(GpuDeviceError);
    cg.destroy();
    const fresh = await createGpu({ forceSoftware: testSoftwareDriver() ?? false });
    try {
      const cg2 = await compileGraph(fresh, smallGraph().graph);
      expect((await cg2.run(inputs)).outputs.y).toEqual(want);
      cg2.destroy();
    } finally {
      fresh.destroy();
    }
  });
});

describe('a scan through the engine (the committed synthetic-small weights, batch 2, 6 slices of 64 x 64)', () => {
  const weights = () => parseSafetensors(new Uint8Array(readFileSync(defaultWeights().path)), 'synthetic-small.safetensors');
  const volume = chestPhantomVolume({ slices: 6, height: 64, width: 64 });
  it('destroy() frees every buffer, texture and query set the engine made; 6 analyses on one engine (50 with COVIDCT_LEAK_ANALYSES=50) keep them and the JS heap flat', async () => {
    const { gpu, cache } = await testGpu();
    const tracker = trackGpuObjects(gpu.device);
    // Small, to keep the suite fast: the model at 32 x 32, 2 slices (one batch).
    const volume = chestPhantomVolume({ slices: 2, height: 48, width: 48 });
    try {
      const engine = await TwoStageEngine.load(gpu, weights(), { batch: 2, cache, height: 32, width: 32 });
      let tw = performance.now();
      const first = await analyzeVolume(engine, volume);
      const firstS = (performance.now() - tw) / 1000;
      // The teacher-forced path compiles stage 2 alone: destroy() must free that graph too.
      tw = performance.now();
      await engine.runWindowed(new Float32Array(2 * 32 * 32).fill(0.5), { lungMask: new Float32Array(2 * 32 * 32).fill(1) });
      console.log(`first analysis ${firstS.toFixed(1)} s; stage 2 alone compiled and run ${((performance.now() - tw) / 1000).toFixed(1)} s`);
      const liveWarm = tracker.live();
      const n = Number(process.env.COVIDCT_LEAK_ANALYSES ?? 6);
      const rss: number[] = [];
      const heap: number[] = [];
      const sample = () => {
        gc();
        const m = process.memoryUsage();
        rss.push(m.rss);
        heap.push(m.heapUsed);
      };
      const t0 = performance.now();
      for (let i = 0; i < n; i++) {
        if (i === 0 || i === Math.floor(n / 2)) sample();
        const r = await analyzeVolume(engine, volume);
        if (i % 5 === 0) expect(r.report.slices).toEqual(first.report.slices);
        expect(tracker.live(), `live GPU objects after analysis ${i + 1}`).toEqual(liveWarm);
      }
      sample();
      const mb = (l: number[]) => l.map((v) => (v / 2 ** 20).toFixed(1)).join(' -> ');
      console.log(`${n} analyses (${((performance.now() - t0) / n / 1000).toFixed(2)} s each): live GPU objects ${JSON.stringify(liveWarm)} throughout; at start, half-way, end: rss ${mb(rss)} MiB, heap ${mb(heap)} MiB`);
      // The JS heap after a full GC may not grow by 2 MiB over the second half (noise measured: under 0.4 MiB; a leak
      // of the engine's per-batch arrays, at least the 2 x 32 x 32 x 4 float maps per analysis, only shows over the
      // 50 analyses of COVIDCT_LEAK_ANALYSES=50: this bound is for gross leaks such as a kept volume).
      expect(heap[2]! - heap[1]!, 'heap growth over the second half of the analyses').toBeLessThan(2 * 2 ** 20);
      engine.destroy();
      expect(tracker.live(), 'GPU objects left after engine.destroy()').toEqual({ buffers: 0, textures: 0, querySets: 0 });
      engine.destroy(); // twice is harmless
    } finally {
      tracker.stop();
    }
  }, 300_000);
  it('cancelled after its first batch: stops within one batch, no GPU buffer left behind, the next scan equals the first', async () => {
    const { gpu, cache } = await testGpu();
    const engine = await TwoStageEngine.load(gpu, weights(), { batch: 2, cache });
    try {
      const first = await analyzeVolume(engine, volume);
      const tracker = trackBuffers(gpu.device);
      try {
        const ac = new AbortController();
        let batchesAfterAbort = 0;
        const p = analyzeVolume(engine, volume, {
          signal: ac.signal,
          onProgress: (e) => {
            if (e.stage !== 'analyze') return;
            if (ac.signal.aborted) batchesAfterAbort++;
            if (e.done >= 2) ac.abort();
          },
        });
        await expect(p).rejects.toThrowError(AnalysisAbortedError);
        await expect(p).rejects.toThrowError(/aborted after 2 of 6 slices/);
        expect(batchesAfterAbort, 'batches run after the abort').toBe(0);
        expect(tracker.live(), 'GPU buffers left by the cancelled scan').toBe(0);
      } finally {
        tracker.stop();
      }
      const again = await analyzeVolume(engine, volume);
      expect(again.report.slices).toEqual(first.report.slices);
      expect(again.report.patient).toEqual(first.report.patient);
    } finally {
      engine.destroy();
    }
  });
  it('two scans started at once on one engine, and on two engines sharing a device, give what they give one after the other', async () => {
    const { gpu, cache } = await testGpu();
    const other = chestPhantomVolume({ slices: 5, height: 64, width: 64, opacities: false });
    const a = await TwoStageEngine.load(gpu, weights(), { batch: 2, cache });
    const b = await TwoStageEngine.load(gpu, weights(), { batch: 2, cache });
    try {
      const seq = [await analyzeVolume(a, volume), await analyzeVolume(a, other)].map((r) => r.report);
      const together = (await Promise.all([analyzeVolume(a, volume), analyzeVolume(a, other)])).map((r) => r.report);
      const twoEngines = (await Promise.all([analyzeVolume(a, volume), analyzeVolume(b, other)])).map((r) => r.report);
      for (const got of [together, twoEngines])
        got.forEach((r, i) => {
          expect(r.slices).toEqual(seq[i]!.slices);
          expect(r.patient).toEqual(seq[i]!.patient);
        });
      expect(seq[0]!.slices).not.toEqual(seq[1]!.slices); // two different scans, so a mix-up would show
    } finally {
      a.destroy();
      b.destroy();
    }
  });
  it('device destroyed during a scan: GpuDeviceError, no result; a new engine on a new device gives the result', async () => {
    const gpu = await createGpu({ forceSoftware: testSoftwareDriver() ?? false });
    const engine = await TwoStageEngine.load(gpu, weights(), { batch: 2 });
    let result: unknown = null;
    try {
      const p = analyzeVolume(engine, volume, { onProgress: (e) => e.stage === 'analyze' && e.done >= 2 && gpu.device.destroy() });
      await expect(p).rejects.toThrowError(GpuDeviceError);
      result = await p.catch(() => null);
      expect(result).toBeNull();
      expect(exitCodeOf(await p.catch((e: unknown) => e))).toBe(EXIT.gpuFailure);
    } finally {
      engine.destroy();
    }
    const fresh = await testGpu();
    const engine2 = await TwoStageEngine.load(fresh.gpu, weights(), { batch: 2, cache: fresh.cache });
    try {
      const r = await analyzeVolume(engine2, volume);
      expect(r.report.slices.length).toBe(6);
    } finally {
      engine2.destroy();
    }
  });
});

describe("beyond the adapter's limits", () => {
  const weights = () => parseSafetensors(new Uint8Array(readFileSync(defaultWeights().path)), 'synthetic-small.safetensors');
  /** The compile step's figures for the engine's graph at batch b, size x size (CPU only). */
  const programAt = (gpu: GpuContext, b: number, size = 32) => compileProgram(gpu, loadPipeline(weights(), { batch: b, height: size, width: size }).twoStage.graph, {});
  /** A context whose limits read `over` where given (the device keeps its own: every buffer made still fits it). */
  const withLimits = (gpu: GpuContext, over: Partial<Record<'maxBufferSize' | 'maxStorageBufferBindingSize', number>>): GpuContext => ({
    ...gpu,
    limits: new Proxy(gpu.limits, { get: (t, k) => (typeof k === 'string' && k in over ? over[k as keyof typeof over] : Reflect.get(t, k)) }),
  });

  it('a device with the default limits and a batch whose buffers exceed them: GpuLimitError naming the limit, the sizes and a batch that fits, before any buffer is made', async () => {
    // A device requested with WebGPU's default limits (maxStorageBufferBindingSize 128 MiB, maxBufferSize 256 MiB).
    const small = await createGpu({ forceSoftware: testSoftwareDriver() ?? false, limits: 'default' });
    const device = small.device;
    const tracker = trackBuffers(device);
    try {
      expect(device.limits.maxStorageBufferBindingSize).toBe(128 * 2 ** 20);
      const p = TwoStageEngine.load(small, weights(), { batch: 64, height: 512, width: 512 });
      const e = (await p.catch((x: unknown) => x)) as GpuLimitError;
      console.log(`batch 64 at 512 x 512 on default limits: ${e.name}: ${e.message}`);
      expect(e).toBeInstanceOf(GpuLimitError);
      expect(e.name).toBe('GpuLimitError');
      expect(e).toBeInstanceOf(GpuDeviceError); // the CLI's GPU exit code
      expect(exitCodeOf(e)).toBe(EXIT.gpuFailure);
      expect(e.message).toMatch(/needs \d+ bytes \([\d.]+ MiB\), more than this device's (maxStorageBufferBindingSize|maxBufferSize) \(\d+ bytes/);
      expect(e.message).toMatch(/use a batch of (\d+) or less \(--batch \1\)/);
      expect(e.message).not.toMatch(/\n/);
      expect(e.needed).toBeGreaterThan(e.available);
      expect(e.available).toBe(device.limits[e.limit as 'maxBufferSize']);
      expect(tracker.created(), 'buffers made before the refusal').toBe(0);
      // The batch it names does fit (compile step only).
      const fits = Number(/--batch (\d+)/.exec(e.message)![1]);
      expect(() => compileProgram(small, loadPipeline(weights(), { batch: fits, height: 512, width: 512 }).twoStage.graph, {})).not.toThrow();
      expect(() => compileProgram(small, loadPipeline(weights(), { batch: fits + 1, height: 512, width: 512 }).twoStage.graph, {})).toThrowError(GpuLimitError);
      // A graph input over the binding limit, compiled by itself: the same error, naming the tensor.
      const g = new GraphBuilder();
      const x = g.input('x', [1, 2, 6000, 6000]);
      g.output('y', g.op1('unary', [x], { act: 'relu' }, 'relu'));
      await expect(compileGraph(small, g.finish())).rejects.toThrowError(/tensor 'x' \[1, 2, 6000, 6000\] needs 288000000 bytes \(274.7 MiB\), more than this device's maxStorageBufferBindingSize \(134217728 bytes \(128.0 MiB\)\).*: use a smaller batch or input size$/);
      expect(tracker.created()).toBe(0);
    } finally {
      tracker.stop();
      device.destroy();
    }
  });

  it("batch 'auto' picks the largest batch that fits the limits, and runs", async () => {
    const { gpu, cache } = await testGpu();
    // At 64 x 64 the arena of batch 3 (1.67 MB) is larger than any single weight (1.64 MB), so it is what the limit stops.
    const arena = [1, 2, 3, 4].map((b) => programAt(gpu, b, 64).plan.arenaBytes);
    expect(arena[3]!).toBeGreaterThan(arena[2]!);
    const limited = withLimits(gpu, { maxBufferSize: arena[2]! }); // batch 3's arena just fits, batch 4's does not
    const engine = await TwoStageEngine.load(limited, weights(), { batch: 'auto', maxBatch: 8, cache, height: 64, width: 64 });
    try {
      expect(engine.batch).toBe(3);
      const r = await analyzeVolume(engine, chestPhantomVolume({ slices: 4, height: 48, width: 48 }));
      expect(r.report.slices.length).toBe(4);
    } finally {
      engine.destroy();
    }
    // A fixed batch over it names the limit and batch 3.
    await expect(TwoStageEngine.load(limited, weights(), { batch: 5, cache, height: 64, width: 64 })).rejects.toThrowError(/needs \d+ bytes .* maxBufferSize .*use a batch of 3 or less \(--batch 3\)/);
  });

  it('out of memory at buffer creation: GpuLimitError, nothing left allocated; batch auto halves the batch and runs', async () => {
    const { gpu, cache } = await testGpu();
    const arena2 = programAt(gpu, 2).plan.arenaBytes;
    // Out of memory injected: an arena larger than batch 2's makes the enclosing out-of-memory scope report an error.
    const device = gpu.device;
    const filters: string[] = [];
    const oomPending: boolean[] = [];
    const push = device.pushErrorScope;
    const pop = device.popErrorScope;
    const create = device.createBuffer;
    device.pushErrorScope = function (this: GPUDevice, f: GPUErrorFilter) {
      filters.push(f);
      oomPending.push(false);
      return push.call(this, f);
    };
    device.popErrorScope = async function (this: GPUDevice) {
      filters.pop();
      const injected = oomPending.pop();
      const real = await pop.call(this);
      return real ?? (injected ? ({ message: 'injected: not enough memory' } as GPUError) : null);
    };
    device.createBuffer = function (this: GPUDevice, d: GPUBufferDescriptor) {
      if (d.label === 'arena' && d.size > arena2) {
        const i = filters.lastIndexOf('out-of-memory');
        if (i >= 0) oomPending[i] = true;
      }
      return create.call(this, d);
    };
    const tracker = trackBuffers(device);
    try {
      const e = (await TwoStageEngine.load(gpu, weights(), { batch: 4, height: 32, width: 32, cache }).catch((x: unknown) => x)) as GpuLimitError;
      console.log(`injected out of memory, batch 4: ${e.name}: ${e.message}`);
      expect(e).toBeInstanceOf(GpuLimitError);
      expect(e.limit).toBe('out-of-memory');
      expect(e.message).toMatch(/ran out of memory creating the graph's buffers \(\d+ bytes .*injected: not enough memory.*use a batch of 2 or less \(--batch 2\)/);
      expect(tracker.live(), 'buffers left after the failed compile').toBe(0);
      const engine = await TwoStageEngine.load(gpu, weights(), { batch: 'auto', maxBatch: 4, height: 32, width: 32, cache });
      try {
        expect(engine.batch).toBe(2);
        expect((await analyzeVolume(engine, chestPhantomVolume({ slices: 3, height: 48, width: 48 }))).report.slices.length).toBe(3);
      } finally {
        engine.destroy();
      }
    } finally {
      tracker.stop();
      device.pushErrorScope = push;
      device.popErrorScope = pop;
      device.createBuffer = create;
    }
  });
});

describe('a time watchdog on the GPU', () => {
  /** Makes the device's map of buffers with `usage` bits never resolve from now on (a hung submission); returns the undo. */
  function hangMaps(device: GPUDevice, usage: number): () => void {
    const create = device.createBuffer;
    device.createBuffer = function (this: GPUDevice, d: GPUBufferDescriptor) {
      const b = create.call(this, d);
      if (d.usage & usage) b.mapAsync = () => new Promise<undefined>(() => {});
      return b;
    };
    return () => void (device.createBuffer = create);
  }

  it('an output map that never completes: GpuTimeoutError (a GpuDeviceError, exit code 5) within the bound, instead of a hang', async () => {
    const { gpu, cache } = await testGpu();
    const undo = hangMaps(gpu.device, GPUBufferUsage.MAP_READ);
    try {
      const { graph, inputs } = smallGraph();
      const cg = await compileGraph(gpu, graph, { cache, gpuTimeoutMs: 300 });
      try {
        const t0 = performance.now();
        const e = (await cg.run(inputs).catch((x: unknown) => x)) as Error;
        const ms = performance.now() - t0;
        console.log(`never-resolving mapAsync, bound 300 ms: ${e.name} after ${ms.toFixed(0)} ms: ${e.message}`);
        expect(e).toBeInstanceOf(GpuTimeoutError);
        expect(e.name).toBe('GpuTimeoutError');
        expect(e).toBeInstanceOf(GpuDeviceError);
        expect(exitCodeOf(e)).toBe(EXIT.gpuFailure);
        expect(e.message).toMatch(/^reading back the outputs: the GPU did not finish within 300 ms .*--gpu-timeout/);
        expect(ms).toBeGreaterThanOrEqual(290);
        expect(ms).toBeLessThan(10_000);
        // On a software adapter the host thread's sleeping wait (src/gpu/wait.ts) ends with the bound too: nothing
        // keeps turning the event loop after the run failed.
        await new Promise((r) => setTimeout(r, 30));
        expect(pendingWaits()).toBe(0);
      } finally {
        cg.destroy();
      }
    } finally {
      undo();
    }
  }, 30_000); // a hang fails here, not after the suite's 120 s

  it('an upload buffer that never comes back, and error scopes that never pop: the same error; an engine passes its bound on', async () => {
    const { gpu, cache } = await testGpu();
    const { graph, inputs } = smallGraph();
    // The staging buffer's re-map after the first run never completes: the second run's wait for it is bounded.
    const undo = hangMaps(gpu.device, GPUBufferUsage.MAP_WRITE);
    let cg;
    try {
      cg = await compileGraph(gpu, graph, { cache, gpuTimeoutMs: 300 });
    } finally {
      undo();
    }
    try {
      await cg.run(inputs);
      await expect(cg.run(inputs)).rejects.toThrowError(/^waiting for the upload buffer of input 'x' .*: the GPU did not finish within 300 ms/);
    } finally {
      cg.destroy();
    }
    // popErrorScope never resolving (the forward pass's error check).
    const cg2 = await compileGraph(gpu, smallGraph().graph, { cache, gpuTimeoutMs: 300 });
    const pop = gpu.device.popErrorScope;
    gpu.device.popErrorScope = () => new Promise<GPUError | null>(() => {});
    try {
      await expect(cg2.run(inputs)).rejects.toThrowError(GpuTimeoutError);
      await new Promise((r) => setTimeout(r, 30));
      expect(pendingWaits()).toBe(0);
    } finally {
      gpu.device.popErrorScope = pop;
      cg2.destroy();
    }
    await expect(compileGraph(gpu, smallGraph().graph, { gpuTimeoutMs: 0 })).rejects.toThrowError(/gpuTimeoutMs must be a positive number/);
    // The engine's option reaches its graphs; the default is 10 minutes.
    const w = parseSafetensors(new Uint8Array(readFileSync(defaultWeights().path)), 'synthetic-small.safetensors');
    const engine = await TwoStageEngine.load(gpu, w, { batch: 1, height: 32, width: 32, cache, gpuTimeoutMs: 1234 });
    expect(engine.twoStage.gpuTimeoutMs).toBe(1234);
    engine.destroy();
    expect(DEFAULT_GPU_TIMEOUT_MS).toBe(600_000);
  }, 60_000);
});

describe("the JPEG 2000 codec's heap (docs/reliability.md, finding 5)", () => {
  it('a codec re-instantiated after a frame that grew its heap past the bound decodes the same pixels, every time', async () => {
    const frames = TARGETS.j2k!.seeds();
    const size = (f: (typeof frames)[number]) => ({ width: f.width!, height: f.height! });
    const want = await Promise.all(frames.map((f) => decodeJpeg2000(f.bytes, f.name, size(f))));
    const before = codecStats.instances.jpeg2000;
    // A bound of 1 byte: the codec is dropped after every frame, so each frame below runs on a fresh instance.
    for (let round = 0; round < 3; round++)
      for (const [i, f] of frames.entries()) {
        const got = await decodeJpeg2000(f.bytes, f.name, size(f), 1);
        expect(got.bytes, `${f.name}, round ${round}`).toEqual(want[i]!.bytes);
      }
    expect(codecStats.instances.jpeg2000 - before, 'instances made (the first frame runs on the instance already loaded)').toBe(3 * frames.length - 1);
    // And the default bound keeps one instance while the heap stays small.
    const n = codecStats.instances.jpeg2000;
    for (const f of frames) await decodeJpeg2000(f.bytes, f.name, size(f));
    expect(codecStats.instances.jpeg2000).toBe(n + 1);
    expect(codecStats.heap.jpeg2000).toBeLessThanOrEqual(MAX_CODEC_HEAP);
  });
});
