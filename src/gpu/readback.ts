/**
 * Readback that never fabricates: a failed map, a lost device or a GPU error during the work raises a
 * GpuDeviceError; nothing returns zeros in place of a result.
 */
import { GpuDeviceError, type GpuContext } from './device.js';
import { outOfMemoryError } from './limits.js';
import { settle } from './wait.js';

/** One region to read back. */
export interface ReadRegion {
  buffer: GPUBuffer;
  byteOffset: number;
  byteLength: number;
}

/** Appends copies of `regions` into new mappable staging buffers to `encoder`; map them after submitting. */
export function encodeReadback(device: GPUDevice, encoder: GPUCommandEncoder, regions: ReadRegion[]): GPUBuffer[] {
  return regions.map((r) => {
    const size = Math.max(4, Math.ceil(r.byteLength / 4) * 4);
    const b = device.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'readback' });
    encoder.copyBufferToBuffer(r.buffer, r.byteOffset, b, 0, size);
    return b;
  });
}

/**
 * Maps staging buffers (already filled by submitted work) and copies them out. Then they are unmapped and handed
 * to `release` for reuse when given, else destroyed; after a failure they are always destroyed. `boundMs`: how long
 * the host thread's sleeping wait on a software adapter lasts at most (src/gpu/wait.ts; the caller's watchdog bound).
 */
export async function mapStaging(gpu: GpuContext, staging: GPUBuffer[], release?: (buffers: GPUBuffer[]) => void, boundMs = Infinity): Promise<Float32Array[]> {
  let ok = false;
  try {
    const lost = gpu.lost.then((r) => {
      throw new GpuDeviceError(`readback failed: ${r}`);
    });
    lost.catch(() => {});
    await settle(gpu, Promise.race([Promise.all(staging.map((b) => b.mapAsync(GPUMapMode.READ))), lost]), boundMs);
    const out = staging.map((b) => new Float32Array(b.getMappedRange().slice(0)));
    if (release) {
      for (const b of staging) b.unmap();
      ok = true;
      release(staging);
    }
    return out;
  } catch (e) {
    if (e instanceof GpuDeviceError) throw e;
    const why = gpu.lostReason ? gpu.lostReason : (e as Error).message;
    throw new GpuDeviceError(`readback failed, no result: ${why}`);
  } finally {
    if (!ok)
      for (const b of staging) {
        try {
          b.destroy();
        } catch {
          /* already gone with the device */
        }
      }
  }
}

/**
 * Runs `fn` inside validation, out-of-memory and internal error scopes and raises the first error as a
 * GpuDeviceError, so a failed submit never passes silently.
 */
export async function withErrorScopes<T>(device: GPUDevice, what: string, fn: () => T): Promise<T> {
  const { result, checked } = withErrorScopesDeferred(device, what, fn);
  await checked;
  return result;
}

/**
 * Like {@link withErrorScopes}, but returns at once: `checked` settles when the scopes are popped (rejecting
 * with a GpuDeviceError on an error), so the caller can start waiting for the work (a map) in the meantime. The
 * caller must await `checked` before trusting anything the work produced. If `fn` throws, the scopes are popped
 * and the error is rethrown.
 */
export function withErrorScopesDeferred<T>(device: GPUDevice, what: string, fn: () => T): { result: T; checked: Promise<void> } {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  device.pushErrorScope('internal');
  let result: T;
  // Popped in LIFO order, all at once: the three answers arrive together.
  const pop = () => Promise.all([device.popErrorScope(), device.popErrorScope(), device.popErrorScope()]);
  try {
    result = fn();
  } catch (e) {
    void pop().catch(() => {});
    throw e;
  }
  const checked = pop().then(([internal, validation, oom]) => {
    if (oom && !validation) throw outOfMemoryError(what, 0, '', oom.message);
    const err = validation ?? oom ?? internal;
    if (err) throw new GpuDeviceError(`${what}: ${err.constructor?.name ?? 'GPUError'}: ${err.message}`);
  });
  return { result, checked };
}
