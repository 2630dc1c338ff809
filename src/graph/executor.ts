/**
 * The executor: a compiled graph holds its weights on the device, an activation arena laid out by the memory
 * plan, one uniform slot and one bind group per dispatch, all made once. A forward pass writes the inputs,
 * encodes every dispatch of the batch into one command encoder (one compute pass, or one pass per dispatch
 * when profiling with timestamp queries), copies the outputs to staging buffers in the same encoder, submits
 * once, and maps. A failed map or a lost device raises a GpuDeviceError: results are never made up.
 */
import { GpuDeviceError, type GpuContext } from '../gpu/device.js';
import { encodeDispatches, prepareDispatch, type BufferRange, type PreparedDispatch } from '../gpu/dispatch.js';
import { PipelineCache } from '../gpu/pipelines.js';
import { mapStaging, withErrorScopesDeferred } from '../gpu/readback.js';
import { UniformArena } from '../gpu/uniforms.js';
import { capsFor, checkHalfIO, makePrepared, numel, type OpContext } from '../ops/op.js';
import { getOp } from '../ops/registry.js';
import { fuseGraph, type FusionReport } from './fuse.js';
import { GraphError, type Graph } from './ir.js';
import { checkPlanLimits, nodeContext, opScratchBytes, planMemory, resolveView, type MemoryPlan } from './plan.js';
import { halfTensors, type Storage } from './storage.js';

/** Options for {@link compileGraph}. */
export interface CompileOptions {
  /** Run the fusion passes (default true). */
  fuse?: boolean;
  /** Share pipelines with other graphs on the same device. */
  cache?: PipelineCache;
  /**
   * How inputs reach the GPU: 'staging' (default) writes them into a mapped staging buffer per input (kept
   * mapped between runs) and copies it in the run's command buffer; 'writeBuffer' uses queue.writeBuffer.
   */
  upload?: 'staging' | 'writeBuffer';
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
   * Wall-clock split of the run on the host, ms: `uploadMs` writing the inputs (queue.writeBuffer), `submitMs`
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

/** A graph input's buffer and, in 'staging' upload mode, its staging buffer (mapped when `ready` is null). */
interface InputBuffer {
  buffer: GPUBuffer;
  elements: number;
  shape: readonly number[];
  staging: GPUBuffer | null;
  /** The pending re-map of `staging` after a run; null while it is mapped. */
  ready: Promise<void> | null;
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
    private readonly inputBuffers: Map<string, InputBuffer>,
    private readonly outputBuffers: Map<string, { buffer: GPUBuffer; elements: number }>,
    private readonly nodes: PreparedNode[],
    private readonly uniforms: UniformArena,
    readonly stats: GraphStats,
  ) {}

