// One device per test file (vitest isolates each file's modules), on a software driver for reproducibility:
// Mesa's lavapipe by default (real shader-f16), SwiftShader with COVIDCT_TEST_SOFTWARE=swiftshader (no shader-f16,
// 256 invocations per workgroup: the vitest project 'swiftshader' runs a subset so); or on the hardware adapter
// with COVIDCT_TEST_HARDWARE=1 (Dawn toggles from COVIDCT_TEST_DAWN_FLAGS, e.g.
// enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia for the f16 tests on NVIDIA).
import { createGpu, parseDawnFlags, SOFTWARE_DRIVERS, type GpuContext, type SoftwareDriver } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { describe } from 'vitest';

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

/**
 * The endings of the describe blocks that run on lavapipe in project lavapipe-128, a lavapipe process at 128-bit
 * SIMD, rather than in project lavapipe (512 bits, the engine's default; vitest.config.ts LAVAPIPE_128_TESTS):
 * kernels the engine does not run on lavapipe by default, whose LLVM compile costs several times more at 512 bits
 * and whose results do not depend on the SIMD width (no subgroup builtins): the GPU tiles (tile policy 'auto') and
 * the matrix-unit GEMM with emulated subgroup matrices.
 */
export const LAVAPIPE_128_MARKERS = ['(GPU tiles)', '(matrix units emulated)'] as const;

/** `describe` for such a block: project lavapipe skips it (COVIDCT_TEST_LAVAPIPE_128), every other project runs it. */
export function describeAt128(name: string, body: () => void): void {
  if (!LAVAPIPE_128_MARKERS.some((m) => name.endsWith(m))) throw new Error(`describeAt128: "${name}" must end in one of ${LAVAPIPE_128_MARKERS.join(', ')} (vitest.config.ts selects the blocks by it)`);
  (process.env.COVIDCT_TEST_LAVAPIPE_128 === 'elsewhere' ? describe.skip : describe)(name, body);
}
