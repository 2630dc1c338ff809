/**
 * Fusion passes, written as pattern rewrites (wonnx style). They run on a graph whose weights have data:
 *   [conv2d | depthwise | linear, batchnorm]            -> the producer with BN folded into weight and bias
 *   [conv2d | depthwise | linear | batchnorm | binary, unary act] -> the producer with the activation fused
 *   [conv2d, binary add]                                 -> conv2d with a residual input (acc + bias -> act -> + residual)
 *   [global_pool avg, linear act, linear sigmoid, binary mul] (squeeze-excite):
 *       after a depthwise -> depthwise(pool) + se_scale, and the mul folded into a following 1x1 conv (inScale)
 *       otherwise         -> squeeze_excite
 *   [conv2d 1x1 -> 1 channel, sigmoid, binary mul]       -> spatial_se
 * Each pass only fuses through tensors that have one consumer and are not graph outputs.
 */
import { isOp, setOp, type NodeOf } from './builder.js';
import type { Graph, NodeInfo } from './ir.js';

/** What a pass did, for logs and tests. */
export interface FusionReport {
  foldedBatchNorm: number;
  fusedActivation: number;
  fusedResidual: number;
  fusedSqueezeExcite: number;
  fusedSpatialSE: number;
}

/** Convolution-like inputs by role; conv2d takes them in this order, each optional one present or not. */
interface ConvInputs {
  x: number;
  w: number;
  b?: number;
  res?: number;
  inScale?: number;
}

/** The ops whose inputs are x, w and then optional bias, residual, input scale. */
type ConvLike = NodeOf<'conv2d' | 'depthwise' | 'linear'>;

function convInputs(n: ConvLike): ConvInputs {
  const [x, w, ...rest] = n.inputs;
  const r: ConvInputs = { x: x!, w: w! };
  let i = 0;
  if (n.attrs.hasBias ?? n.op !== 'conv2d') r.b = rest[i++];
  if (n.attrs.hasResidual) r.res = rest[i++];
  if (n.attrs.hasInScale) r.inScale = rest[i++];
  return r;
}

function setConvInputs(n: ConvLike, c: ConvInputs): void {
  n.inputs = [c.x, c.w, ...(c.b !== undefined ? [c.b] : []), ...(c.res !== undefined ? [c.res] : []), ...(c.inScale !== undefined ? [c.inScale] : [])];
  n.attrs = { ...n.attrs, hasBias: c.b !== undefined, hasResidual: c.res !== undefined, hasInScale: c.inScale !== undefined };
}

class Rewriter {
  consumers: Map<number, number[]>;
  constructor(readonly g: Graph) {
    this.consumers = g.consumers();
  }
  refresh(): void {
    this.consumers = this.g.consumers();
  }
  node(id: number): NodeInfo | null {
    return id >= 0 ? (this.g.nodes[id] ?? null) : null;
  }
  producer(t: number): NodeInfo | null {
    return this.node(this.g.tensors[t]!.producer);
  }
  /** The single consumer node of tensor t, or null when it has several, none, or is a graph output. */
  soleConsumer(t: number): NodeInfo | null {
    const c = this.consumers.get(t) ?? [];
    return c.length === 1 && c[0]! >= 0 ? this.node(c[0]!) : null;
  }
  /** True when t is only read by the given nodes and is not a graph output. */
  onlyReadBy(t: number, nodes: NodeInfo[]): boolean {
    const c = this.consumers.get(t) ?? [];
    return c.length === nodes.length && c.every((id) => nodes.some((n) => n.id === id));
  }
  /** Makes `keep` produce `from`'s outputs and deletes `from`. */
  absorb(keep: NodeInfo, from: NodeInfo, keepOutput = 0): void {
    const out = from.outputs[0]!;
    keep.outputs[keepOutput] = out;
    this.g.tensors[out]!.producer = keep.id;
    this.g.nodes[from.id] = null;
    this.refresh();
  }
  weight(t: number): Float32Array | undefined {
    return this.g.weightData.get(t);
  }
  addWeight(name: string, shape: readonly number[], data: Float32Array): number {
    return this.g.addWeight(name, shape, data);
  }
}

const FOLDABLE = ['conv2d', 'depthwise', 'linear'] as const;
const ACT_FUSABLE = ['conv2d', 'depthwise', 'linear', 'batchnorm', 'binary'] as const;

