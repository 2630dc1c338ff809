/**
 * The compile step, on the CPU and without a device: from a graph and what the adapter offers to everything
 * the GPU side needs, as plain data. In order: the fusion passes (src/graph/fuse.ts), which tensors keep half
 * storage (storage.ts), the memory plan (plan.ts), then per node the op's dispatch specs and its prepared
 * constant operands, and the list of constants to upload. src/graph/executor.ts turns a {@link GraphProgram}
 * into buffers, pipelines and bind groups, and runs it.
 */
import { capsFor, defaultTilePolicy, type GpuCaps, type TilePolicy } from '../gpu/caps.js';
import type { DispatchSpec } from '../gpu/spec.js';
import { checkHalfIO, makePrepared, numel, type OpDef } from '../ops/op.js';
import { getOp } from '../ops/registry.js';
import { fuseGraph, type FusionReport } from './fuse.js';
import { GraphError, type Graph, type NodeInfo } from './ir.js';
import { nodeContext, opScratchBytes, planBufferNeeds, planMemory, type MemoryPlan } from './plan.js';
import { findLimitError, type BufferNeed } from '../gpu/limits.js';
import { UNIFORM_SLOT_BYTES } from '../gpu/uniforms.js';
import { halfTensors, type Storage } from './storage.js';

/** What compiling needs to know about the device: its name (for messages), limits, features, subgroup sizes. */
export type DeviceCaps = Pick<GpuCaps, 'limits' | 'features' | 'subgroupMinSize' | 'subgroupMaxSize'> & { adapterName: string; /** A CPU-run adapter: the default tile policy is then 'software'. */ isSoftware?: boolean };

/** What the compile step takes from {@link CompileOptions} (src/graph/executor.ts). */
export interface ProgramOptions {
  /** Run the fusion passes (default true). */
  fuse?: boolean;
  /** 'f32' (default) or 'f16': see CompileOptions.precision. */
  precision?: 'f32' | 'f16';
  /** Activation storage; default: the precision. */
  storage?: Storage;
  /** Tile policy: see CompileOptions.tiles. */
  tiles?: TilePolicy;
  /** What a GpuLimitError's message tells the caller to change (default: use a smaller batch or input size). */
  limitHint?: string;
}

/** One node, ready for the GPU: its dispatches and the constant operands its op prepared. */
export interface ProgramNode {
  node: NodeInfo;
  op: OpDef<unknown>;
  specs: DispatchSpec[];
  /** The op's prepared operands (OpDef.prepare), bound as `{ prepared: j }`. */
  prepared: Uint32Array[];
}

/** A constant to upload once: a weight some dispatch binds, or a node's prepared operand. */
export type ProgramConstant =
  | { tensor: number; data: Float32Array }
  | { node: number; prepared: number; data: Uint32Array };

/** A graph input or output: its tensor and element count (f32). */
export interface ProgramIO {
  name: string;
  tensor: number;
  shape: readonly number[];
  elements: number;
}

/** Everything the executor needs, decided on the CPU. */
export interface GraphProgram {
  graph: Graph;
  caps: GpuCaps;
  plan: MemoryPlan;
  fusion: FusionReport | null;
  nodes: ProgramNode[];
  constants: ProgramConstant[];
  inputs: ProgramIO[];
  outputs: ProgramIO[];
  /** Multiply-add count x 2 of all dispatches. */
  flops: number;
}

/**
 * Compiles a graph for a device's capabilities, without touching the device: checks the weights, fuses (unless
 * `fuse: false`), picks half-storage tensors, plans memory against the device's limits, and asks every op for
 * its dispatches and prepared operands. Throws a GraphError naming what is wrong (a weight without data, a
 * precision the adapter lacks, an output no node computes), or a GpuLimitError for a buffer or binding over the
 * device's maxBufferSize / maxStorageBufferBindingSize.
 */
export function compileProgram(device: DeviceCaps, graph: Graph, opts: ProgramOptions = {}): GraphProgram {
  const caps = capsFor(device, opts.precision ?? 'f32', (m) => new GraphError(m), opts.tiles ?? defaultTilePolicy(device));
  for (const t of graph.tensors)
    if (t.kind === 'weight' && !graph.weightData.has(t.id) && graph.liveNodes().some((n) => n.inputs.includes(t.id)))
      throw new GraphError(`weight '${t.name}' has no data`);
  const fusion = opts.fuse === false ? null : fuseGraph(graph);
  if (!fusion) graph.compact();
  const storage = opts.storage ?? opts.precision ?? 'f32';
  if (storage !== 'f32' && storage !== 'f16') throw new GraphError(`storage must be 'f32' or 'f16', got '${String(storage)}'`);
  const half = storage === 'f16' ? halfTensors(graph, caps.tiles) : new Set<number>();
  const plan = planMemory(graph, opScratchBytes(graph, caps, half), half);
  // Every buffer and binding against the device's limits, before any node is asked for its dispatches (and long
  // before anything is made on the device): a GpuLimitError naming the limit, the size and what to change.
  const planErr = findLimitError(planBufferNeeds(graph, plan), device.limits, device.adapterName, opts.limitHint);
  if (planErr) throw planErr;

  const io = (name: string, id: number): ProgramIO => ({ name, tensor: id, shape: graph.tensors[id]!.shape, elements: numel(graph.tensors[id]!.shape) });
  const inputs = graph.inputs.map((id) => io(graph.tensors[id]!.name, id));
  const outputs = [...graph.outputs].map(([name, id]) => {
    if (graph.tensors[id]!.kind !== 'value') throw new GraphError(`output '${name}' is not computed by any node`);
    return io(name, id);
  });

  const nodes = graph.liveNodes().map((node): ProgramNode => {
    const op = getOp(node.op);
    const ctx = nodeContext(graph, node, caps, plan.half, plan);
    checkHalfIO(op, ctx);
    // Constant operands the op wants in another layout, made here once (OpDef.prepare).
    const prepared = makePrepared(op, ctx, (i) => graph.weightData.get(node.inputs[i]!)!, (m) => new GraphError(`node '${node.name}': ${m}`));
    return { node, op, specs: op.dispatch(ctx), prepared };
  });

  // The weights some dispatch binds (a weight used only in a prepared form is not uploaded as it is), then the
  // prepared operands.
  const bound = new Set<number>();
  for (const { node, specs } of nodes) for (const d of specs) for (const b of d.bindings) if ('input' in b) bound.add(node.inputs[b.input]!);
  const constants: ProgramConstant[] = [];
  for (const [tensor, data] of graph.weightData) if (bound.has(tensor)) constants.push({ tensor, data });
  for (const { node, prepared } of nodes) prepared.forEach((data, j) => constants.push({ node: node.id, prepared: j, data }));

  const more: BufferNeed[] = constants.map((c) => ({ what: 'tensor' in c ? `weight '${graph.tensors[c.tensor]!.name}'` : `a prepared operand of node '${graph.nodes[c.node]?.name ?? c.node}'`, bytes: c.data.byteLength, kind: 'binding' }));
  more.push({ what: 'the uniform slots', bytes: Math.max(1, nodes.reduce((s, x) => s + x.specs.length, 0)) * UNIFORM_SLOT_BYTES, kind: 'buffer' });
  const constErr = findLimitError(more, device.limits, device.adapterName, opts.limitHint);
  if (constErr) throw constErr;

  const flops = nodes.reduce((s, n) => s + n.specs.reduce((t, d) => t + (d.flops ?? 0), 0), 0);
  return { graph, caps, plan, fusion, nodes, constants, inputs, outputs, flops };
}
