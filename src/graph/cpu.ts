/** Runs a graph with the ops' CPU references: the ground truth the executor is tested against. */
import { numel, type TilePolicy } from '../ops/op.js';
import { getOp } from '../ops/registry.js';
import { roundToF16 } from '../ops/half.js';
import { GraphError, type Graph } from './ir.js';
import { halfTensors, type Storage } from './storage.js';

/**
 * Evaluates every node on the CPU and returns the named outputs.
 * @param opts.precision 'f16': emulate a graph compiled with precision 'f16' (the ops round what their f16 kernels round).
 * @param opts.storage 'f16': emulate half storage (src/graph/storage.ts): the tensors the GPU keeps as f16 are
 *   rounded to f16 when produced. Default: the precision, as in compileGraph. Run the fusion passes first, as
 *   compileGraph does, so that the same tensors are chosen.
 * @param opts.tiles the tile policy of the compiled graph being emulated (CompileOptions.tiles, default 'auto'):
 *   with f16 it decides which convolutions round their operands and which tensors are stored as f16.
 */
export function runGraphOnCpu(graph: Graph, inputs: Record<string, Float32Array>, opts: { precision?: 'f32' | 'f16'; storage?: Storage; tiles?: TilePolicy } = {}): Record<string, Float32Array> {
  const half = (opts.storage ?? opts.precision ?? 'f32') === 'f16' ? halfTensors(graph, opts.tiles) : new Set<number>();
  const values = new Map<number, Float32Array>();
  for (const id of graph.inputs) {
    const t = graph.tensors[id]!;
    const v = inputs[t.name];
    if (!v) throw new GraphError(`missing input '${t.name}'`);
    if (v.length !== numel(t.shape)) throw new GraphError(`input '${t.name}' has ${v.length} values, expected ${numel(t.shape)} for [${t.shape.join(', ')}]`);
    values.set(id, v);
  }
  for (const [id, data] of graph.weightData) values.set(id, data);
  for (const node of graph.liveNodes()) {
    const op = getOp(node.op);
    const ins = node.inputs.map((t) => {
      const v = values.get(t);
      if (!v) throw new GraphError(`node '${node.name}': input tensor '${graph.tensors[t]!.name}' has no value`);
      return v;
    });
    const outs = op.reference(ins, {
      attrs: node.attrs,
      inputs: node.inputs.map((t) => graph.tensors[t]!.shape),
      outputs: node.outputs.map((t) => graph.tensors[t]!.shape),
      precision: opts.precision ?? 'f32',
      tiles: opts.tiles ?? 'auto',
    });
    node.outputs.forEach((t, i) => values.set(t, half.has(t) ? outs[i]!.map(roundToF16) : outs[i]!));
  }
  const result: Record<string, Float32Array> = {};
  for (const [name, id] of graph.outputs) result[name] = values.get(id)!;
  return result;
}
