/**
 * Every op the engine has. The op test suite walks this list; the graph looks ops up here by name.
 * Adding an op: write src/ops/<name>.ts exporting an OpDef, add it here (and its kernel file to
 * src/wgsl/kernels.ts if it brings one).
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
import { depthwise } from './depthwise.js'; import { seScale, squeezeExcite } from './se.js'; import { spatialSe } from './spatial-se.js';
import { sliceInput } from './slice-input.js';
// (add op imports above this line)

/** All ops, by name. */
export const OPS: Record<string, OpDef<any>> = {};

const ALL: OpDef<any>[] = [
  unary,
  binary,
  batchnorm,
  concat,
  gruReset, gruUpdate, resizeBilinear, globalPool, linear, softmax,
  conv2d,
  depthwise, seScale, squeezeExcite, spatialSe,
  sliceInput,
  // (add ops above this line)
];

for (const op of ALL) {
  if (OPS[op.name]) throw new Error(`duplicate op ${op.name}`);
  OPS[op.name] = op;
}

/** Looks an op up by name. */
export function getOp(name: string): OpDef<any> {
  const op = OPS[name];
  if (!op) throw new Error(`unknown op '${name}'`);
  return op;
}
