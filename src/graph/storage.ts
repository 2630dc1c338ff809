/**
 * Half storage: which activation tensors of a graph are kept in memory as packed f16 (two halves per u32 word,
 * element 2w in the low half of word w) instead of f32. Kernels read them with unpack2x16float and write them
 * with pack2x16float (core WGSL: no shader-f16 needed), computing in f32 in between; this halves the bytes of
 * the tensors between layers, which is what bandwidth-bound layers (depthwise, the f16 GEMM's operand copies)
 * pay for.
 *
 * A tensor is stored as f16 when all of these hold:
 *  - it is an activation (not a graph input, weight or output: those stay f32 for the caller and the loader);
 *  - its producer's {@link OpDef.halfIO} says it can write that output as f16 for these shapes;
 *  - every consumer's halfIO says it can read it as f16 at that input (an op without halfIO reads and writes
 *    f32 only, concat among them, so f16 tensors are never channel views of a concat buffer).
 * The choice depends on shapes and attributes only, not on the adapter, so the CPU emulation
 * (runGraphOnCpu storage 'f16') rounds exactly the tensors the GPU stores as f16.
 */
import type { HalfIO, TilePolicy } from '../ops/op.js';
import { getOp } from '../ops/registry.js';
import type { Graph, NodeInfo } from './ir.js';

/** Activation storage of a compiled graph: 'f32' (all f32) or 'f16' (half storage where the ops allow it). */
export type Storage = 'f32' | 'f16';

/** The tensors a graph compiled with storage 'f16' (and tile policy `tiles`) keeps as packed f16 (run the fusion passes first). */
export function halfTensors(graph: Graph, tiles: TilePolicy = 'auto'): Set<number> {
  const nodes = graph.liveNodes();
  const outputs = new Set(graph.outputs.values());
  const io = new Map<number, HalfIO | null>();
  for (const n of nodes) {
    const op = getOp(n.op);
    const shapes = { tiles, attrs: n.attrs, inputs: n.inputs.map((t) => graph.tensors[t]!.shape), outputs: n.outputs.map((t) => graph.tensors[t]!.shape) };
    io.set(n.id, op.halfIO ? op.halfIO(shapes) : null);
  }
  const half = new Set<number>();
  for (const n of nodes)
    n.outputs.forEach((t, k) => {
      if (graph.tensors[t]!.kind === 'value' && !outputs.has(t) && io.get(n.id)?.outputs[k]) half.add(t);
    });
  for (const n of nodes) n.inputs.forEach((t, j) => !io.get(n.id)?.inputs[j] && half.delete(t));
  return half;
}

/** The {@link HalfIO} of one node given the set of half tensors (for its dispatch context). */
export function nodeHalf(node: NodeInfo, half: ReadonlySet<number>): HalfIO {
  return { inputs: node.inputs.map((t) => half.has(t)), outputs: node.outputs.map((t) => half.has(t)) };
}
