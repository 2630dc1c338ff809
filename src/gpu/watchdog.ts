/**
 * A time bound on waiting for the GPU: a submission that never completes (a map, an error scope or a staging
 * buffer that never comes back, as on a hung driver) must not hang a cohort run forever. Every wait of a graph run
 * goes through {@link withTimeout}; past the bound it fails with a {@link GpuTimeoutError}.
 */
import { GpuDeviceError } from './device.js';

/** The default bound on one graph run's waits for the GPU: 10 minutes, far above any real run (docs/reliability.md). */
export const DEFAULT_GPU_TIMEOUT_MS = 10 * 60 * 1000;

/** The GPU did not finish within the bound. A GpuDeviceError (the CLI's GPU exit code 5); `name` is 'GpuTimeoutError'. */
export class GpuTimeoutError extends GpuDeviceError {
  override name = 'GpuTimeoutError';
}

/** Checks a timeout option: a positive number of milliseconds (Infinity: no bound). */
export function checkTimeout(ms: number, what = 'gpuTimeoutMs'): number {
  if (typeof ms !== 'number' || !(ms > 0)) throw new RangeError(`${what} must be a positive number of milliseconds, got ${String(ms)}`);
  return ms;
}

/**
 * `p`, or a {@link GpuTimeoutError} naming `what` and the bound when it has not settled within `ms` (then
 * `onTimeout` runs, e.g. to destroy the buffers being mapped so the pending work can settle). Infinity: no bound.
 */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  if (ms === Infinity) return p;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        onTimeout?.();
      } finally {
        reject(new GpuTimeoutError(`${what}: the GPU did not finish within ${ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`} (a hung or lost device, or far more work than expected); the bound is the gpuTimeoutMs option (CLI --gpu-timeout SECONDS)`));
      }
    }, ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}
