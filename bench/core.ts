/**
 * The bench's core: {@link runBench} compiles and times the engine's stage graphs (stage 1 GR-U-Net, stage 2
 * classifier), the whole two-stage pipeline and optionally bare torchvision EfficientNets, then runs the peers
 * (bench/peers.ts) and returns one machine-readable {@link BenchReport}. bench/bench.ts is the command line;
 * test/bench.test.ts calls this directly.
 *
 * What is measured, per (stage, size, batch):
 * - compile: graph build + weight binding + compileGraph (fusion, memory plan, weight upload, pipeline
 *   compilation through a fresh PipelineCache, bind groups), with the pipeline-compilation part separately;
 *   generating the random weights is bench overhead and reported apart (`weightsMs`).
 * - first run, then `warmup` untimed runs, then `repeats` timed runs; every run is a full `run()` (input upload,
 *   one submit, output readback), wall clock. Steady state = median and min / max / quartiles of those runs.
 * - dispatches per forward, GPU memory from the compiled graph's stats (arena + weights + inputs/outputs +
 *   uniform slots), FLOPs and minimum bytes per forward from the DispatchSpecs.
 * - with `profile`: one more run with timestamp queries (one pass per dispatch), grouped by op and by node,
 *   with achieved GFLOP/s and GB/s and the share of the roofline set by the ceilings (bench/roofline.ts).
 * Every result carries the adapter name; software adapters (lavapipe, SwiftShader) are marked: their times are CPU times.
 */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { createGpu, type GpuContext, type SoftwareDriver } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { UNIFORM_SLOT_BYTES } from '../src/gpu/uniforms.js';
import { capsFor, defaultTilePolicy, f16MatmulSupport, type GpuCaps, type TilePolicy } from '../src/ops/op.js';
import { compileGraph, type CompiledGraph, type KernelTiming, type RunResult } from '../src/graph/executor.js';
import type { ModelGraph } from '../src/models/builder.js';
import { defaultModelConfig, defaultPreprocessConfig, tinyModelConfig, type ModelConfig } from '../src/models/config.js';
import { EFFICIENTNET_VARIANTS, efficientnet, type EfficientNetVariant } from '../src/models/efficientnet.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { bindWeights } from '../src/models/load.js';
import { buildPatientHead, buildStage1, buildStage2, buildTwoStage } from '../src/models/pipeline.js';
import { normalise } from '../src/analysis/preprocess.js';
import { runPeers, type PeerName, type PeerResult, type TorchMode } from './peers.js';
import { H100_CEILINGS, measureCeilings, rooflineShare, type Ceilings } from './roofline.js';
import { syntheticWindowed } from './inputs.js';
import { randomWeightsFile } from '../src/models/random-weights.js';
import { graphWork, H100_CAPS, planWork, type GraphWork } from './work.js';
import { benchDriverMessages } from './driver.js';

export type StageName = 'stage1' | 'stage2' | 'pipeline';
export { syntheticWindowed };
export const STAGES: readonly StageName[] = ['stage1', 'stage2', 'pipeline'];
/** A stage of the two-stage model or a bare torchvision EfficientNet. */
export type BenchTarget = StageName | EfficientNetVariant;

