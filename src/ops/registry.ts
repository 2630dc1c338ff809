/**
 * Every op the engine has. The op test suite walks this list; the graph looks ops up here by name.
 * Adding an op: write src/ops/<name>.ts exporting an OpDef, add it to OP_TABLE under its name (and its kernel
 * file to src/wgsl/kernels.ts if it brings one).
 */
import type { OpDef } from './op.js';
import { batchnorm } from './batchnorm.js';
import { binary } from './binary.js';
import { unary } from './unary.js';
import { concat } from './concat.js';
import { gruReset, gruUpdate } from './gru-gates.js';
import { resizeBilinear } from './resize.js';
import { globalPool } from './pool.js';
import { linear } from './linear.js';
import { softmax } from './softmax.js';
import { conv2d } from './conv2d.js';
import { depthwise } from './depthwise.js';
import { seScale, squeezeExcite } from './se.js';
import { spatialSe } from './spatial-se.js';
import { sliceInput } from './slice-input.js';
// (add op imports above this line)

/**
 * Every op by its name: the one table both the runtime lookup ({@link getOp}) and the types ({@link OpName},
 * {@link AttrsOf}) come from, so an op declares its attribute type once, in its own file.
 */
const OP_TABLE = {
  unary,
  binary,
  batchnorm,
  concat,
  gru_reset: gruReset,
  gru_update: gruUpdate,
  resize_bilinear: resizeBilinear,
  global_pool: globalPool,
  linear,
  softmax,
  conv2d,
  depthwise,
  se_scale: seScale,
  squeeze_excite: squeezeExcite,
  spatial_se: spatialSe,
  slice_input: sliceInput,
  // (add ops above this line, keyed by their name)
};

/** The name of an op in the registry. */
export type OpName = keyof typeof OP_TABLE;

/** The attribute type op `K` declares (its OpDef's type parameter). */
export type AttrsOf<K extends OpName> = (typeof OP_TABLE)[K] extends OpDef<infer A> ? A : never;

for (const [key, op] of Object.entries(OP_TABLE)) if (op.name !== key) throw new Error(`op '${op.name}' is registered as '${key}'`);

/** All ops, by name. */
export const OPS: Readonly<Record<string, OpDef<unknown>>> = OP_TABLE;

/** Whether `name` is an op in the registry. */
export function isOpName(name: string): name is OpName {
  return Object.prototype.hasOwnProperty.call(OP_TABLE, name);
}

/** Looks an op up by name. */
export function getOp(name: string): OpDef<unknown> {
  if (!isOpName(name)) throw new Error(`unknown op '${name}'`);
  return OPS[name]!;
}