function foldBatchNorm(rw: Rewriter): number {
  let count = 0;
  for (const bn of rw.g.liveNodes()) {
    if (!isOp(bn, 'batchnorm')) continue;
    const p = rw.producer(bn.inputs[0]!);
    if (!isOp(p, FOLDABLE) || (p.attrs.act ?? 'none') !== 'none' || p.attrs.hasResidual || p.attrs.pool) continue;
    if (rw.soleConsumer(bn.inputs[0]!) !== bn) continue;
    const [gamma, beta, mean, variance] = bn.inputs.slice(1).map((t) => rw.weight(t));
    const ci = convInputs(p);
    const w = rw.weight(ci.w);
    const b = ci.b !== undefined ? rw.weight(ci.b) : undefined;
    if (!gamma || !beta || !mean || !variance || !w || (ci.b !== undefined && !b)) continue;
    const cout = gamma.length;
    const per = w.length / cout;
    const w2 = new Float32Array(w.length);
    const b2 = new Float32Array(cout);
    for (let o = 0; o < cout; o++) {
      const scale = gamma[o]! / Math.sqrt(variance[o]! + bn.attrs.eps);
      for (let k = 0; k < per; k++) w2[o * per + k] = w[o * per + k]! * scale;
      b2[o] = ((b ? b[o]! : 0) - mean[o]!) * scale + beta[o]!;
    }
    const wt = rw.g.tensors[ci.w]!;
    ci.w = rw.addWeight(`${wt.name}|bn`, wt.shape, w2);
    ci.b = rw.addWeight(`${bn.name}.folded_bias`, [cout], b2);
    setConvInputs(p, ci);
    p.attrs = { ...p.attrs, act: bn.attrs.act ?? 'none' };
    rw.absorb(p, bn);
    count++;
  }
  return count;
}

function fuseActivation(rw: Rewriter): number {
  let count = 0;
  for (const u of rw.g.liveNodes()) {
    if (!isOp(u, 'unary') || u.attrs.act === 'none') continue;
    const p = rw.producer(u.inputs[0]!);
    if (!isOp(p, ACT_FUSABLE) || (p.attrs.act ?? 'none') !== 'none' || p.attrs.hasResidual || p.outputs.length !== 1) continue;
    if (rw.soleConsumer(u.inputs[0]!) !== u) continue;
    p.attrs = { ...p.attrs, act: u.attrs.act };
    rw.absorb(p, u);
    count++;
  }
  return count;
}

function fuseResidual(rw: Rewriter): number {
  let count = 0;
  for (const add of rw.g.liveNodes()) {
    if (!isOp(add, 'binary') || add.attrs.op !== 'add' || (add.attrs.act ?? 'none') !== 'none') continue;
    for (const side of [0, 1]) {
      const t = add.inputs[side]!;
      const other = add.inputs[1 - side]!;
      const p = rw.producer(t);
      if (!isOp(p, 'conv2d') || p.attrs.hasResidual || rw.soleConsumer(t) !== add) continue;
      const os = rw.g.tensors[other]!.shape;
      const ts = rw.g.tensors[t]!.shape;
      if (os.length !== ts.length || !os.every((d, i) => d === ts[i])) continue;
      const op = rw.g.tensors[other]!.producer;
      if (op >= p.id) continue; // the residual must exist when the conv runs
      const ci = convInputs(p);
      ci.res = other;
      setConvInputs(p, ci);
      rw.absorb(p, add);
      count++;
      break;
    }
  }
  return count;
}

function reshapedWeight(rw: Rewriter, t: number, shape: number[]): number {
  const info = rw.g.tensors[t]!;
  const data = rw.weight(t);
  if (!data) throw new Error(`weight ${info.name} has no data`);
  return rw.addWeight(`${info.name}|${shape.join('x')}`, shape, data);
}