/** Options of {@link runBench}. */
export interface BenchOptions {
  /** Slice sizes [H, W] (default [[512, 512]]). */
  sizes: Array<[number, number]>;
  /** Batch sizes (default 1, 4, 16). */
  batches: number[];
  /** Stages of the two-stage model (default all three). */
  stages: StageName[];
  /** Bare torchvision EfficientNets to bench as well. */
  models: EfficientNetVariant[];
  /** Model config: 'default' (B0 GR-U-Net + B7 classifier) or 'tiny' (weights/reference tiny_config). */
  config: 'default' | 'tiny';
  repeats: number;
  warmup: number;
  precision: 'f32' | 'f16';
  /** Activation storage (executor CompileOptions.storage; default: the precision). */
  storage?: 'f32' | 'f16';
  /** Tiles the conv2d and depthwise kernels may pick (the compile option CompileOptions.tiles; default: 'software' on a software adapter, else 'auto'). */
  tiles?: TilePolicy;
  /** Per-kernel table from timestamp queries. */
  profile: boolean;
  /** Peers to run: 'torch' (PyTorch CPU), 'torch-cuda' (PyTorch on CUDA, f32), 'ort' (ONNX Runtime Web, WebGPU provider, on dawn.node). */
  peers: PeerName[];
  /** Modes of the PyTorch peers (bench/peers.ts TORCH_MODES; default: torch-cuda f32, tf32-cl, fp16-cl; torch f32). */
  torchModes?: TorchMode[];
  /** Force a software driver: true lavapipe, else SwiftShader; or that driver by name. */
  software: boolean | SoftwareDriver;
  /** Roofline ceilings; default: GPU.md's H100 figures on an H100, measured with the engine's ops elsewhere. */
  peakGflops?: number;
  peakGbs?: number;
  /** Dawn toggles for createGpu (e.g. enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia). */
  dawnFlags?: string[];
  /** Rows of the by-node profile kept in the report (default 40; the text report prints fewer). */
  profileTop?: number;
  /** Per-peer time limit in seconds (default 1800). */
  peerTimeoutS?: number;
  /** Where exported ONNX files are cached (default node_modules/.cache/covidct-bench). */
  cacheDir?: string;
  /** Python with torch + torchvision for the torch peer and the ONNX export (default /usr/bin/python3). */
  python?: string;
  /**
   * CPU threads of both sides, so that they compare like with like: lavapipe's (LP_NUM_THREADS, set before the
   * adapter is requested unless already set; Mesa's default is one per core) and PyTorch CPU's
   * (torch.set_num_threads). Default 2 for PyTorch, Mesa's default for lavapipe.
   */
  threads?: number;
  /**
   * How the host thread waits for the adapter (src/gpu/wait.ts): 'sleep' between event-loop turns, or 'spin'
   * through dawn.node's polling as before 2026-12-07. Default: the engine's own choice (sleep on a software
   * adapter, spin on a GPU). For A/B runs.
   */
  hostWait?: 'sleep' | 'spin';
  /** An existing device (tests); otherwise one is created. */
  gpu?: GpuContext;
  /**
   * A pipeline cache to share (tests). By default every measurement gets a fresh one, so its compile time
   * includes compiling every pipeline it uses; with a shared cache only the pipelines not yet compiled count.
   */
  cache?: PipelineCache;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export const DEFAULT_OPTIONS: BenchOptions = {
  sizes: [[512, 512]],
  batches: [1, 4, 16],
  stages: [...STAGES],
  models: [],
  config: 'default',
  repeats: 5,
  warmup: 3,
  precision: 'f32',
  profile: false,
  peers: [],
  software: false,
};

/** Order statistics of the timed runs, in ms. */
export interface Spread {
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
  p25Ms: number;
  p75Ms: number;
  samplesMs: number[];
}

/** One row of a per-kernel table. */
export interface ProfileRow {
  key: string;
  /** Op of the row (by-node rows) or the op itself (by-op rows). */
  op: string;
  dispatches: number;
  gpuMs: number;
  share: number;
  flops: number;
  bytes: number;
  gflops: number;
  gbs: number;
  /** Achieved rate / attainable rate at this arithmetic intensity, under the report's ceilings. */
  roofline: number;
}

/** The per-kernel profile of one forward pass. */
export interface Profile {
  /** Sum of per-dispatch GPU times (each dispatch in its own pass). */
  gpuMs: number;
  /** Wall time of the profiled run (one pass per dispatch, timestamps on). */
  wallMs: number;
  dispatches: number;
  /** Time the whole forward would take at the ceilings (sum over dispatches of max(flops/peak, bytes/peak)). */
  rooflineMs: number;
  /** rooflineMs / gpuMs. */
  rooflineShare: number;
  byOp: ProfileRow[];
  byNode: ProfileRow[];
}

/** One engine measurement. */
export interface StageResult {
  target: BenchTarget;
  config: string;
  batch: number;
  height: number;
  width: number;
  precision: 'f32' | 'f16';
  /** Activation storage the graphs were compiled with. */
  storage: 'f32' | 'f16';
  adapter: string;
  software: boolean;
  /** Random-weight generation (bench overhead, not part of the engine's cost). */
  weightsMs: number;
  /** Graph build only (absent for the pipeline, whose loader builds and binds in one go). */
  buildMs?: number;
  /** Graph build + weight binding + compileGraph. */
  compileMs: number;
  /** Pipeline compilation inside compileMs (summed per pipeline, wall clock, concurrent ones overlap). */
  pipelineCompileMs: number;
  pipelinesCompiled: number;
  firstRunMs: number;
  steady: Spread;
  /**
   * CPU time of this process (user + system, every thread, ms) for the compile, the first run and the median
   * steady run. On a software adapter the driver's threads are in this process, so on a shared machine this is
   * what the work costs, where wall times also count the waiting for a core.
   */
  cpu?: { compileMs: number; firstRunMs: number; steadyMedianMs: number };
  slicesPerS: number;
  msPerSlice: number;
  dispatches: number;
  memory: { arenaBytes: number; weightBytes: number; ioBytes: number; uniformBytes: number; totalBytes: number };
  /** Per forward of the whole batch, from the DispatchSpecs. */
  flops: number;
  bytes: number;
  /** flops / median time. */
  achievedGflops: number;
  /**
   * Medians over the steady runs of where the wall time goes on the host, ms (executor RunResult.host):
   * input upload, encode + submit, readback (GPU work + copies + map); `otherMs` the rest of the run (for the
   * pipeline: the report's CPU work and the patient head).
   */
  split?: { uploadMs: number; submitMs: number; readbackMs: number; otherMs: number };
  /** The last timed run's outputs: all finite, and their largest magnitude (random weights: a sanity check). */
  outputs: { finite: boolean; maxAbs: number };
  profile?: Profile;
}

/** A measurement that was asked for but cannot be made here, and why. */
export interface NotMeasured {
  target: string;
  what: string;
  reason: string;
}

/** Engine / peer throughput for one measurement (ratio > 1: the engine is faster). */
export interface Comparison {
  target: string;
  batch: number;
  height: number;
  width: number;
  peer: string;
  /** The PyTorch peer's mode (bench/peers.ts TorchMode); absent for ort. */
  mode?: string;
  engineSlicesPerS: number;
  peerSlicesPerS: number;
  ratio: number;
  /**
   * Slices per CPU-second (the process's user + system time over the steady median run, every thread) of the engine
   * and of the peer, and their ratio: where both report CPU time (the engine on a software adapter, PyTorch on the CPU).
   */
  cpu?: { engineSlicesPerCpuS: number; peerSlicesPerCpuS: number; ratio: number };
}

/** The whole report (what --json writes). */
export interface BenchReport {
  tool: 'covidct bench';
  date: string;
  commit: string;
  node: string;
  adapter: { name: string; software: boolean; features: string[]; subgroupMinSize: number; subgroupMaxSize: number; /** How the host thread waited for the adapter (absent in reports before 2026-12-07: spin). */ hostWait?: 'sleep' | 'spin' };
  options: Omit<BenchOptions, 'gpu' | 'log' | 'cache'>;
  ceilings: Ceilings | null;
  results: StageResult[];
  notMeasured: NotMeasured[];
  peers: PeerResult[];
  comparisons: Comparison[];
  /** 1-minute load average when the bench started and ended (other work on the machine skews CPU timings). */
  loadAverage?: { start: number; end: number; cpus: number };
  /** lavapipe's settings as this process had them (LP_NATIVE_VECTOR_WIDTH, LP_NUM_THREADS; unset: Mesa's default). */
  lavapipeEnv?: Record<string, string>;
}

/** The model config by name. */
export function configByName(name: string): ModelConfig {
  if (name === 'default') return defaultModelConfig();
  if (name === 'tiny') return tinyModelConfig();
  throw new Error(`unknown --config '${name}' (default | tiny)`);
}

/** Order statistics of samples (ms). */
export function spread(samples: number[]): Spread {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => {
    if (!s.length) return NaN;
    const i = (s.length - 1) * p;
    const lo = Math.floor(i);
    const hi = Math.ceil(i);
    return s[lo]! + (s[hi]! - s[lo]!) * (i - lo);
  };
  return { runs: s.length, medianMs: q(0.5), minMs: s[0] ?? NaN, maxMs: s[s.length - 1] ?? NaN, p25Ms: q(0.25), p75Ms: q(0.75), samplesMs: samples };
}

declare const __COVIDCT_BUILD_COMMIT__: string | undefined;

/**
 * The commit of the code that runs: the one the bundle was built from (build.mjs), else the working tree's
 * (short hash, '+dirty' when the tree has changes), else 'unknown'.
 */
export function gitCommit(): string {
  if (typeof __COVIDCT_BUILD_COMMIT__ === 'string') return `${__COVIDCT_BUILD_COMMIT__} (bundle)`;
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

/** Groups kernel timings by a key, sorted by GPU time, with rates and roofline shares. */
export function groupTimings(timings: KernelTiming[], key: (t: KernelTiming) => string, ceilings: Ceilings | null): ProfileRow[] {
  const total = timings.reduce((s, t) => s + t.ns, 0);
  const rows = new Map<string, { op: string; dispatches: number; ns: number; flops: number; bytes: number; ideal: number }>();
  for (const t of timings) {
    const k = key(t);
    const r = rows.get(k) ?? { op: t.op, dispatches: 0, ns: 0, flops: 0, bytes: 0, ideal: 0 };
    r.dispatches++;
    r.ns += t.ns;
    r.flops += t.flops;
    r.bytes += t.bytes;
    if (ceilings) r.ideal += rooflineShare(t.flops, t.bytes, 1, ceilings).idealS;
    rows.set(k, r);
  }
  return [...rows.entries()]
    .map(([k, r]) => ({
      key: k,
      op: r.op,
      dispatches: r.dispatches,
      gpuMs: r.ns / 1e6,
      share: total > 0 ? r.ns / total : 0,
      flops: r.flops,
      bytes: r.bytes,
      gflops: r.ns > 0 ? r.flops / r.ns : 0,
      gbs: r.ns > 0 ? r.bytes / r.ns : 0,
      roofline: r.ns > 0 ? r.ideal / (r.ns / 1e9) : 0,
    }))
    .sort((a, b) => b.gpuMs - a.gpuMs);
}

function makeProfile(timings: KernelTiming[], wallMs: number, ceilings: Ceilings | null, top: number): Profile {
  const gpuNs = timings.reduce((s, t) => s + t.ns, 0);
  const rooflineS = ceilings ? timings.reduce((s, t) => s + rooflineShare(t.flops, t.bytes, 1, ceilings).idealS, 0) : 0;
  return {
    gpuMs: gpuNs / 1e6,
    wallMs,
    dispatches: timings.length,
    rooflineMs: rooflineS * 1e3,
    rooflineShare: gpuNs > 0 ? rooflineS / (gpuNs / 1e9) : 0,
    byOp: groupTimings(timings, (t) => t.op, ceilings),
    byNode: groupTimings(timings, (t) => t.node, ceilings).slice(0, top),
  };
}

/** Whether every value is finite, and the largest magnitude. */
function outputCheck(arrays: Iterable<Float32Array>): { finite: boolean; maxAbs: number } {
  let finite = true;
  let maxAbs = 0;
  for (const a of arrays)
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (!Number.isFinite(v)) finite = false;
      else if (Math.abs(v) > maxAbs) maxAbs = Math.abs(v);
    }
  return { finite, maxAbs };
}

type HostSplit = RunResult['host'];

/** CPU time used so far by this process, user + system over all its threads, ms. */
function cpuNowMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Runs `fn` once (first run), `warmup` more times untimed, then `repeats` timed times; fn returns the executor's
 * host split of the run (summed over its graph runs). Wall times, with the process's CPU time beside them.
 */
async function timeRuns(fn: () => Promise<HostSplit>, warmup: number, repeats: number): Promise<{ firstRunMs: number; steady: Spread; split: NonNullable<StageResult['split']>; cpuFirstRunMs: number; cpuSteadyMedianMs: number }> {
  let t0 = performance.now();
  let c0 = cpuNowMs();
  await fn();
  const firstRunMs = performance.now() - t0;
  const cpuFirstRunMs = cpuNowMs() - c0;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const cpuSamples: number[] = [];
  const parts: Array<HostSplit & { otherMs: number }> = [];
  for (let i = 0; i < repeats; i++) {
    t0 = performance.now();
    c0 = cpuNowMs();
    const h = await fn();
    const ms = performance.now() - t0;
    cpuSamples.push(cpuNowMs() - c0);
    samples.push(ms);
    parts.push({ ...h, otherMs: ms - h.uploadMs - h.submitMs - h.readbackMs });
  }
  const med = (k: keyof (typeof parts)[number]) => spread(parts.map((p) => p[k])).medianMs;
  return {
    firstRunMs,
    steady: spread(samples),
    split: { uploadMs: med('uploadMs'), submitMs: med('submitMs'), readbackMs: med('readbackMs'), otherMs: med('otherMs') },
    cpuFirstRunMs,
    cpuSteadyMedianMs: spread(cpuSamples).medianMs,
  };
}

function memoryOf(graphs: CompiledGraph[]): StageResult['memory'] {
  const m = { arenaBytes: 0, weightBytes: 0, ioBytes: 0, uniformBytes: 0, totalBytes: 0 };
  for (const g of graphs) {
    m.arenaBytes += g.stats.arenaBytes;
    m.weightBytes += g.stats.weightBytes;
    m.ioBytes += g.stats.ioBytes;
    m.uniformBytes += g.stats.dispatches * UNIFORM_SLOT_BYTES;
  }
  m.totalBytes = m.arenaBytes + m.weightBytes + m.ioBytes + m.uniformBytes;
  return m;
}

interface Ctx {
  gpu: GpuContext;
  opts: BenchOptions;
  /** The tile policy every compile of the run gets: opts.tiles, else the adapter's default. */
  tiles: TilePolicy;
  ceilings: Ceilings | null;
  log: (line: string) => void;
}

/** Benches one graph-level target (stage1, stage2 or a bare EfficientNet) at one size and batch. */
/** A StageResult from what a bench function measured (work, memory and rates from the compiled graph). */
function stageResult(
  c: Ctx,
  m: Pick<StageResult, 'target' | 'config' | 'batch' | 'height' | 'width' | 'weightsMs' | 'compileMs' | 'pipelineCompileMs' | 'pipelinesCompiled'> & {
    buildMs?: number;
    /** CPU time of the compile (this process), ms. */
    cpuCompileMs: number;
    timing: Awaited<ReturnType<typeof timeRuns>>;
    compiled: CompiledGraph;
    outputs: Float32Array[];
  },
): StageResult {
  const { timing, compiled, outputs, cpuCompileMs, ...rest } = m;
  const work = graphWork(compiled.graph, compiled.plan, capsFor(c.gpu, c.opts.precision, undefined, c.tiles));
  return {
    ...rest,
    precision: c.opts.precision,
    storage: c.opts.storage ?? c.opts.precision,
    adapter: c.gpu.adapterName,
    software: c.gpu.isSoftware,
    firstRunMs: timing.firstRunMs,
    steady: timing.steady,
    cpu: { compileMs: cpuCompileMs, firstRunMs: timing.cpuFirstRunMs, steadyMedianMs: timing.cpuSteadyMedianMs },
    slicesPerS: (m.batch * 1000) / timing.steady.medianMs,
    msPerSlice: timing.steady.medianMs / m.batch,
    dispatches: compiled.stats.dispatches,
    memory: memoryOf([compiled]),
    flops: work.flops,
    bytes: work.bytes,
    achievedGflops: work.flops / (timing.steady.medianMs * 1e6),
    split: timing.split,
    outputs: outputCheck(outputs),
  };
}

/** With --profile: one more run with a timestamp per dispatch (each in its own pass), into r.profile. */
async function addProfile(c: Ctx, r: StageResult, run: () => Promise<RunResult>): Promise<void> {
  if (!c.opts.profile) return;
  if (!c.gpu.features.has('timestamp-query')) {
    c.log(`  profile: skipped, ${c.gpu.adapterName} has no timestamp-query`);
    return;
  }
  const t0 = performance.now();
  const p = await run();
  r.profile = makeProfile(p.timings ?? [], performance.now() - t0, c.ceilings, c.opts.profileTop ?? 40);
}

async function benchGraph(c: Ctx, target: Exclude<BenchTarget, 'pipeline'>, h: number, w: number, batch: number): Promise<StageResult> {
  const { gpu, opts } = c;
  const cfg = configByName(opts.config);
  const pre = defaultPreprocessConfig();
  let t0 = performance.now();
  let c0 = cpuNowMs();
  let model: ModelGraph;
  let inputName: string;
  let input: Float32Array;
  const windowed = syntheticWindowed(batch, h, w);
  if (target === 'stage1') {
    model = buildStage1(cfg, { batch, height: h, width: w });
    inputName = 'seg.input';
    input = normalise(windowed, batch, pre);
  } else if (target === 'stage2') {
    model = buildStage2(cfg, { batch, height: h, width: w });
    inputName = 'cls.input';
    input = normalise(windowed, batch, pre); // the stage-2 input of an all-lung mask; values do not change the work
  } else {
    model = efficientnet(target, { batch, height: h, width: w, intermediates: false });
    inputName = 'input';
    input = normalise(windowed, batch, pre);
  }
  const buildMs = performance.now() - t0;
  const cpuBuildMs = cpuNowMs() - c0;
  t0 = performance.now();
  const file = randomWeightsFile([model]);
  const weightsMs = performance.now() - t0;
  t0 = performance.now();
  c0 = cpuNowMs();
  bindWeights(file, model, { allowUnexpected: true });
  const cache = opts.cache ?? new PipelineCache(gpu.device);
  const [ms0, n0] = [cache.compileMs, cache.compiled];
  const compiled = await compileGraph(gpu, model.graph, { cache, precision: opts.precision, storage: opts.storage ?? opts.precision, tiles: c.tiles });
  const compileMs = buildMs + performance.now() - t0;
  const cpuCompileMs = cpuBuildMs + cpuNowMs() - c0;
  try {
    let last: Record<string, Float32Array> = {};
    const run = async () => {
      const r = await compiled.run({ [inputName]: input });
      last = r.outputs;
      return r.host;
    };
    const timing = await timeRuns(run, opts.warmup, opts.repeats);
    const r = stageResult(c, {
      target,
      config: target.startsWith('efficientnet_') ? 'torchvision' : opts.config,
      batch,
      height: h,
      width: w,
      weightsMs,
      buildMs,
      compileMs,
      cpuCompileMs,
      pipelineCompileMs: cache.compileMs - ms0,
      pipelinesCompiled: cache.compiled - n0,
      timing,
      compiled,
      outputs: Object.values(last),
    });
    await addProfile(c, r, () => compiled.run({ [inputName]: input }, { profile: true }));
    return r;
  } finally {
    compiled.destroy();
  }
}

/** Benches the whole two-stage pipeline (TwoStageEngine: both stages as one graph, then the report's CPU work and the patient head). */
async function benchPipeline(c: Ctx, h: number, w: number, batch: number): Promise<StageResult> {
  const { gpu, opts } = c;
  const cfg = configByName(opts.config);
  const pre = defaultPreprocessConfig();
  let t0 = performance.now();
  // The tensors of all three graphs (a covidct file must hold exactly those); graph shapes do not matter here.
  const small = { batch: 1, height: 32, width: 32 };
  const file = randomWeightsFile([buildStage1(cfg, small), buildStage2(cfg, small), buildPatientHead(cfg)], 0, { model: cfg, preprocess: pre });
  const weightsMs = performance.now() - t0;
  t0 = performance.now();
  const c0 = cpuNowMs();
  const cache = opts.cache ?? new PipelineCache(gpu.device);
  const [ms0, n0] = [cache.compileMs, cache.compiled];
  const engine = await TwoStageEngine.load(gpu, file, { batch, height: h, width: w, cache, precision: opts.precision, storage: opts.storage ?? opts.precision, tiles: c.tiles });
  const compileMs = performance.now() - t0;
  const cpuCompileMs = cpuNowMs() - c0;
  try {
    const windowed = syntheticWindowed(batch, h, w);
    let last: Awaited<ReturnType<TwoStageEngine['runWindowed']>> | null = null;
    const run = async () => {
      last = await engine.runWindowed(windowed);
      return last.host;
    };
    const timing = await timeRuns(run, opts.warmup, opts.repeats);
    const res = last!;
    const r = stageResult(c, {
      target: 'pipeline',
      config: opts.config,
      batch,
      height: h,
      width: w,
      weightsMs,
      compileMs,
      cpuCompileMs,
      pipelineCompileMs: cache.compileMs - ms0,
      pipelinesCompiled: cache.compiled - n0,
      timing,
      compiled: engine.twoStage,
      outputs: [res.lung_prob, res.infection_prob, res.slice_logits, res.slice_embedding],
    });
    // The GPU part of a pipeline run: the two-stage graph.
    await addProfile(c, r, () => engine.twoStage.run({ windowed }, { profile: true }));
    return r;
  } finally {
    engine.destroy();
  }
}

/** Runs the bench; see the module comment. */
export async function runBench(options: Partial<BenchOptions> = {}): Promise<BenchReport> {
  const opts: BenchOptions = { ...DEFAULT_OPTIONS, ...options };
  const log = opts.log ?? (() => {});
  for (const m of opts.models) if (!(EFFICIENTNET_VARIANTS as readonly string[]).includes(m)) throw new Error(`unknown model '${m}' (${EFFICIENTNET_VARIANTS.join(', ')})`);
  if (!(opts.repeats >= 1) || !(opts.warmup >= 0)) throw new Error('repeats must be >= 1 and warmup >= 0');
  if (opts.threads !== undefined && process.env.LP_NUM_THREADS === undefined) process.env.LP_NUM_THREADS = String(opts.threads);
  const gpu = opts.gpu ?? (await createGpu({ forceSoftware: opts.software, ...(opts.dawnFlags ? { dawnFlags: opts.dawnFlags } : {}), ...(opts.hostWait ? { sleepWhileWaiting: opts.hostWait === 'sleep' } : {}), driverMessages: benchDriverMessages }));
  log(`adapter: ${gpu.adapterName}${gpu.isSoftware ? ' [software: it runs on the CPU, these are CPU timings]' : ''}`);
  // The policy the compiles get when none was asked for ('software' on a software adapter), so the report names it.
  const tiles = (opts.tiles ??= defaultTilePolicy(gpu));
  const report: BenchReport = {
    tool: 'covidct bench',
    date: new Date().toISOString(),
    commit: gitCommit(),
    node: process.version,
    adapter: { name: gpu.adapterName, software: gpu.isSoftware, features: [...gpu.features].sort(), subgroupMinSize: gpu.subgroupMinSize, subgroupMaxSize: gpu.subgroupMaxSize, hostWait: gpu.sleepWhileWaiting ? 'sleep' : 'spin' },
    options: Object.fromEntries(Object.entries(opts).filter(([k]) => k !== 'gpu' && k !== 'log' && k !== 'cache')) as BenchReport['options'],
    ceilings: null,
    results: [],
    notMeasured: [],
    peers: [],
    comparisons: [],
    loadAverage: { start: loadavg()[0]!, end: NaN, cpus: cpus().length },
    lavapipeEnv: Object.fromEntries(['LP_NATIVE_VECTOR_WIDTH', 'LP_NUM_THREADS'].flatMap((k) => (process.env[k] !== undefined ? [[k, process.env[k]!]] : []))),
  };
  const targets: BenchTarget[] = [...opts.stages, ...opts.models];
  const f16Missing = opts.precision === 'f16' ? f16MatmulSupport(gpu) : null;
  if (f16Missing) {
    const reason = `f16: not available on ${gpu.adapterName}: ${f16Missing}`;
    for (const t of targets) report.notMeasured.push({ target: t, what: 'precision', reason });
    log(reason);
    report.loadAverage!.end = loadavg()[0]!;
    return report;
  }
  if (opts.profile) {
    report.ceilings = await measureCeilings(gpu, { ...(opts.peakGflops !== undefined ? { gflops: opts.peakGflops } : {}), ...(opts.peakGbs !== undefined ? { gbs: opts.peakGbs } : {}) }, opts.precision);
    log(`roofline ceilings: ${report.ceilings.gflops.toFixed(2)} GFLOP/s (${report.ceilings.gflopsSource}), ${report.ceilings.gbs.toFixed(2)} GB/s (${report.ceilings.gbsSource})`);
  }
  const c: Ctx = { gpu, opts, tiles, ceilings: report.ceilings, log };
  if (gpu.isSoftware && opts.sizes.some(([h, w]) => h * w > 128 * 128))
    log(`warning: ${gpu.adapterName} is a software adapter; its times are CPU times (the default config at 256 x 256: seconds per slice; try --config tiny or --size 64 for quick runs)`);
  for (const [h, w] of opts.sizes)
    for (const target of targets)
      for (const batch of opts.batches) {
        log(`engine ${target} ${h}x${w} batch ${batch} ...`);
        try {
          const r = target === 'pipeline' ? await benchPipeline(c, h, w, batch) : await benchGraph(c, target, h, w, batch);
          report.results.push(r);
          log(`  compile ${fmtMs(r.compileMs)} (pipelines ${fmtMs(r.pipelineCompileMs)}), first run ${fmtMs(r.firstRunMs)}, steady median ${fmtMs(r.steady.medianMs)} = ${r.slicesPerS.toFixed(3)} slices/s`);
        } catch (e) {
          report.notMeasured.push({ target, what: `${h}x${w} batch ${batch}`, reason: `engine failed: ${(e as Error).message}` });
          log(`  FAILED: ${(e as Error).message}`);
        }
      }
  if (opts.peers.length) {
    report.peers = await runPeers(opts.peers, {
      config: opts.config,
      sizes: opts.sizes,
      batches: opts.batches,
      targets,
      repeats: opts.repeats,
      warmup: opts.warmup,
      software: gpu.isSoftware,
      dawnFlags: opts.dawnFlags ?? [],
      timeoutS: opts.peerTimeoutS ?? 1800,
      ...(opts.cacheDir ? { cacheDir: opts.cacheDir } : {}),
      ...(opts.python ? { python: opts.python } : {}),
      ...(opts.torchModes ? { torchModes: opts.torchModes } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      log,
    });
    for (const p of report.peers) {
      if (p.status !== 'ok' || !p.steady) continue;
      const e = report.results.find((r) => r.target === p.target && r.batch === p.batch && r.height === p.height && r.width === p.width);
      if (!e) continue;
      const peerSps = (p.batch * 1000) / p.steady.medianMs;
      const cpu =
        e.cpu && p.cpuSteadyMedianMs
          ? { engineSlicesPerCpuS: (p.batch * 1000) / e.cpu.steadyMedianMs, peerSlicesPerCpuS: (p.batch * 1000) / p.cpuSteadyMedianMs, ratio: p.cpuSteadyMedianMs / e.cpu.steadyMedianMs }
          : undefined;
      report.comparisons.push({ target: p.target, batch: p.batch, height: p.height, width: p.width, peer: p.peer, ...(p.mode ? { mode: p.mode } : {}), engineSlicesPerS: e.slicesPerS, peerSlicesPerS: peerSps, ratio: e.slicesPerS / peerSps, ...(cpu ? { cpu } : {}) });
    }
  }
  report.loadAverage!.end = loadavg()[0]!;
  return report;
}

/** Milliseconds for humans. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
}

/** The work of one target, planned without a device (`--plan`). */
export interface PlanRow {
  target: BenchTarget;
  config: string;
  batch: number;
  height: number;
  width: number;
  dispatches: number;
  flops: number;
  bytes: number;
  arenaBytes: number;
  weightBytes: number;
  /** Least time per forward under the ceilings (per-dispatch roofline sum), seconds. */
  rooflineS: number;
  ceilings: { gflops: number; gbs: number; source: string };
  /** Precision and activation storage planned. */
  precision: 'f32' | 'f16';
  storage: 'f32' | 'f16';
  byOp: GraphWork['byOp'];
  byModule: GraphWork['byModule'];
}

/**
 * Plans every target as compileGraph would (fusion with the weights bound, memory plan, DispatchSpecs for
 * H100-like limits) and sums FLOPs, minimum bytes and the roofline time; no device is needed.
 */
export function planBench(options: Partial<BenchOptions> = {}): PlanRow[] {
  const opts: BenchOptions = { ...DEFAULT_OPTIONS, ...options };
  // precision f16 is planned for an H100 through Dawn with its f16 toggles (subgroup matrices, subgroup size 32)
  const base: GpuCaps = { ...H100_CAPS, tiles: opts.tiles ?? 'auto' };
  const caps: GpuCaps = opts.precision === 'f16' ? { ...base, features: new Set([...base.features, 'chromium-experimental-subgroup-matrix']), subgroupMaxSize: 32, precision: 'f16' } : base;
  const storage = opts.storage ?? opts.precision;
  const ceilings = { gflops: opts.peakGflops ?? H100_CEILINGS.gflops, gbs: opts.peakGbs ?? H100_CEILINGS.gbs };
  const source = opts.peakGflops !== undefined || opts.peakGbs !== undefined ? 'flags' : 'H100 through dawn.node (GPU.md)';
  const cfg = configByName(opts.config);
  const rows: PlanRow[] = [];
  for (const [h, w] of opts.sizes)
    for (const target of [...opts.stages, ...opts.models])
      for (const batch of opts.batches) {
        const s = { batch, height: h, width: w };
        const models: ModelGraph[] =
          target === 'stage1' ? [buildStage1(cfg, s)] : target === 'stage2' ? [buildStage2(cfg, s)] : target === 'pipeline' ? [buildTwoStage(cfg, defaultPreprocessConfig(), s)] : [efficientnet(target, { ...s, intermediates: false })];
        const row: PlanRow = { target, config: target.startsWith('efficientnet_') ? 'torchvision' : opts.config, batch, height: h, width: w, dispatches: 0, flops: 0, bytes: 0, arenaBytes: 0, weightBytes: 0, rooflineS: 0, ceilings: { ...ceilings, source }, precision: opts.precision, storage, byOp: {}, byModule: {} };
        for (const m of models) {
          bindWeights(randomWeightsFile([m]), m, { allowUnexpected: true });
          const wk = planWork(m.graph, caps, true, ceilings, storage);
          row.dispatches += wk.dispatches;
          row.flops += wk.flops;
          row.bytes += wk.bytes;
          row.arenaBytes += wk.arenaBytes;
          row.weightBytes += wk.weightBytes;
          row.rooflineS += wk.rooflineS ?? 0;
          for (const [table, src] of [[row.byOp, wk.byOp], [row.byModule, wk.byModule]] as const)
            for (const [k, e] of Object.entries(src)) {
              const r = (table[k] ??= { dispatches: 0, flops: 0, bytes: 0 });
              r.dispatches += e.dispatches;
              r.flops += e.flops;
              r.bytes += e.bytes;
            }
        }
        rows.push(row);
      }
  return rows;
}
