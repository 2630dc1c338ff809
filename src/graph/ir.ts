/**
 * The graph IR: tensors (graph inputs, weights, values) and nodes (one op each, named by a string, with its
 * attributes). The IR knows no op: the GraphBuilder (src/graph/builder.ts) checks shapes and attribute types
 * against the op registry as nodes are added, and typed reads of a node's attributes go through
 * isOp (src/graph/builder.ts). The compile step (src/graph/compile.ts) runs the fusion passes, the memory
 * plan and the ops' dispatches on it.
 */
import { numel, type Shape } from '../ops/op.js';

/** What a tensor is. */
export type TensorKind = 'input' | 'weight' | 'value';

/** A tensor in the graph. */
export interface TensorInfo {
  id: number;
  name: string;
  shape: Shape;
  kind: TensorKind;
  /** Producing node, or -1 for inputs and weights. */
  producer: number;
}

/** A node's attributes as the IR holds them: an object of the type its op declares. */
export type NodeAttrs = { readonly [key: string]: unknown };

/** A node: one op applied to tensors. */
export interface NodeInfo {
  id: number;
  name: string;
  /** The op's name in the registry (src/ops/registry.ts). */
  op: string;
  /** The op's attributes, of the type the op declares (read them typed through isOp, src/graph/builder.ts). */
  attrs: NodeAttrs;
  inputs: number[];
  outputs: number[];
}

/** A handle on a tensor while building. */
export interface Tensor {
  readonly id: number;
  readonly shape: Shape;
  readonly name: string;
}

/** Raised when a graph is malformed (besides shape errors, which are ShapeError). */
export class GraphError extends Error {
  override name = 'GraphError';
}

/** A dataflow graph in topological order (nodes may only consume tensors defined before them). */
export class Graph {
  tensors: TensorInfo[] = [];
  /** Nodes in execution order; passes may replace entries with null and then {@link compact}. */
  nodes: Array<NodeInfo | null> = [];
  inputs: number[] = [];
  /** Output name -> tensor id. */
  outputs = new Map<string, number>();
  /** Weight data by tensor id (weights must have data before compilation). */
  weightData = new Map<number, Float32Array>();

  /** Live nodes in order. */
  liveNodes(): NodeInfo[] {
    return this.nodes.filter((n): n is NodeInfo => n !== null);
  }

  /** Removes deleted nodes and renumbers node ids. */
  compact(): void {
    this.nodes = this.liveNodes();
    this.nodes.forEach((n, i) => {
      n!.id = i;
      for (const t of n!.outputs) this.tensors[t]!.producer = i;
    });
  }

  /** Consumers (node ids) of each tensor, including a pseudo-consumer -1 for graph outputs. */
  consumers(): Map<number, number[]> {
    const m = new Map<number, number[]>();
    for (const n of this.liveNodes()) for (const t of n.inputs) m.set(t, [...(m.get(t) ?? []), n.id]);
    for (const t of this.outputs.values()) m.set(t, [...(m.get(t) ?? []), -1]);
    return m;
  }

  /** Adds a weight tensor with data. */
  addWeight(name: string, shape: Shape, data: Float32Array): number {
    if (data.length !== numel(shape)) throw new GraphError(`weight ${name}: ${data.length} values for shape [${shape.join(', ')}]`);
    const id = this.tensors.length;
    this.tensors.push({ id, name, shape, kind: 'weight', producer: -1 });
    this.weightData.set(id, data);
    return id;
  }
}
