// One device per test file (vitest isolates each file's modules), on a software driver for reproducibility:
// Mesa's lavapipe by default (real shader-f16), SwiftShader with COVIDCT_TEST_SOFTWARE=swiftshader (no shader-f16,
// 256 invocations per workgroup: the vitest project 'swiftshader' runs a subset so); or on the hardware adapter
// with COVIDCT_TEST_HARDWARE=1 (Dawn toggles from COVIDCT_TEST_DAWN_FLAGS, e.g.
// enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia for the f16 tests on NVIDIA).
import { createGpu, parseDawnFlags, SOFTWARE_DRIVERS, type GpuContext, type SoftwareDriver } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';

let shared: Promise<{ gpu: GpuContext; cache: PipelineCache }> | null = null;

/** The software driver the tests run on (COVIDCT_TEST_SOFTWARE, default lavapipe); null with COVIDCT_TEST_HARDWARE=1. */
export function testSoftwareDriver(): SoftwareDriver | null {
  if (process.env.COVIDCT_TEST_HARDWARE === '1') return null;
  const d = process.env.COVIDCT_TEST_SOFTWARE ?? 'lavapipe';
  if (!(SOFTWARE_DRIVERS as readonly string[]).includes(d)) throw new Error(`COVIDCT_TEST_SOFTWARE must be one of ${SOFTWARE_DRIVERS.join(', ')}, got '${d}'`);
  return d as SoftwareDriver;
}

/** The shared test device and pipeline cache. */
export function testGpu(): Promise<{ gpu: GpuContext; cache: PipelineCache }> {
  if (!shared) {
    const flags = process.env.COVIDCT_TEST_DAWN_FLAGS;
    shared = createGpu({ forceSoftware: testSoftwareDriver() ?? false, ...(flags ? { dawnFlags: parseDawnFlags(flags) } : {}) }).then((gpu) => ({ gpu, cache: new PipelineCache(gpu.device) }));
  }
  return shared;
}
