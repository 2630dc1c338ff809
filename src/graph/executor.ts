/**
 * The executor: a compiled graph holds its weights on the device, an activation arena laid out by the memory
 * plan, one uniform slot and one bind group per dispatch, all made once from the {@link GraphProgram} the
 * compile step (src/graph/compile.ts) decides on the CPU. A forward pass writes the inputs into mapped staging
 * buffers,
 * encodes every dispatch of the batch into one command encoder (one compute pass, or one pass per dispatch
 * when profiling with timestamp queries), copies the outputs to staging buffers in the same encoder, submits
 * once, and maps. A failed map or a lost device raises a GpuDeviceError: results are never made up. Buffers over
 * the device's limits are refused by the compile step, and out of memory at creation, with a GpuLimitError.
 */
import { uploadConstants } from '../gpu/constants.js';
import { GpuDeviceError, type GpuContext } from '../gpu/device.js';
import { outOfMemoryError } from '../gpu/limits.js';
import { checkTimeout, DEFAULT_GPU_TIMEOUT_MS, withTimeout } from '../gpu/watchdog.js';
import { encodeDispatches, prepareDispatch, type BufferRange, type PreparedDispatch } from '../gpu/dispatch.js';
import { PipelineCache } from '../gpu/pipelines.js';
import { encodeTimed, readTimestamps, type TimestampQueries } from '../gpu/profile.js';
import { mapStaging, withErrorScopesDeferred } from '../gpu/readback.js';
import { UniformArena } from '../gpu/uniforms.js';
import { settle } from '../gpu/wait.js';
import { StagedInput } from '../gpu/upload.js';
import { compileProgram, type GraphProgram, type ProgramOptions } from './compile.js';
import type { FusionReport } from './fuse.js';
import { GraphError, type Graph } from './ir.js';
import { resolveView, type MemoryPlan } from './plan.js';
import type { Storage } from './storage.js';
import type { TilePolicy } from '../gpu/caps.js';

/** Options for {@link compileGraph}. */
export interface CompileOptions extends ProgramOptions {
  /** Run the fusion passes (default true). */
  fuse?: boolean;
  /** Share pipelines with other graphs on the same device. */
  cache?: PipelineCache;
  /**
   * 'f16': pointwise convolutions (those conv2d's `takesMmaPath` picks) round their GEMM operands to f16 and run
   * on the matrix units (f32 accumulation); everything else computes in f32; activations default to half storage
   * (`storage` below). Needs what
   * `f16MatmulSupport` (src/ops/op.ts) checks; refused with a GraphError naming what is missing otherwise.
   * Default 'f32'. Tolerances: docs/model.md.
   */
  precision?: 'f32' | 'f16';
  /**
   * Activation storage (src/graph/storage.ts): 'f16' keeps the activations between layers as packed f16 where
   * the ops producing and consuming them can (depthwise, conv2d, global_pool so far), computing in f32; half
   * the memory and bytes moved. Works on every adapter (no shader-f16 needed). Graph inputs, outputs and weights
   * stay f32. Default: the precision ('f16' with precision 'f16', else 'f32').
   */
  storage?: Storage;
  /**
   * Which tile shapes the conv2d and depthwise kernels may pick: 'auto' (all GPU tiles; the default on a GPU),
   * 'legacy' (not conv2d's `mid` tile or K split, not depthwise's 32 x 32 tile) or 'software' (conv2d's and
   * depthwise's kernels without workgroup memory; the default on SwiftShader and lavapipe); a tuning switch for the bench (`--tiles`). Per compile:
   * graphs compiled with different policies in one process each keep theirs. To emulate such a graph on the CPU,
   * pass the same policy to runGraphOnCpu.
   */
  tiles?: TilePolicy;
  /**
   * The bound on each wait of a run for the GPU (the input staging buffers, the error scopes, the output map,
   * the timestamps), ms; past it the run fails with a GpuTimeoutError (a GpuDeviceError). Default
   * DEFAULT_GPU_TIMEOUT_MS (10 minutes); Infinity: no bound.
   */
  gpuTimeoutMs?: number;
}

/** One dispatch's GPU time from timestamp queries. */
export interface KernelTiming {
  node: string;
  op: string;
  label: string;
  ns: number;
  flops: number;
  bytes: number;
}

/** What a forward pass returns. */
export interface RunResult {
  outputs: Record<string, Float32Array>;
  /** The adapter that computed them. */
  adapter: string;
  /** Per-dispatch GPU times, when profiling was asked for and the adapter has timestamp-query. */
  timings?: KernelTiming[];
  /**
   * Wall-clock split of the run on the host, ms: `uploadMs` writing the inputs (into mapped staging buffers), `submitMs`
   * encoding and submitting the pass, `readbackMs` from then until the outputs are copied out (the GPU finishing
   * its work, the copies to mappable buffers, the map, the error-scope checks, which overlap the map).
   */
  host: { uploadMs: number; submitMs: number; readbackMs: number };
}