  /** Compiles a graph: fusion, memory plan, buffers, pipelines, bind groups. */
  static async create(gpu: GpuContext, graph: Graph, opts: CompileOptions = {}): Promise<CompiledGraph> {
    const { device } = gpu;
    const caps = capsFor(gpu, opts.precision ?? 'f32', (m) => new GraphError(m));
    for (const t of graph.tensors)
      if (t.kind === 'weight' && !graph.weightData.has(t.id) && graph.liveNodes().some((n) => n.inputs.includes(t.id)))
        throw new GraphError(`weight '${t.name}' has no data`);
    const fusion = opts.fuse === false ? null : fuseGraph(graph);
    if (!fusion) graph.compact();
    const storage = opts.storage ?? opts.precision ?? 'f32';
    if (storage !== 'f32' && storage !== 'f16') throw new GraphError(`storage must be 'f32' or 'f16', got '${String(storage)}'`);
    const half = storage === 'f16' ? halfTensors(graph) : new Set<number>();
    const plan = planMemory(graph, opScratchBytes(graph, caps, half), half);
    checkPlanLimits(graph, plan, gpu.limits);
    const cache = opts.cache ?? new PipelineCache(device);
    const buffers: GPUBuffer[] = [];
    const make = (bytes: number, label: string, usage = storageUsage()) => {
      const b = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 4) * 4), usage, label });
      buffers.push(b);
      return b;
    };
    device.pushErrorScope('out-of-memory');
    device.pushErrorScope('validation');
    let compiled: CompiledGraph | null = null;
    let failure: unknown = null;
    try {
      compiled = await CompiledGraph.build(gpu, graph, plan, cache, buffers, make, fusion, caps, opts.upload ?? 'staging');
    } catch (e) {
      failure = e;
    }
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    if (!failure && (validation || oom)) failure = new GpuDeviceError(`compiling the graph failed: ${(validation ?? oom)!.message}`);
    if (failure) {
      if (compiled) compiled.destroy();
      else for (const b of buffers) b.destroy();
      throw failure;
    }
    return compiled!;
  }

  private static async build(
    gpu: GpuContext,
    graph: Graph,
    plan: MemoryPlan,
    cache: PipelineCache,
    buffers: GPUBuffer[],
    make: (bytes: number, label: string, usage?: number) => GPUBuffer,
    fusion: FusionReport | null,
    caps: OpContext<unknown>['caps'],
    upload: 'staging' | 'writeBuffer',
  ): Promise<CompiledGraph> {
    const { device } = gpu;
    const arena = make(Math.max(plan.arenaBytes, 16), 'arena');
    const ranges = new Map<number, BufferRange>();
    const inputBuffers = new Map<string, InputBuffer>();
    for (const id of graph.inputs) {
      const t = graph.tensors[id]!;
      const elements = numel(t.shape);
      const buffer = make(elements * 4, `input ${t.name}`);
      let staging: GPUBuffer | null = null;
      if (upload === 'staging') {
        staging = device.createBuffer({ size: Math.max(16, elements * 4), usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC, mappedAtCreation: true, label: `upload ${t.name}` });
        buffers.push(staging);
      }
      inputBuffers.set(t.name, { buffer, elements, shape: t.shape, staging, ready: null });
      ranges.set(id, { buffer, offset: 0, size: elements * 4 });
    }
    const outputBuffers = new Map<string, { buffer: GPUBuffer; elements: number }>();
    const outputBase = new Map<number, GPUBuffer>();
    for (const [name, id] of graph.outputs) {
      if (graph.tensors[id]!.kind !== 'value') throw new GraphError(`output '${name}' is not computed by any node`);
      const elements = numel(graph.tensors[id]!.shape);
      let buffer = outputBase.get(id);
      if (!buffer) {
        buffer = make(elements * 4, `output ${name}`);
        outputBase.set(id, buffer);
        ranges.set(id, { buffer, offset: 0, size: elements * 4 });
      }
      outputBuffers.set(name, { buffer, elements });
    }
    for (const [id, p] of plan.placements) if (p.where === 'arena') ranges.set(id, { buffer: arena, offset: p.offset, size: p.bytes });

    const nodes = graph.liveNodes();
    const specsPerNode = nodes.map((n) => {
      const op = getOp(n.op);
      const ctx = nodeContext(graph, n, caps, plan.half, plan);
      checkHalfIO(op, ctx);
      // Constant operands the op wants in another layout, made here once (OpDef.prepare).
      const prepared = makePrepared(op, ctx, (i) => graph.weightData.get(n.inputs[i]!)!, (m) => new GraphError(`node '${n.name}': ${m}`));
      return { n, op, specs: op.dispatch(ctx), prepared };
    });
    // Constants, uploaded once into buffers of at most maxBufferSize, 256-byte aligned: the weights a dispatch
    // binds (a weight used only in a prepared form is not uploaded as it is), then the prepared operands.
    const preparedRanges = new Map<string, BufferRange>();
    let weightBytes = 0;
    {
      const bound = new Set<number>();
      for (const { n, specs } of specsPerNode) for (const d of specs) for (const b of d.bindings) if ('input' in b) bound.add(n.inputs[b.input]!);
      const constants: Array<{ data: Float32Array | Uint32Array; place: (r: BufferRange) => void }> = [];
      for (const [id, data] of graph.weightData) if (bound.has(id)) constants.push({ data, place: (r) => ranges.set(id, r) });
      for (const { n, prepared } of specsPerNode) prepared.forEach((data, j) => constants.push({ data, place: (r) => preparedRanges.set(`${n.id}:${j}`, r) }));
      let start = 0;
      while (start < constants.length) {
        let end = start;
        let size = 0;
        const offsets: number[] = [];
        while (end < constants.length) {
          const bytes = Math.ceil((constants[end]!.data.length * 4) / 256) * 256;
          if (size + bytes > gpu.limits.maxBufferSize && end > start) break;
          offsets.push(size);
          size += bytes;
          end++;
        }
        const buf = make(size, `weights${start}`);
        for (let i = start; i < end; i++) {
          const { data, place } = constants[i]!;
          const offset = offsets[i - start]!;
          device.queue.writeBuffer(buf, offset, data.buffer, data.byteOffset, data.byteLength);
          place({ buffer: buf, offset, size: Math.max(4, data.byteLength) });
        }
        weightBytes += size;
        start = end;
      }
    }
    const uniforms = new UniformArena(device, Math.max(1, specsPerNode.reduce((s, x) => s + x.specs.length, 0)), 'graph uniforms');
    let flops = 0;
    const prepared: PreparedNode[] = [];
    for (const { n, specs } of specsPerNode) {
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
        const base = resolveView(plan, graph, t).base;
        const r = ranges.get(base);
        if (!r) throw new GraphError(`node '${n.name}': tensor '${graph.tensors[t]!.name}' has no buffer`);
        return r;
      };
      const dispatches = await Promise.all(specs.map((spec, i) => prepareDispatch(device, cache, uniforms, spec, resolve, `${n.name}#${i}`)));
      for (const s of specs) flops += s.flops ?? 0;
      prepared.push({ name: n.name, op: n.op, dispatches });
    }
    uniforms.upload();
    const stats: GraphStats = {
      nodes: nodes.length,
      dispatches: prepared.reduce((s, p) => s + p.dispatches.length, 0),
      arenaBytes: plan.arenaBytes,
      unpackedBytes: plan.unpackedBytes,
      weightBytes,
      // Inputs (twice with staging), outputs, and one readback buffer per output.
      ioBytes: [...inputBuffers.values()].reduce((s, b) => s + b.elements * 4 * (b.staging ? 2 : 1), 0) + [...outputBuffers.values()].reduce((s, b) => s + b.elements * 8, 0),
      pipelines: cache.size,
      flops,
      fusion,
      halfTensors: { half: plan.half.size, values: graph.tensors.filter((t) => t.kind === 'value' && t.producer >= 0).length },
    };
    return new CompiledGraph(gpu, graph, plan, buffers, inputBuffers, outputBuffers, prepared, uniforms, stats);
  }

  /** Input names and shapes. */
  inputs(): Array<{ name: string; shape: readonly number[] }> {
    return [...this.inputBuffers.entries()].map(([name, b]) => ({ name, shape: b.shape }));
  }

  /**
   * Runs one forward pass. Inputs are dense NCHW Float32Arrays by input name.
   * @param opts.profile time every dispatch with timestamp queries (needs the timestamp-query feature).
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
    const copies: Array<{ from: GPUBuffer; to: GPUBuffer; bytes: number; input: InputBuffer }> = [];
    let t1 = t0;
    let submitted: { result: GPUBuffer[]; checked: Promise<void> };
    let query: { sets: GPUQuerySet[]; resolve: GPUBuffer; staging: GPUBuffer } | null = null;
    try {
      for (const [name, b] of this.inputBuffers) {
        const data = inputs[name]!;
        if (!b.staging) {
          device.queue.writeBuffer(b.buffer, 0, data.buffer, data.byteOffset, data.byteLength);
          continue;
        }
        // The staging buffer is mapped again after each run's copy: wait for that.
        if (b.ready) {
          try {
            await b.ready;
          } catch (e) {
            throw new GpuDeviceError(`cannot upload input '${name}': ${gpu.lostReason ?? (e as Error).message}`);
          }
          b.ready = null;
        }
        if (this.destroyed) throw new GraphError('this compiled graph was destroyed');
        new Float32Array(b.staging.getMappedRange(0, data.byteLength)).set(data);
        b.staging.unmap();
        copies.push({ from: b.staging, to: b.buffer, bytes: data.byteLength, input: b });
      }
      t1 = performance.now();
      submitted = withErrorScopesDeferred(device, 'encoding the forward pass', () => {
        const enc = device.createCommandEncoder({ label: 'forward' });
        for (const c of copies) enc.copyBufferToBuffer(c.from, 0, c.to, 0, c.bytes);
        if (!profile) {
          const pass = enc.beginComputePass({ label: 'forward' });
          for (const n of this.nodes) encodeDispatches(pass, n.dispatches);
          pass.end();
        } else {
          const perSet = 2048; // dispatches per query set (4096 queries)
          const sets: GPUQuerySet[] = [];
          for (let i = 0; i < all.length; i += perSet) sets.push(device.createQuerySet({ type: 'timestamp', count: Math.min(perSet, all.length - i) * 2 }));
          all.forEach(({ d }, i) => {
            const pass = enc.beginComputePass({
              timestampWrites: { querySet: sets[Math.floor(i / perSet)]!, beginningOfPassWriteIndex: (i % perSet) * 2, endOfPassWriteIndex: (i % perSet) * 2 + 1 },
            });
            encodeDispatches(pass, [d]);
            pass.end();
          });
          const bytes = all.length * 16;
          const resolve = device.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
          const qStaging = device.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
          sets.forEach((s, k) => enc.resolveQuerySet(s, 0, s.count, resolve, k * perSet * 16));
          enc.copyBufferToBuffer(resolve, 0, qStaging, 0, Math.max(16, bytes));
          query = { sets, resolve, staging: qStaging };
        }
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
      for (const c of copies) {
        const ready = c.from.mapAsync(GPUMapMode.WRITE);
        ready.catch(() => {});
        c.input.ready = ready;
      }
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
    );
    mapping.catch(() => {});
    await checked;
    const read = await mapping;
    const outputs: Record<string, Float32Array> = {};
    wanted.forEach((name, i) => (outputs[name] = read[i]!.subarray(0, this.outputBuffers.get(name)!.elements)));
    const result: RunResult = { outputs, adapter: gpu.adapterName, host: { uploadMs: t1 - t0, submitMs: t2 - t1, readbackMs: performance.now() - t2 } };
    if (query) {
      const q = query as { sets: GPUQuerySet[]; resolve: GPUBuffer; staging: GPUBuffer };
      try {
        await q.staging.mapAsync(GPUMapMode.READ);
        const ts = new BigInt64Array(q.staging.getMappedRange().slice(0));
        result.timings = all.map(({ node, d }, i) => ({
          node: node.name,
          op: node.op,
          label: d.label,
          ns: Number(ts[2 * i + 1]! - ts[2 * i]!),
          flops: d.flops,
          bytes: d.bytes,
        }));
      } catch (e) {
        throw new GpuDeviceError(`reading timestamps failed: ${gpu.lostReason ?? (e as Error).message}`);
      } finally {
        q.staging.destroy();
        q.resolve.destroy();
        for (const s of q.sets) s.destroy();
      }
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
