// One device for the whole test run (tests run in a single fork), on SwiftShader for reproducibility.
import { createGpu, type GpuContext } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';

let shared: Promise<{ gpu: GpuContext; cache: PipelineCache }> | null = null;

/** The shared test device and pipeline cache. */
export function testGpu(): Promise<{ gpu: GpuContext; cache: PipelineCache }> {
  if (!shared) {
    shared = createGpu({ forceSoftware: process.env.COVIDCT_TEST_HARDWARE !== '1' }).then((gpu) => ({ gpu, cache: new PipelineCache(gpu.device) }));
  }
  return shared;
}
