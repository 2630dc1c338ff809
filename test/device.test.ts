// Device acquisition: adapter choice (hardware, else lavapipe, else SwiftShader; either software driver by name),
// adapter naming, limits and features requested, and the no-adapter error.
import { describe, expect, it } from 'vitest';
import { createGpu, GpuUnavailableError, LAVAPIPE_VECTOR_WIDTH, parseSoftwareOption } from '../src/gpu/device.js';
import { testGpu, testSoftwareDriver } from './gpu.js';

const NAME = { lavapipe: /llvmpipe/i, swiftshader: /swiftshader/i };

describe('createGpu', () => {
  it('names the test adapter and marks a software driver as software', async () => {
    const { gpu } = await testGpu();
    const driver = testSoftwareDriver();
    expect(gpu.adapterName.trim().length, 'adapter name').toBeGreaterThan(0);
    if (driver === null) {
      // COVIDCT_TEST_HARDWARE=1: the machine's hardware adapter, whatever its name, never a software driver
      expect(gpu.isSoftware, `${gpu.adapterName} is a software driver`).toBe(false);
      expect(gpu.adapterName).not.toMatch(/llvmpipe|swiftshader/i);
      return;
    }
    expect(gpu.adapterName).toMatch(NAME[driver]);
    expect(gpu.isSoftware).toBe(true);
  });

  it('forces either software driver by name, and leaves the Vulkan driver variables as they were', async () => {
    const saved = [process.env.VK_ICD_FILENAMES, process.env.VK_DRIVER_FILES];
    delete process.env.VK_ICD_FILENAMES;
    delete process.env.VK_DRIVER_FILES;
    const lvp = await createGpu({ forceSoftware: 'lavapipe' });
    const ss = await createGpu({ forceSoftware: 'swiftshader' });
    const lvp2 = await createGpu({ forceSoftware: 'lavapipe' });
    try {
      expect(lvp.adapterName).toMatch(/llvmpipe/i);
      expect(lvp.isSoftware).toBe(true);
      expect(lvp.features.has('shader-f16')).toBe(true); // Mesa 24+: real f16 arithmetic
      expect(ss.adapterName).toMatch(/swiftshader/i);
      expect(ss.isSoftware).toBe(true);
      expect(ss.features.has('shader-f16')).toBe(false);
      expect(lvp2.adapterName).toMatch(/llvmpipe/i); // the SwiftShader request left nothing behind
      expect([process.env.VK_ICD_FILENAMES, process.env.VK_DRIVER_FILES]).toEqual([undefined, undefined]);
    } finally {
      if (saved[0] !== undefined) process.env.VK_ICD_FILENAMES = saved[0];
      if (saved[1] !== undefined) process.env.VK_DRIVER_FILES = saved[1];
      lvp.destroy();
      ss.destroy();
      lvp2.destroy();
    }
  });

  it('prefers a hardware adapter, else lavapipe, to SwiftShader', async () => {
    const gpu = await createGpu();
    try {
      expect(gpu.adapterName).not.toMatch(/swiftshader/i);
      if (gpu.isSoftware) expect(gpu.adapterName).toMatch(/llvmpipe/i);
      const any = await createGpu({ forceSoftware: true });
      expect(any.adapterName).toMatch(/llvmpipe/i);
      any.destroy();
    } finally {
      gpu.destroy();
    }
  });

  it("sets lavapipe's SIMD width to 512 bits with a shader cache of its own in the user's cache folder", async () => {
    const gpu = await createGpu({ forceSoftware: 'lavapipe' });
    try {
      expect(process.env.LP_NATIVE_VECTOR_WIDTH).toBeDefined();
      if (process.env.LP_NATIVE_VECTOR_WIDTH === LAVAPIPE_VECTOR_WIDTH) {
        expect(gpu.subgroupMaxSize).toBe(16); // 512-bit lanes: llvmpipe read the setting
        expect(process.env.MESA_SHADER_CACHE_DIR).toMatch(/covidct-lavapipe-512$/);
        expect(process.env.MESA_SHADER_CACHE_DIR!.startsWith(process.cwd())).toBe(false);
      }
    } finally {
      gpu.destroy();
    }
  });

  it("requests the adapter's own limits and its optional features", async () => {
    const { gpu } = await testGpu();
    for (const key of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup'] as const)
      expect(gpu.limits[key]).toBe(gpu.adapter.limits[key]);
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) expect(gpu.features.has(f)).toBe(gpu.adapter.features.has(f));
  });

  it('leaves features off on request, to exercise fallbacks', async () => {
    const gpu = await createGpu({ forceSoftware: testSoftwareDriver() ?? true, disableFeatures: ['timestamp-query', 'subgroups', 'shader-f16'] });
    try {
      expect(gpu.features.has('timestamp-query')).toBe(false);
      expect(gpu.features.has('subgroups')).toBe(false);
      expect(gpu.features.has('shader-f16')).toBe(false);
    } finally {
      gpu.destroy();
    }
  });

  it('refuses a software adapter when allowSoftware is false', async () => {
    const outcome = await createGpu({ allowSoftware: false }).then(
      (gpu) => {
        gpu.destroy();
        return gpu.isSoftware ? `software ${gpu.adapterName}` : 'hardware';
      },
      (e: Error) => e,
    );
    if (outcome instanceof Error) {
      expect(outcome).toBeInstanceOf(GpuUnavailableError);
      // not forced: whichever software driver the default adapter is
      expect(outcome.message).toMatch(/software drivers are disabled.*Tried: the default adapter \(.*(llvmpipe|swiftshader).*\) is software/is);
    } else expect(outcome).toBe('hardware');
  });

  it('says what to install when there is no adapter', async () => {
    const p = createGpu({ forceSoftware: true, allowSoftware: false });
    await expect(p).rejects.toThrowError(GpuUnavailableError);
    await expect(createGpu({ forceSoftware: true, allowSoftware: false })).rejects.toThrowError(/libvulkan1.*mesa-vulkan-drivers.*bookworm-backports.*chromium/s);
  });
});

describe('parseSoftwareOption', () => {
  it('reads --software, --software=lavapipe and --software=swiftshader, and refuses anything else', () => {
    expect(parseSoftwareOption(undefined)).toBe(false);
    expect(parseSoftwareOption('true')).toBe(true);
    expect(parseSoftwareOption('lavapipe')).toBe('lavapipe');
    expect(parseSoftwareOption('swiftshader')).toBe('swiftshader');
    expect(() => parseSoftwareOption('analyze')).toThrowError(/--software .*lavapipe, swiftshader.*'analyze'/);
  });
});
