/**
 * The GraphBuilder: builds graphs op by op, checking each node's shapes with its op's shape rule and its
 * attributes against the type the op declares (src/ops/registry.ts AttrsOf), so a graph with mismatched shapes
 * fails when it is built, naming the node, the op and the shapes. {@link isOp} and {@link setOp} are the typed
 * reads and rewrites of a node's attributes that the passes use.
 */
import { ShapeError, numel, type Shape } from '../ops/op.js';
import { getOp, type AttrsOf, type OpName } from '../ops/registry.js';
import { Graph, GraphError, type NodeAttrs, type NodeInfo, type Tensor, type TensorKind } from './ir.js';

/** A node whose op is `K`, with `K`'s attributes. */
export type NodeOf<K extends OpName> = K extends OpName ? NodeInfo & { op: K; attrs: AttrsOf<K> } : never;

/** Whether node `n` runs op `op` (or one of `op`); narrows its attributes to that op's type. */
export function isOp<K extends OpName>(n: NodeInfo | null | undefined, op: K | readonly K[]): n is NodeOf<K> {
  return !!n && (typeof op === 'string' ? n.op === op : (op as readonly string[]).includes(n.op));
}

/** Makes node `n` run op `op` with `attrs` (a fusion pass turning one node into another). */
export function setOp<K extends OpName>(n: NodeInfo, op: K, attrs: AttrsOf<K>): asserts n is NodeOf<K> {
  n.op = op;
  n.attrs = attrs as unknown as NodeAttrs;
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
  op<K extends OpName>(op: K, inputs: Tensor[], attrs: AttrsOf<K>, name: string): Tensor[] {
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
    g.nodes.push({ id, name: nodeName, op, attrs: attrs as unknown as NodeAttrs, inputs: inputs.map((t) => t.id), outputs: outs.map((t) => t.id) });
    return outs;
  }

  /** Adds a single-output node. */
  op1<K extends OpName>(op: K, inputs: Tensor[], attrs: AttrsOf<K>, name: string): Tensor {
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
