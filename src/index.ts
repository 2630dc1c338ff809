/// <reference path="./webgpu-globals.ts" preserve="true" />
/**
 * covidct: a WebGPU compute-kernel engine for two-stage chest-CT analysis, in Node (dawn.node) and browsers.
 * @module
 */
// The GPU: a context (dawn.node in Node, navigator.gpu in a browser), its errors, a pipeline cache graphs share.
export { createGpu, GpuUnavailableError, GpuDeviceError, SWIFTSHADER_ICD, type GpuContext, type GpuOptions } from './gpu/device.js';
export { GpuLimitError } from './gpu/limits.js';
export { GpuTimeoutError, DEFAULT_GPU_TIMEOUT_MS } from './gpu/watchdog.js';
export { PipelineCache, KernelCompileError } from './gpu/pipelines.js';
export { f16MatmulSupport, type GpuCaps } from './gpu/caps.js';
// Graphs of ops, compiled for a device and run (the test harness and internals: covidct/testing).
export { Graph, GraphError, type Tensor, type TensorInfo, type NodeInfo } from './graph/ir.js';
export { GraphBuilder } from './graph/builder.js';
export { ShapeError, numel, type Shape } from './ops/op.js';
export type { OpName, AttrsOf } from './ops/registry.js';
export type { FusionReport } from './graph/fuse.js';
export { CompiledGraph, compileGraph, type CompileOptions, type RunResult, type KernelTiming, type GraphStats } from './graph/executor.js';
// Bytes in and out: safetensors (weights, CT volumes, results).
export { parseSafetensors, readSafetensorsFile, serializeSafetensors, writeSafetensorsFile, SafetensorsError, SafetensorsFile, type TensorInfo as SafetensorsTensorInfo, type TensorToWrite } from './io/safetensors.js';
// The two-stage model: building, loading weights exported from PyTorch, running, reporting.
export { TwoStageEngine, type EngineOptions, type TwoStageResult } from './analysis/engine.js';
export { openWeights, readWeightsFile, loadPipeline, bindWeights, readConfig, WeightsError, type WeightIssue } from './models/load.js';
export { buildPipeline, buildStage1, buildStage2, buildTwoStage, buildPatientHead, runPatientHead, type Pipeline, type StageShape, type PatientResult } from './models/pipeline.js';
export { defaultModelConfig, defaultPreprocessConfig, tinyModelConfig, parseModelConfig, parsePreprocessConfig, ConfigError, type ModelConfig, type PreprocessConfig } from './models/config.js';
export { preprocessHU, windowHU, windowInto, huFromStored, normalise, lungMask, lungArea, maskedInput } from './analysis/preprocess.js';
export { efficientnet, EFFICIENTNET_VARIANTS, type EfficientNetVariant } from './models/efficientnet.js';
export { ModelBuilder, type ModelGraph } from './models/builder.js';
// A scan's analysis (browser-safe: a Volume in, the report, masks, maps and output files out).
export { analyzeVolume, AnalysisAbortedError, MIN_SLICES, type AnalysisEngine, type AnalysisProgress, type AnalysisResult, type AnalyzeOptions } from './analysis/analyze.js';
export { makeOutputFiles, reportBytes, type OutputFile, type OutputOptions } from './analysis/outputs.js';
// DICOM outputs (seg.dcm, sr.dcm, contact_sheet.dcm) for a DICOM input; dcmjs loads on the first call.
export { makeDicomOutputs, makeDicomOutputFiles, type DicomOutputs, type DicomOutputObject } from './analysis/dicom-outputs.js';
export { dicomSource, type DicomSource } from './io/dicom/derived.js';
export { REPORT_SCHEMA, REPORT_SCHEMA_VERSION, SOFTWARE_VERSION, type AnalysisReport, type SliceReport, type PatientReport } from './analysis/report.js';
export { weightsInfo, sha256Hex, type WeightsInfo } from './analysis/weights-info.js';
export { axialGrid, type AxialGrid } from './analysis/grid.js';
export { chestPhantomVolume } from './analysis/phantom.js';
// Scans in and files out (bytes only: no file system, so the browser uses the same readers).
export { ScanError, type ScanErrorKind } from './io/errors.js';
export { readNifti, readNiftiHeader, writeNifti, isNiftiBytes, type NiftiImage, type NiftiHeaderInfo } from './io/nifti.js';
export { scanDicomFiles, chooseSeries, readDicomSeries, describeDicomFile, transferSyntaxName, type DicomScan, type DicomSeries, type DicomFileSource, type DicomFileDescription } from './io/dicom/index.js';
export { PADDING_HU, VolumeError, type Volume, type VolumeSource } from './volume/volume.js';
export { toAxial, AXIAL_AXCODES, type AxialView } from './volume/orient.js';
export { axcodes, lpsToRas, spacingOf, voxelToWorld, type Affine } from './volume/affine.js';
