// One device for the whole test run (tests run in a single fork), on SwiftShader for reproducibility, or on the
// hardware adapter with COVIDCT_TEST_HARDWARE=1 (Dawn toggles from COVIDCT_TEST_DAWN_FLAGS, e.g.
// enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia for the f16 tests on NVIDIA).
import { createGpu, parseDawnFlags, type GpuContext } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';

let shared: Promise<{ gpu: GpuContext; cache: PipelineCache }> | null = null;

/** The shared test device and pipeline cache. */
export function testGpu(): Promise<{ gpu: GpuContext; cache: PipelineCache }> {
  if (!shared) {
    const flags = process.env.COVIDCT_TEST_DAWN_FLAGS;
    shared = createGpu({ forceSoftware: process.env.COVIDCT_TEST_HARDWARE !== '1', ...(flags ? { dawnFlags: parseDawnFlags(flags) } : {}) }).then((gpu) => ({ gpu, cache: new PipelineCache(gpu.device) }));
  }
  return shared;
}
