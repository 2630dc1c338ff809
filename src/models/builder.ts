/**
 * Model-building helpers on top of the graph IR: a {@link ModelBuilder} wraps a {@link GraphBuilder} and records,
 * for every weight it declares, where the data comes from in a weights file ({@link WeightBinding}): a tensor by
 * its state-dict name, either as is or through a {@link Derivation} (a slice of input channels for the ConvGRU's
 * zero-state first step, a row difference for the 2-class softmax). The loader (src/models/load.ts) resolves the
 * bindings against a safetensors file.
 *
 * The layer helpers emit the UNFUSED ops, the way PyTorch computes each module (conv -> batchnorm -> unary act,
 * squeeze-excite as global_pool -> linear -> linear -> binary mul, residual as binary add); the fusion passes in
 * src/graph/fuse.ts turn them into fused ops.
 */
import type { Activation } from '../ops/activation.js';
import type { Conv2dAttrs } from '../ops/conv2d.js';
import type { Shape } from '../ops/op.js';
import type { SliceInputAttrs } from '../ops/slice-input.js';
import { GraphBuilder } from '../graph/builder.js';
import type { Graph, Tensor } from '../graph/ir.js';

/** How a graph weight is computed from its source tensor. */
export type Derivation =
  /** Source [O, I, kh, kw] -> [O, count, kh, kw]: input channels [0, count). */
  | { kind: 'sliceIn'; count: number }
  /** Source [R, ...] -> [1, ...]: row `plus` minus row `minus` (in f32). */
  | { kind: 'rowDiff'; plus: number; minus: number };

/**
 * Where a graph weight's data comes from. `hints[i]` names the config field that sets dimension i of the source
 * shape (used to explain a shape mismatch).
 */
export interface WeightBinding {
  /** Graph tensor id. */
  id: number;
  /** Graph tensor name (the source name for plain weights). */
  name: string;
  /** Graph shape. */
  shape: Shape;
  /** State-dict name in the weights file. */
  source: string;
  /** Expected source shape (a file shape equal up to trailing 1s is accepted). */
  sourceShape: Shape;
  derive?: Derivation;
  hints?: Array<string | undefined>;
}

/** A graph plus the bindings of its weights; the loader fills `graph.weightData` from a file. */
export interface ModelGraph {
  graph: Graph;
  weights: WeightBinding[];
  /** [prefix, config field]: which field decides whether tensors under the prefix exist (first match wins). */
  fieldHints: Array<[prefix: string, field: string]>;
}

/** Per-dimension config-field hints, or a single field for every dimension. */
export type Hints = Array<string | undefined> | string | undefined;

/** Options of a conv layer. */
export interface ConvOpts {
  stride?: number;
  /** Default kernel // 2. */
  pad?: number;
  bias?: boolean;
  /** Config fields that set [Cout, Cin, k, k]. */
  hints?: Hints;
}

/** Wraps a GraphBuilder and records weight bindings; see the module comment. */
export class ModelBuilder {
  readonly b = new GraphBuilder();
  readonly weights: WeightBinding[] = [];
  /** Which config field decides whether the tensors under a prefix exist (first match wins). */
  readonly fieldHints: Array<[prefix: string, field: string]> = [];

  /** Declares that tensors under `prefix` exist or not depending on config field `field`. */
  hintPrefix(prefix: string, field: string): void {
    this.fieldHints.push([prefix, field]);
  }

  private expand(h: Hints, rank: number): Array<string | undefined> | undefined {
    if (h === undefined) return undefined;
    return typeof h === 'string' ? Array.from({ length: rank }, () => h) : h;
  }

  /** Declares a weight read as is from file tensor `name` (graph shape = expected file shape up to trailing 1s). */
  param(name: string, shape: Shape, hints?: Hints): Tensor {
    const t = this.b.weight(name, shape);
    this.weights.push({ id: t.id, name: t.name, shape: [...shape], source: name, sourceShape: [...shape], ...opt('hints', this.expand(hints, shape.length)) });
    return t;
  }

  /** Declares a weight derived from file tensor `source` of shape `sourceShape`. */
  derived(name: string, shape: Shape, source: string, sourceShape: Shape, derive: Derivation, hints?: Hints): Tensor {
    const t = this.b.weight(name, shape);
    this.weights.push({ id: t.id, name: t.name, shape: [...shape], source, sourceShape: [...sourceShape], derive, ...opt('hints', this.expand(hints, sourceShape.length)) });
    return t;
  }

  /** conv2d (groups 1): weight `${p}.weight` [cout, cin, k, k], bias `${p}.bias` when opts.bias. */
  conv(x: Tensor, p: string, cout: number, k: number, opts: ConvOpts = {}, node = p): Tensor {
    const cin = x.shape[1]!;
    const w = this.param(`${p}.weight`, [cout, cin, k, k], opts.hints);
    const hints = this.expand(opts.hints, 4);
    const b = opts.bias ? [this.param(`${p}.bias`, [cout], hints ? [hints[0]] : undefined)] : [];
    return this.convWith(x, w, b[0], k, opts, node);
  }

