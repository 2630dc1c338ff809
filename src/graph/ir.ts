/**
 * The graph IR: tensors (graph inputs, weights, values) and nodes (one op each). A {@link GraphBuilder} checks
 * every shape when a node is added, so a graph with mismatched shapes fails when it is built, naming the node,
 * the op and the shapes. Compilation (src/graph/compile.ts) runs the fusion passes, the memory plan and the
 * executor setup.
 */
import { ShapeError, numel, type Shape } from '../ops/op.js';
import { getOp } from '../ops/registry.js';

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

/** A node: one op applied to tensors. */
export interface NodeInfo {
  id: number;
  name: string;
  op: string;
  attrs: any;
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

/** Builds graphs op by op, checking shapes as it goes. */
export class GraphBuilder {
  readonly graph = new Graph();
  private readonly names = new Set<string>();

  private tensor(name: string, shape: Shape, kind: TensorKind, producer: number): Tensor {
    const g = this.graph;
    const id = g.tensors.length;
    g.tensors.push({ id, name, shape: [...shape], kind, producer });
    return { id, shape: [...shape], name };
  }

  private uniqueName(name: string): string {
    let n = name;
    for (let i = 1; this.names.has(n); i++) n = `${name}_${i}`;
    this.names.add(n);
    return n;
  }

  /** Declares a graph input. */
  input(name: string, shape: Shape): Tensor {
    if (!shape.every((d) => Number.isInteger(d) && d > 0)) throw new ShapeError('input', `'${name}' has an invalid shape [${shape.join(', ')}]`);
    const t = this.tensor(this.uniqueName(name), shape, 'input', -1);
    this.graph.inputs.push(t.id);
    return t;
  }

  /** Declares a weight; `data` may be given now or bound later with {@link Graph.weightData}. */
  weight(name: string, shape: Shape, data?: Float32Array): Tensor {
    const t = this.tensor(this.uniqueName(name), shape, 'weight', -1);
    if (data) {
      if (data.length !== numel(shape)) throw new GraphError(`weight ${name}: ${data.length} values for shape [${shape.join(', ')}]`);
      this.graph.weightData.set(t.id, data);
    }
    return t;
  }

  /** Adds a node and returns its output tensors; throws a ShapeError naming the node on a shape mismatch. */
  op(op: string, inputs: Tensor[], attrs: unknown, name: string): Tensor[] {
    const def = getOp(op);
    const nodeName = this.uniqueName(name);
    let shapes: Shape[];
    try {
      shapes = def.infer(
        inputs.map((t) => t.shape),
        attrs,
      );
    } catch (e) {
      if (e instanceof ShapeError) throw new ShapeError(`node '${nodeName}'`, e.message);
      throw e;
    }
    const g = this.graph;
    const id = g.nodes.length;
    const outs = shapes.map((s, i) => this.tensor(shapes.length === 1 ? nodeName : `${nodeName}:${i}`, s, 'value', id));
    g.nodes.push({ id, name: nodeName, op, attrs, inputs: inputs.map((t) => t.id), outputs: outs.map((t) => t.id) });
    return outs;
  }

  /** Adds a single-output node. */
  op1(op: string, inputs: Tensor[], attrs: unknown, name: string): Tensor {
    return this.op(op, inputs, attrs, name)[0]!;
  }

  /** Marks a tensor as a named graph output. */
  output(name: string, t: Tensor): void {
    if (this.graph.outputs.has(name)) throw new GraphError(`duplicate output name '${name}'`);
    this.graph.outputs.set(name, t.id);
  }

  /** Returns the finished graph. */
  finish(): Graph {
    if (this.graph.outputs.size === 0) throw new GraphError('the graph has no outputs');
    return this.graph;
  }
}
