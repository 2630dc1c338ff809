/**
 * The op contract. One op = one file in src/ops exporting an {@link OpDef}: its shape rule, the dispatches that
 * run it on the GPU (kernel file in kernels/ + defines + grid + uniform words + bindings), a plain CPU reference
 * on Float32Array, and its test cases. test/ops.test.ts walks the registry and checks every case.
 *
 * Layout: activations are NCHW f32 (see docs/engine.md). Dimension 1 is "the channel". Any tensor a kernel
 * reads or writes may be a channel view into a larger buffer: element (n, c, rest) lives at
 * `(n * cTot + cOff + c) * inner + rest`, with `inner` the product of the dimensions after the channel. This is
 * how concatenation costs nothing: producers write straight into their slice of the concat buffer.
 */
import type { Binding, DispatchSpec } from '../gpu/spec.js';
import type { GpuCaps } from '../gpu/caps.js';

export { f32, i32, type Binding, type DispatchSpec, type ParamWord } from '../gpu/spec.js';
export { capsFor, f16MatmulSupport, type GpuCaps } from '../gpu/caps.js';
import type { TilePolicy } from '../gpu/caps.js';

/** A tensor shape; rank 4 is NCHW, rank 2 is [N, features]. */
export type Shape = readonly number[];

/** A channel window of a larger buffer: this tensor's channel c is the buffer's channel cOff + c of cTot. */
export interface View {
  cOff: number;
  cTot: number;
}



/**
 * A constant operand in the layout a kernel wants (conv2d's matrix-unit path: the weights as a zero-padded f16
 * copy), made on the CPU once when the graph is compiled, from inputs that are constants there, instead of by a
 * dispatch in every forward pass. Dispatches bind it as `{ prepared: j }`, j its index in the op's list.
 */
export interface PreparedOperand {
  /** The constant inputs it is made from, in the order {@link make} takes their data (dense, f32). */
  from: number[];
  /** u32 words of the result. */
  words: number;
  make(data: Float32Array[]): Uint32Array;
}



/**
 * NMSE bound of a conv2d run with f16 operands against the f32 reference (each operand rounded to 11 significant
 * bits; f32 sums). Against the reference that emulates the rounding (RefContext precision 'f16') the op's own
 * tolerance applies.
 */
export const F16_CONV_TOLERANCE = 1e-6;



/** Everything {@link OpDef.dispatch} gets. */
export interface OpContext<A> {
  attrs: A;
  inputs: Shape[];
  outputs: Shape[];
  inViews: View[];
  outViews: View[];
  caps: GpuCaps;
  /**
   * Which inputs and outputs are stored as packed f16 (two halves per u32 word, element 2w in the low half of
   * word w; see src/graph/storage.ts). Absent: all f32. Only ever true where the op's {@link OpDef.halfIO} allows.
   */
  half?: HalfIO;
  /**
   * Which inputs are constants whose data is known when the graph is compiled (its weights); the op may ask for
   * those prepared ({@link OpDef.prepare}). Absent: none.
   */
  constant?: boolean[];
}

/** Per input and output of a node: stored as packed f16 (true) or f32. */
export interface HalfIO {
  inputs: boolean[];
  outputs: boolean[];
}

/** Whether input `i` of a dispatch context is stored as packed f16. */
export const halfIn = (ctx: Pick<OpContext<unknown>, 'half'>, i: number): boolean => ctx.half?.inputs[i] ?? false;
/** Whether output `i` of a dispatch context is stored as packed f16. */
export const halfOut = (ctx: Pick<OpContext<unknown>, 'half'>, i: number): boolean => ctx.half?.outputs[i] ?? false;

/**
 * Makes the prepared operands of an op ({@link OpDef.prepare}) from its inputs' data (`dataOf(i)`, dense), checking
 * that each comes from inputs `ctx.constant` marks and has the words it declared; `makeError` builds the error.
 */
export function makePrepared<A>(op: OpDef<A>, ctx: OpContext<A>, dataOf: (input: number) => Float32Array, makeError: (message: string) => Error = (m) => new Error(m)): Uint32Array[] {
  return (op.prepare?.(ctx) ?? []).map((p, j) => {
    if (!p.from.every((i) => ctx.constant?.[i])) throw makeError(`${op.name}: prepared operand ${j} is made from an input that is not a constant`);
    const data = p.make(p.from.map(dataOf));
    if (data.length !== p.words) throw makeError(`${op.name}: prepared operand ${j} has ${data.length} words, ${p.words} were declared`);
    return data;
  });
}

/** Throws a ShapeError when `ctx.half` asks an op for an f16 input or output its {@link OpDef.halfIO} does not allow. */
export function checkHalfIO<A>(op: OpDef<A>, ctx: OpContext<A>): void {
  if (!ctx.half) return;
  // halfIO takes the tile policy as `tiles` (a conv2d output is f16 only where its K is not split, which depends on it)
  const allowed = op.halfIO?.({ ...ctx, tiles: ctx.caps.tiles ?? 'auto' }) ?? { inputs: [], outputs: [] };
  const bad = [
    ...ctx.half.inputs.flatMap((h, i) => (h && !allowed.inputs[i] ? [`input ${i}`] : [])),
    ...ctx.half.outputs.flatMap((h, i) => (h && !allowed.outputs[i] ? [`output ${i}`] : [])),
  ];
  check(bad.length === 0, op.name, `${bad.join(', ')} cannot be f16 (half storage) for these shapes`, ctx.inputs);
}