  /** conv2d with given weight tensors (e.g. derived ones). */
  convWith(x: Tensor, w: Tensor, b: Tensor | undefined, k: number, opts: ConvOpts, node: string): Tensor {
    const s = opts.stride ?? 1;
    const pad = opts.pad ?? Math.floor(k / 2);
    const attrs: Conv2dAttrs = { kernel: [k, k], stride: [s, s], pad: [pad, pad], act: 'none', hasBias: !!b, hasResidual: false, hasInScale: false };
    return this.b.op1('conv2d', b ? [x, w, b] : [x, w], attrs, node);
  }

  /** Depthwise conv: weight `${p}.weight` [C, 1, k, k], no bias (torchvision's MBConv). */
  depthwise(x: Tensor, p: string, k: number, stride: number, hints?: Hints, node = p): Tensor {
    const c = x.shape[1]!;
    const w = this.param(`${p}.weight`, [c, 1, k, k], hints);
    return this.b.op1('depthwise', [x, w], { kernel: k, stride, pad: Math.floor((k - 1) / 2), act: 'none', hasBias: false }, node);
  }

  /** Inference BatchNorm with `${p}.weight/.bias/.running_mean/.running_var`. */
  bn(x: Tensor, p: string, eps: number, hints?: Hints, node = p): Tensor {
    const c = x.shape[1]!;
    const h = typeof hints === 'string' ? hints : hints?.[0];
    const ps = ['weight', 'bias', 'running_mean', 'running_var'].map((s) => this.param(`${p}.${s}`, [c], h));
    return this.b.op1('batchnorm', [x, ...ps], { eps }, node);
  }

  /** Elementwise activation (no node for 'none'). */
  act(x: Tensor, act: Activation, node: string): Tensor {
    return act === 'none' ? x : this.b.op1('unary', [x], { act }, node);
  }

  /** Fully connected: weight `${p}.weight` [out, in] (a file shape [out, in, 1, 1] is accepted), bias when asked. */
  linear(x: Tensor, p: string, out: number, opts: { bias: boolean; act?: Activation; hints?: Hints }, node = p): Tensor {
    const w = this.param(`${p}.weight`, [out, x.shape[1]!], opts.hints);
    const hints = this.expand(opts.hints, 2);
    const ins = [x, w];
    if (opts.bias) ins.push(this.param(`${p}.bias`, [out], hints ? [hints[0]] : undefined));
    return this.b.op1('linear', ins, { hasBias: opts.bias, act: opts.act ?? 'none' }, node);
  }

  /** Binary elementwise op. */
  binary(a: Tensor, b: Tensor, op: 'add' | 'sub' | 'mul' | 'mulOnePlus', node: string): Tensor {
    return this.b.op1('binary', [a, b], { op }, node);
  }

  /** Channel concat (identity for one input). */
  concat(xs: Tensor[], node: string): Tensor {
    return xs.length === 1 ? xs[0]! : this.b.op1('concat', xs, {}, node);
  }

  /** Bilinear resize to an exact size, align_corners=false; identity when the size already matches. */
  resize(x: Tensor, size: readonly [number, number], node: string): Tensor {
    if (x.shape[2] === size[0] && x.shape[3] === size[1]) return x;
    return this.b.op1('resize_bilinear', [x], { size: [size[0], size[1]], alignCorners: false }, node);
  }

  /**
   * The three-channel model input from windowed slices [N, 1, H, W]: normalised, and where `prob` is given,
   * masked to `outside` wherever prob <= threshold first (src/ops/slice-input.ts).
   */
  sliceInput(windowed: Tensor, prob: Tensor | null, pre: { mean: readonly number[]; std: readonly number[]; lung_threshold: number; outside_mask_value: number }, node: string): Tensor {
    const attrs: SliceInputAttrs = { mean: [pre.mean[0]!, pre.mean[1]!, pre.mean[2]!], std: [pre.std[0]!, pre.std[1]!, pre.std[2]!], threshold: pre.lung_threshold, outside: pre.outside_mask_value };
    return this.b.op1('slice_input', prob ? [windowed, prob] : [windowed], attrs, node);
  }

  /** Global average or max pool: [N, C, H, W] -> [N, C]. */
  pool(x: Tensor, mode: 'avg' | 'max', node: string): Tensor {
    return this.b.op1('global_pool', [x], { mode }, node);
  }

  /** Marks a graph output. */
  output(name: string, t: Tensor): void {
    this.b.output(name, t);
  }

  /** The finished model graph. */
  finish(): ModelGraph {
    return { graph: this.b.finish(), weights: this.weights, fieldHints: this.fieldHints };
  }
}

function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}
