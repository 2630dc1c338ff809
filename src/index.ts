/**
 * covidct: a WebGPU compute-kernel engine for two-stage chest-CT analysis, in Node (dawn.node) and browsers.
 * @module
 */
export { createGpu, GpuUnavailableError, GpuDeviceError, SWIFTSHADER_ICD, type GpuContext, type GpuOptions } from './gpu/device.js';
export { PipelineCache, KernelCompileError, kernelText } from './gpu/pipelines.js';
export { preprocessWgsl, WgslPreprocessError, type DefineValue } from './wgsl/preprocess.js';
export { KERNELS } from './wgsl/kernels.js';
export { OPS, getOp } from './ops/registry.js';
export { ShapeError, numel, type OpDef, type Shape, type View, type DispatchSpec, type TestCase } from './ops/op.js';
export { runOp } from './ops/run.js';
export { mulberry32, uniform, nmse } from './ops/random.js';
export { Graph, GraphError, type Tensor, type TensorInfo, type NodeInfo } from './graph/ir.js';
export { GraphBuilder } from './graph/builder.js';
export { runGraphOnCpu } from './graph/cpu.js';
export { demoNet } from './models/demo.js';
export { fuseGraph, type FusionReport } from './graph/fuse.js';
export { planMemory, findOverlaps, type MemoryPlan } from './graph/plan.js';
export { CompiledGraph, compileGraph, type CompileOptions, type RunResult, type KernelTiming, type GraphStats } from './graph/executor.js';
export { parseSafetensors, serializeSafetensors, SafetensorsError, type SafetensorsFile } from './io/safetensors.js';
// The two-stage model: building, loading weights exported from PyTorch, running, reporting.
export { TwoStageEngine, summarise, type EngineOptions, type TwoStageResult, type TwoStageReport } from './analysis/engine.js';
export { openWeights, readWeightsFile, loadPipeline, bindWeights, readConfig, WeightsError, type WeightIssue } from './models/load.js';
export { buildPipeline, buildStage1, buildStage2, buildTwoStage, buildPatientHead, runPatientHead, type Pipeline, type StageShape, type PatientResult } from './models/pipeline.js';
export { defaultModelConfig, defaultPreprocessConfig, tinyModelConfig, parseModelConfig, parsePreprocessConfig, ConfigError, type ModelConfig, type PreprocessConfig } from './models/config.js';
export { preprocessHU, windowHU, huFromStored, normalise, lungMask, lungArea, maskedInput } from './analysis/preprocess.js';
export { efficientnet, EFFICIENTNET_VARIANTS, type EfficientNetVariant } from './models/efficientnet.js';
export { ModelBuilder, type ModelGraph } from './models/builder.js';
