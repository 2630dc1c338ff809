/**
 * Every op the engine has. The op test suite walks this list; the graph looks ops up here by name.
 * Adding an op: write src/ops/<name>.ts exporting an OpDef, add it here (and its kernel file to
 * src/wgsl/kernels.ts if it brings one).
 */
import type { OpDef } from './op.js';
import { batchnorm } from './batchnorm.js';
import { binary } from './binary.js';
import { unary } from './unary.js';

/** All ops, by name. */
export const OPS: Record<string, OpDef<any>> = {};

for (const op of [unary, binary, batchnorm] as OpDef<any>[]) {
  if (OPS[op.name]) throw new Error(`duplicate op ${op.name}`);
  OPS[op.name] = op;
}

/** Looks an op up by name. */
export function getOp(name: string): OpDef<any> {
  const op = OPS[name];
  if (!op) throw new Error(`unknown op '${name}'`);
  return op;
}