function fuseSqueezeExcite(rw: Rewriter): number {
  let count = 0;
  for (const mul of rw.g.liveNodes()) {
    if (!isOp(mul, 'binary') || mul.attrs.op !== 'mul' || (mul.attrs.act ?? 'none') !== 'none') continue;
    const [x, s] = mul.inputs as [number, number];
    const fc2 = rw.producer(s);
    if (!isOp(fc2, 'linear') || fc2.attrs.act !== 'sigmoid' || !fc2.attrs.hasBias || rw.soleConsumer(s) !== mul) continue;
    const fc1 = rw.producer(fc2.inputs[0]!);
    if (!isOp(fc1, 'linear') || (fc1.attrs.act !== 'silu' && fc1.attrs.act !== 'relu') || !fc1.attrs.hasBias || rw.soleConsumer(fc2.inputs[0]!) !== fc2) continue;
    const pool = rw.producer(fc1.inputs[0]!);
    if (!isOp(pool, 'global_pool') || pool.attrs.mode !== 'avg' || pool.inputs[0] !== x || rw.soleConsumer(fc1.inputs[0]!) !== fc1) continue;
    if (rw.g.tensors[x]!.shape.length !== 4) continue;
    const [S, C] = rw.g.tensors[fc1.inputs[1]!]!.shape as [number, number];
    const w1 = reshapedWeight(rw, fc1.inputs[1]!, [S, C, 1, 1]);
    const w2 = reshapedWeight(rw, fc2.inputs[1]!, [C, S, 1, 1]);
    const b1 = fc1.inputs[2]!;
    const b2 = fc2.inputs[2]!;
    const act1 = fc1.attrs.act;
    const dw = rw.producer(x);
    const next = rw.soleConsumer(mul.outputs[0]!);
    if (isOp(dw, 'depthwise') && !dw.attrs.pool && rw.onlyReadBy(x, [pool, mul])) {
      // depthwise computes the pooled means in its pass; se_scale turns them into the channel scale.
      const pooled = pool.outputs[0]!;
      dw.attrs = { ...dw.attrs, pool: true };
      dw.outputs.push(pooled);
      rw.g.tensors[pooled]!.producer = dw.id;
      rw.g.nodes[pool.id] = null;
      // se_scale replaces fc1 (it keeps fc1's node slot, which comes before fc2 and mul).
      const scaleNode: NodeInfo = fc1;
      setOp(scaleNode, 'se_scale', { act1 });
      scaleNode.inputs = [pooled, w1, b1, w2, b2];
      scaleNode.outputs = [s];
      rw.g.tensors[s]!.producer = scaleNode.id;
      rw.g.nodes[fc2.id] = null;
      if (isOp(next, 'conv2d') && next.inputs[0] === mul.outputs[0] && !next.attrs.hasInScale && next.attrs.kernel[0] === 1 && next.attrs.kernel[1] === 1 && next.attrs.stride[0] === 1 && next.attrs.stride[1] === 1) {
        const ci = convInputs(next);
        ci.x = x;
        ci.inScale = s;
        setConvInputs(next, ci);
        rw.g.nodes[mul.id] = null;
      }
      rw.refresh();
    } else {
      const se: NodeInfo = mul;
      setOp(se, 'squeeze_excite', { act1 });
      se.inputs = [x, w1, b1, w2, b2];
      for (const n of [pool, fc1, fc2]) rw.g.nodes[n.id] = null;
      rw.refresh();
    }
    count++;
  }
  return count;
}

function fuseSpatialSE(rw: Rewriter): number {
  let count = 0;
  for (const mul of rw.g.liveNodes()) {
    if (!isOp(mul, 'binary') || mul.attrs.op !== 'mul' || (mul.attrs.act ?? 'none') !== 'none') continue;
    const [x, s] = mul.inputs as [number, number];
    const conv = rw.producer(s);
    if (!isOp(conv, 'conv2d') || conv.attrs.act !== 'sigmoid' || !conv.attrs.hasBias || conv.attrs.hasResidual || conv.attrs.hasInScale) continue;
    if (conv.inputs[0] !== x || conv.attrs.kernel[0] !== 1 || conv.attrs.kernel[1] !== 1 || conv.attrs.stride[0] !== 1 || conv.attrs.stride[1] !== 1) continue;
    if (rw.g.tensors[s]!.shape[1] !== 1 || rw.soleConsumer(s) !== mul) continue;
    setOp(mul as NodeInfo, 'spatial_se', {});
    mul.inputs = [x, conv.inputs[1]!, conv.inputs[2]!];
    rw.g.nodes[conv.id] = null;
    rw.refresh();
    count++;
  }
  return count;
}

/** Runs every fusion pass in order and compacts the graph. */
export function fuseGraph(g: Graph): FusionReport {
  const rw = new Rewriter(g);
  const report: FusionReport = {
    foldedBatchNorm: foldBatchNorm(rw),
    fusedActivation: fuseActivation(rw),
    fusedResidual: fuseResidual(rw),
    fusedSqueezeExcite: fuseSqueezeExcite(rw),
    fusedSpatialSE: fuseSpatialSE(rw),
  };
  g.compact();
  pruneWeights(g);
  return report;
}

/** Drops weight data no live node reads (the originals of folded weights). */
function pruneWeights(g: Graph): void {
  const used = new Set<number>();
  for (const n of g.liveNodes()) for (const t of n.inputs) used.add(t);
  for (const id of [...g.weightData.keys()]) if (!used.has(id)) g.weightData.delete(id);
}
