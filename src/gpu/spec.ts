/**
 * What a dispatch is, in plain data: the kernel file, its defines, the grid, the uniform words and the storage
 * bindings. Ops (src/ops) produce these; src/gpu/dispatch.ts turns them into pipelines and bind groups.
 */
import type { DefineValue } from '../wgsl/preprocess.js';

/** Uniform word: a plain number is a u32, {@link f32} marks an f32, {@link i32} an i32. */
export type ParamWord = number | { f32: number } | { i32: number };

/** Marks a uniform word as f32. */
export const f32 = (v: number): ParamWord => ({ f32: v });
/** Marks a uniform word as i32. */
export const i32 = (v: number): ParamWord => ({ i32: v });

/**
 * A storage buffer a dispatch binds, in `@binding(1)`, `@binding(2)`, ... order (binding 0 is the uniform):
 * an input, an output, a scratch buffer ({@link OpDef.scratch}) or a prepared constant ({@link OpDef.prepare}).
 */
export type Binding = { input: number } | { output: number } | { scratch: number } | { prepared: number };

/** One compute dispatch. */
export interface DispatchSpec {
  /** kernels/<kernel>.wgsl */
  kernel: string;
  /** Entry point (default `main`). */
  entry?: string;
  /** Preprocessor defines; part of the pipeline cache key, so keep shapes out of them (they go in params). */
  defines?: Record<string, DefineValue>;
  /** Workgroup counts (x, y, z). */
  grid: [number, number?, number?];
  /** Uniform words, in the order of the kernel's `Params` struct. */
  params: ParamWord[];
  bindings: Binding[];
  /** Multiply-add count x 2 of this dispatch, for the bench's roofline. */
  flops?: number;
  /** Minimum bytes moved (each input read once, each output written once), for the roofline. */
  bytes?: number;
}