/** CPU reference arguments: dense tensors, no views. */
export interface RefContext<A> {
  attrs: A;
  inputs: Shape[];
  outputs: Shape[];
  /** 'f16': emulate what the op computes in a graph compiled with precision 'f16' (default 'f32'). */
  precision?: 'f32' | 'f16';
  /** The tile policy of the graph being emulated (GpuCaps.tiles; default 'auto'): it decides conv2d's K split, hence which convolutions take the f16 path. */
  tiles?: TilePolicy;
}

/** One test case: input shapes, attributes, and optionally input ranges and channel views. */
export interface TestCase<A> {
  name: string;
  inputs: Shape[];
  attrs: A;
  /** Per-input value range; default [-1, 1]. */
  ranges?: Array<[number, number] | undefined>;
  /** Channel views for outputs (the harness fills the other channels with sentinels and checks them). */
  outViews?: Array<View | undefined>;
  /** Channel views for inputs (the harness puts the input in that slice of a larger buffer). */
  inViews?: Array<View | undefined>;
}

/** Error class of an op, decides the default tolerance: elementwise 1e-10, reduction/conv 1e-7 (NMSE). */
export type OpKind = 'elementwise' | 'reduction' | 'conv';

/** An op definition. */
export interface OpDef<A = unknown> {
  name: string;
  kind: OpKind;
  /** Normalised MSE bound (sum (gpu - ref)^2 / sum ref^2); defaults by kind. */
  tolerance?: number;
  /** Shape rule; throw {@link ShapeError} on mismatch. */
  infer(inputs: Shape[], attrs: A): Shape[];
  /**
   * Which activation inputs this op's kernels can read, and which outputs they can write, as packed f16 for these
   * shapes and attributes (half storage, src/graph/storage.ts) and the tile policy (`tiles`, default 'auto').
   * Absent: none. Must not depend on the adapter.
   */
  halfIO?(ctx: Pick<OpContext<A>, 'attrs' | 'inputs' | 'outputs'> & { tiles?: TilePolicy }): HalfIO;
  /** Scratch buffers (element counts, f32) the dispatches need. */
  scratch?(ctx: OpContext<A>): number[];
  /**
   * Constant operands to make once on the CPU when the graph is compiled, each from inputs `ctx.constant` marks
   * (never others). Absent or empty: none.
   */
  prepare?(ctx: OpContext<A>): PreparedOperand[];
  dispatch(ctx: OpContext<A>): DispatchSpec[];
  reference(inputs: Float32Array[], ctx: RefContext<A>): Float32Array[];
  cases: TestCase<A>[];
}

export { defaultTilePolicy, TILE_POLICIES, type TilePolicy } from '../gpu/caps.js';

/** Default NMSE bound per op kind, as the engine issue states them. */
export const DEFAULT_TOLERANCE: Record<OpKind, number> = { elementwise: 1e-10, reduction: 1e-7, conv: 1e-7 };

/** A wrong shape, found when a graph is built; the message names the op and the shapes. */
export class ShapeError extends Error {
  override name = 'ShapeError';
  constructor(op: string, message: string, inputs?: Shape[]) {
    super(`${op}: ${message}${inputs ? ` (input shapes ${inputs.map((s) => `[${s.join(', ')}]`).join(', ')})` : ''}`);
  }
}

/** Identity for typing op definitions. */
export function defineOp<A>(def: OpDef<A>): OpDef<A> {
  return def;
}

/** Product of dimensions. */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Elements after the channel dimension. */
export function innerSize(shape: Shape): number {
  let n = 1;
  for (let i = 2; i < shape.length; i++) n *= shape[i]!;
  return n;
}

/** The dense view of a tensor (no slicing). */
export function denseView(shape: Shape): View {
  return { cOff: 0, cTot: shape.length > 1 ? shape[1]! : 1 };
}

/** Throws a ShapeError unless `cond`. */
export function check(cond: boolean, op: string, message: string, inputs?: Shape[]): asserts cond {
  if (!cond) throw new ShapeError(op, message, inputs);
}

/** Checks that a shape has the given rank and positive integer dimensions. */
export function checkRank(op: string, what: string, s: Shape | undefined, rank: number, inputs: Shape[]): Shape {
  check(!!s, op, `missing ${what}`, inputs);
  check(s.length === rank, op, `${what} must have rank ${rank}, got [${s.join(', ')}]`, inputs);
  check(s.every((d) => Number.isInteger(d) && d > 0), op, `${what} has a non-positive dimension [${s.join(', ')}]`, inputs);
  return s;
}

/** Workgroup count for `total` threads in groups of `wg`, folded into 2-D when it exceeds the per-dimension limit. */
export function grid1d(total: number, wg: number, maxPerDim = 65535): [number, number] {
  const groups = Math.max(1, Math.ceil(total / wg));
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