/** Size and work figures of a compiled graph. */
export interface GraphStats {
  nodes: number;
  dispatches: number;
  arenaBytes: number;
  unpackedBytes: number;
  weightBytes: number;
  ioBytes: number;
  pipelines: number;
  flops: number;
  fusion: FusionReport | null;
  /** Activation tensors stored as packed f16 (storage 'f16'), of `values` activation tensors in all. */
  halfTensors: { half: number; values: number };
}

interface PreparedNode {
  name: string;
  op: string;
  dispatches: PreparedDispatch[];
}

/** Storage usage of every graph buffer (read lazily: dawn.node installs GPUBufferUsage when a device is made). */
const storageUsage = () => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** A graph compiled for one device and one set of input shapes. */
export class CompiledGraph {
  private destroyed = false;
  /** Mappable readback buffers per output, reused across runs (a run takes one, returns it unmapped). */
  private readonly readPool = new Map<string, GPUBuffer[]>();
  private submitLock: Promise<void> = Promise.resolve();

  /** Waits for the runs before this one to finish their upload and submission; returns the release. */
  private async lockSubmit(): Promise<() => void> {
    const prev = this.submitLock;
    let release!: () => void;
    this.submitLock = new Promise((r) => (release = r));
    await prev;
    return release;
  }
  private constructor(
    readonly gpu: GpuContext,
    readonly graph: Graph,
    readonly plan: MemoryPlan,
    private readonly buffers: GPUBuffer[],
    private readonly inputBuffers: Map<string, StagedInput>,
    private readonly outputBuffers: Map<string, { buffer: GPUBuffer; elements: number }>,
    private readonly nodes: PreparedNode[],
    private readonly uniforms: UniformArena,
    readonly stats: GraphStats,
    /** The bound on each wait of a run for the GPU (CompileOptions.gpuTimeoutMs). */
    readonly gpuTimeoutMs: number = DEFAULT_GPU_TIMEOUT_MS,
  ) {}

  /** Compiles a graph: the compile step (fusion, memory plan, dispatch specs), then buffers, pipelines, bind groups. */
  static async create(gpu: GpuContext, graph: Graph, opts: CompileOptions = {}): Promise<CompiledGraph> {
    const { device } = gpu;
    const timeout = checkTimeout(opts.gpuTimeoutMs ?? DEFAULT_GPU_TIMEOUT_MS);
    const program = compileProgram(gpu, graph, opts);
    const cache = opts.cache ?? new PipelineCache(device);
    const buffers: GPUBuffer[] = [];
    // Out of memory while the buffers are made: a GpuLimitError (what to change), everything made so far freed.
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let compiled: CompiledGraph | null = null;
    let failure: unknown = null;
    try {
      compiled = await CompiledGraph.build(gpu, program, cache, buffers, timeout);
    } catch (e) {
      failure = e;
    }
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    if (!failure && oom && !validation) failure = outOfMemoryError("creating the graph's buffers", buffers.reduce((s, b) => s + b.size, 0), gpu.adapterName, oom.message, opts.limitHint);
    else if (!failure && (validation || oom)) failure = new GpuDeviceError(`compiling the graph failed: ${(validation ?? oom)!.message}`);
    if (failure) {
      if (compiled) compiled.destroy();
      else for (const b of buffers) b.destroy();
      throw failure;
    }
    return compiled!;
  }

