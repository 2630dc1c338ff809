// Device acquisition: adapter naming, limits and features requested, and the no-adapter error.
import { describe, expect, it } from 'vitest';
import { createGpu, GpuUnavailableError } from '../src/gpu/device.js';
import { testGpu } from './gpu.js';

describe('createGpu', () => {
  it('names the adapter and marks SwiftShader as software', async () => {
    const { gpu } = await testGpu();
    expect(gpu.adapterName).toMatch(/swiftshader/i);
    expect(gpu.isSoftware).toBe(true);
  });

  it("requests the adapter's own limits and its optional features", async () => {
    const { gpu } = await testGpu();
    for (const key of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup'] as const)
      expect(gpu.limits[key]).toBe(gpu.adapter.limits[key]);
    for (const f of ['shader-f16', 'subgroups', 'timestamp-query']) expect(gpu.features.has(f)).toBe(gpu.adapter.features.has(f));
  });

  it('leaves features off on request, to exercise fallbacks', async () => {
    const gpu = await createGpu({ forceSoftware: true, disableFeatures: ['timestamp-query', 'subgroups'] });
    try {
      expect(gpu.features.has('timestamp-query')).toBe(false);
      expect(gpu.features.has('subgroups')).toBe(false);
    } finally {
      gpu.destroy();
    }
  });

  it('says what to install when there is no adapter', async () => {
    const p = createGpu({ forceSoftware: true, allowSoftware: false });
    await expect(p).rejects.toThrowError(GpuUnavailableError);
    await expect(createGpu({ forceSoftware: true, allowSoftware: false })).rejects.toThrowError(/libvulkan1.*chromium/s);
  });
});
