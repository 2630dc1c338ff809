/// <reference path="./webgpu-globals.ts" preserve="true" />
/**
 * covidct/testing: what tests and benches of the engine use, kept out of the main entry (which is the product:
 * GPU context, weights, engine, readers and writers, reports). The op test harness, seeded random inputs, the
 * NMSE measure, the CPU reference of a graph, a small demo network, and the internals a test looks into (the op
 * registry, the fusion passes, the memory plan, the WGSL preprocessor and kernel library).
 * @module
 */
export { runOp } from './ops/run.js';
export { mulberry32, uniform, nmse } from './ops/random.js';
export { demoNet } from './models/demo.js';
export { runGraphOnCpu } from './graph/cpu.js';
export { OPS, getOp, type OpName, type AttrsOf } from './ops/registry.js';
export { DEFAULT_TOLERANCE, type OpDef, type OpContext, type RefContext, type TestCase, type View } from './ops/op.js';
export type { DispatchSpec } from './gpu/spec.js';
export { fuseGraph } from './graph/fuse.js';
export { planMemory, findOverlaps, type MemoryPlan } from './graph/plan.js';
export { compileProgram, type GraphProgram } from './graph/compile.js';
export { preprocessWgsl, WgslPreprocessError, type DefineValue } from './wgsl/preprocess.js';
export { KERNELS } from './wgsl/kernels.js';
export { kernelText } from './gpu/pipelines.js';