  /** The GPU half of compiling: buffers for the plan, the constants uploaded, one bind group per dispatch. */
  private static async build(gpu: GpuContext, program: GraphProgram, cache: PipelineCache, buffers: GPUBuffer[], timeout: number): Promise<CompiledGraph> {
    const { device } = gpu;
    const { graph, plan } = program;
    const make = (bytes: number, label: string, usage = storageUsage(), mappedAtCreation = false) => {
      const b = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage, label, mappedAtCreation });
      buffers.push(b);
      return b;
    };
    const arena = make(Math.max(plan.arenaBytes, 16), 'arena');
    const ranges = new Map<number, BufferRange>();
    const inputBuffers = new Map<string, StagedInput>();
    for (const { name, tensor, shape, elements } of program.inputs) {
      const buffer = make(elements * 4, `input ${name}`);
      const staging = make(elements * 4, `upload ${name}`, GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, true);
      inputBuffers.set(name, new StagedInput(buffer, staging, elements, shape));
      ranges.set(tensor, { buffer, offset: 0, size: elements * 4 });
    }
    const outputBuffers = new Map<string, { buffer: GPUBuffer; elements: number }>();
    for (const { name, tensor, elements } of program.outputs) {
      let range = ranges.get(tensor);
      if (!range) {
        range = { buffer: make(elements * 4, `output ${name}`), offset: 0, size: elements * 4 };
        ranges.set(tensor, range);
      }
      outputBuffers.set(name, { buffer: range.buffer, elements });
    }
    for (const [id, p] of plan.placements) if (p.where === 'arena') ranges.set(id, { buffer: arena, offset: p.offset, size: p.bytes });

    const constants = uploadConstants(device, gpu.limits.maxBufferSize, program.constants.map((c) => c.data), make);
    const preparedRanges = new Map<string, BufferRange>();
    program.constants.forEach((c, i) => ('tensor' in c ? ranges.set(c.tensor, constants.ranges[i]!) : preparedRanges.set(`${c.node}:${c.prepared}`, constants.ranges[i]!)));

    const uniforms = new UniformArena(device, Math.max(1, program.nodes.reduce((s, x) => s + x.specs.length, 0)), 'graph uniforms');
    const prepared: PreparedNode[] = [];
    for (const { node: n, specs } of program.nodes) {
      const scratch = plan.scratch.get(n.id) ?? [];
      const resolve = (b: (typeof specs)[number]['bindings'][number]): BufferRange => {
        if ('scratch' in b) {
          const s = scratch[b.scratch];
          if (!s) throw new GraphError(`node '${n.name}': scratch ${b.scratch} was not planned`);
          return { buffer: arena, offset: s.offset, size: s.bytes };
        }
        if ('prepared' in b) {
          const r = preparedRanges.get(`${n.id}:${b.prepared}`);
          if (!r) throw new GraphError(`node '${n.name}': prepared operand ${b.prepared} was not made`);
          return r;
        }
        const t = 'input' in b ? n.inputs[b.input]! : n.outputs[b.output]!;
        const r = ranges.get(resolveView(plan, graph, t).base);
        if (!r) throw new GraphError(`node '${n.name}': tensor '${graph.tensors[t]!.name}' has no buffer`);
        return r;
      };
      const dispatches = await Promise.all(specs.map((spec, i) => prepareDispatch(device, cache, uniforms, spec, resolve, `${n.name}#${i}`)));
      prepared.push({ name: n.name, op: n.op, dispatches });
    }
    uniforms.upload();
    const stats: GraphStats = {
      nodes: program.nodes.length,
      dispatches: prepared.reduce((s, p) => s + p.dispatches.length, 0),
      arenaBytes: plan.arenaBytes,
      unpackedBytes: plan.unpackedBytes,
      weightBytes: constants.bytes,
      // Inputs (twice: the staging buffers), outputs, and one readback buffer per output.
      ioBytes: [...inputBuffers.values()].reduce((s, b) => s + b.elements * 8, 0) + [...outputBuffers.values()].reduce((s, b) => s + b.elements * 8, 0),
      pipelines: cache.size,
      flops: program.flops,
      fusion: program.fusion,
      halfTensors: { half: plan.half.size, values: graph.tensors.filter((t) => t.kind === 'value' && t.producer >= 0).length },
    };
    return new CompiledGraph(gpu, graph, plan, buffers, inputBuffers, outputBuffers, prepared, uniforms, stats, timeout);
  }

  /** Input names and shapes. */
  inputs(): Array<{ name: string; shape: readonly number[] }> {
    return [...this.inputBuffers.entries()].map(([name, b]) => ({ name, shape: b.shape }));
  }

  /**
   * Runs one forward pass. Inputs are dense NCHW Float32Arrays by input name.
   * @param opts.profile time every dispatch with timestamp queries (needs the timestamp-query feature).
   * @param opts.outputs the outputs to read back (default all).
   */
  async run(inputs: Record<string, Float32Array>, opts: { profile?: boolean; outputs?: string[] } = {}): Promise<RunResult> {
    if (this.destroyed) throw new GraphError('this compiled graph was destroyed');
    const { gpu } = this;
    const { device } = gpu;
    if (gpu.lostReason) throw new GpuDeviceError(`cannot run: ${gpu.lostReason}`);
    const t0 = performance.now();
    for (const name of Object.keys(inputs)) if (!this.inputBuffers.has(name)) throw new GraphError(`unknown input '${name}'; the graph takes ${[...this.inputBuffers.keys()].join(', ')}`);
    for (const [name, b] of this.inputBuffers) {
      const data = inputs[name];
      if (!data) throw new GraphError(`missing input '${name}'`);
      if (data.length !== b.elements) throw new GraphError(`input '${name}' has ${data.length} values; shape [${b.shape.join(', ')}] needs ${b.elements}`);
    }
    const wanted = opts.outputs ?? [...this.outputBuffers.keys()];
    for (const name of wanted) if (!this.outputBuffers.has(name)) throw new GraphError(`unknown output '${name}'`);
    const profile = !!opts.profile;
    if (profile && !gpu.features.has('timestamp-query')) throw new GraphError(`profiling needs timestamp-query, which ${gpu.adapterName} does not offer`);
    const all = this.nodes.flatMap((n) => n.dispatches.map((d) => ({ node: n, d })));
    // Uploads, encoding and submission run one graph run at a time (the staging buffers are shared).
    const unlock = await this.lockSubmit();
    const copies: Array<{ input: StagedInput; bytes: number }> = [];
    let t1 = t0;
    let submitted: { result: GPUBuffer[]; checked: Promise<void> };
    let query: TimestampQueries | null = null;
    try {
      for (const [name, b] of this.inputBuffers) {
        const data = inputs[name]!;
        // The staging buffer is mapped again after each run's copy: wait for that.
        await withTimeout(settle(gpu, b.mapped(name, () => gpu.lostReason), this.gpuTimeoutMs), this.gpuTimeoutMs, `waiting for the upload buffer of input '${name}' (the previous run's copy)`);
        if (this.destroyed) throw new GraphError('this compiled graph was destroyed');
        b.write(data);
        copies.push({ input: b, bytes: data.byteLength });
      }
      t1 = performance.now();
      submitted = withErrorScopesDeferred(device, 'encoding the forward pass', () => {
        const enc = device.createCommandEncoder({ label: 'forward' });
        for (const c of copies) c.input.encodeCopy(enc, c.bytes);
        if (!profile) {
          const pass = enc.beginComputePass({ label: 'forward' });
          for (const n of this.nodes) encodeDispatches(pass, n.dispatches);
          pass.end();
        } else query = encodeTimed(device, enc, all.map((x) => x.d));
        const st = wanted.map((name) => {
          const b = this.outputBuffers.get(name)!;
          const size = Math.max(4, b.elements * 4);
          const buf = this.readPool.get(name)?.pop() ?? device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: `readback ${name}` });
          enc.copyBufferToBuffer(b.buffer, 0, buf, 0, size);
          return buf;
        });
        device.queue.submit([enc.finish()]);
        return st;
      });
    } finally {
      // Re-map the upload staging buffers for the next run (it waits for them), whatever happened here.
      for (const c of copies) c.input.remap();
      unlock();
    }
    const { result: staging, checked } = submitted;
    const t2 = performance.now();
    // Map while the error scopes are checked; a scope error wins over whatever the map returns.
    const mapping = mapStaging(gpu, staging, (bufs) =>
      bufs.forEach((b, i) => {
        if (this.destroyed) b.destroy();
        else {
          const pool = this.readPool.get(wanted[i]!) ?? [];
          pool.push(b);
          this.readPool.set(wanted[i]!, pool);
        }
      }),
      this.gpuTimeoutMs,
    );
    mapping.catch(() => {});
    // Bounded waits: a submission that never completes fails the run instead of hanging it (src/gpu/watchdog.ts);
    // the readback buffers are destroyed then, which ends their pending map.
    const giveUp = () => staging.forEach((b) => b.destroy());
    await withTimeout(settle(gpu, checked, this.gpuTimeoutMs), this.gpuTimeoutMs, 'checking the forward pass for GPU errors', giveUp);
    const read = await withTimeout(mapping, this.gpuTimeoutMs, 'reading back the outputs', giveUp);
    const outputs: Record<string, Float32Array> = {};
    wanted.forEach((name, i) => (outputs[name] = read[i]!.subarray(0, this.outputBuffers.get(name)!.elements)));
    const result: RunResult = { outputs, adapter: gpu.adapterName, host: { uploadMs: t1 - t0, submitMs: t2 - t1, readbackMs: performance.now() - t2 } };
    if (query) {
      const ns = await withTimeout(readTimestamps(gpu, query, this.gpuTimeoutMs), this.gpuTimeoutMs, 'reading the timestamps');
      result.timings = all.map(({ node, d }, i) => ({ node: node.name, op: node.op, label: d.label, ns: ns[i]!, flops: d.flops, bytes: d.bytes }));
    }
    return result;
  }

  /** Frees every buffer of this graph (pipelines stay in the cache). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of this.buffers) b.destroy();
    for (const pool of this.readPool.values()) for (const b of pool) b.destroy();
    this.readPool.clear();
    this.uniforms.destroy();
  }
}

/** Compiles a graph for a device; see {@link CompiledGraph.create}. */
export function compileGraph(gpu: GpuContext, graph: Graph, opts: CompileOptions = {}): Promise<CompiledGraph> {
  return CompiledGraph.create(gpu, graph, opts);
}
