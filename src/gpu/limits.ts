/**
 * The adapter's limits, checked before anything is made on the device: a graph whose buffers or bindings exceed
 * maxBufferSize / maxStorageBufferBindingSize, or whose buffers the device cannot allocate (out of memory), is
 * refused with a {@link GpuLimitError} naming the limit, the size needed, the device's value and what to change,
 * never with a raw WebGPU validation message.
 */
import { GpuDeviceError } from './device.js';

/**
 * A graph, batch or input size beyond what the adapter offers (a device limit, or memory at buffer creation).
 * A GpuDeviceError (the CLI's GPU exit code 5); `name` is exactly 'GpuLimitError' (the web page tells it apart
 * by that name).
 */
export class GpuLimitError extends GpuDeviceError {
  override name = 'GpuLimitError';
  /**
   * @param message one line: the limit, the size needed, the device's value and what to change.
   * @param limit the limit's WebGPU name (`maxStorageBufferBindingSize`, `maxBufferSize`) or `out-of-memory`.
   * @param needed bytes needed (0 when unknown, as for out of memory).
   * @param available the device's value in bytes (0 when unknown).
   */
  constructor(
    message: string,
    readonly limit: string,
    readonly needed: number,
    readonly available: number,
  ) {
    super(message);
  }
}

/** A buffer the GPU side will make: its bytes, and whether it is bound whole as a storage binding. */
export interface BufferNeed {
  /** What it holds, for the message (`tensor 'x' [1, 2, 64, 64]`, `the activation arena`). */
  what: string;
  bytes: number;
  /** 'buffer': checked against maxBufferSize; 'binding': against maxStorageBufferBindingSize (and maxBufferSize). */
  kind: 'buffer' | 'binding';
}

/** The default advice of a {@link GpuLimitError}: what a caller can change. */
export const LIMIT_HINT = 'use a smaller batch or input size';

/** Bytes as `N bytes (X MiB)`. */
export function formatBytes(n: number): string {
  return `${n} bytes (${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 3 : 1)} MiB)`;
}

/**
 * The first of `needs` that exceeds the device's limits, as a {@link GpuLimitError} (not thrown), or null when all
 * fit. The message names what needs it, the limit, the size needed, the device's value and `hint`.
 */
export function findLimitError(needs: readonly BufferNeed[], limits: { readonly maxBufferSize: number; readonly maxStorageBufferBindingSize: number }, adapterName: string, hint = LIMIT_HINT): GpuLimitError | null {
  for (const n of needs) {
    const checks: Array<[string, number]> = n.kind === 'binding' ? [['maxStorageBufferBindingSize', limits.maxStorageBufferBindingSize], ['maxBufferSize', limits.maxBufferSize]] : [['maxBufferSize', limits.maxBufferSize]];
    for (const [limit, value] of checks)
      if (n.bytes > value)
        return new GpuLimitError(`${n.what} needs ${formatBytes(n.bytes)}, more than this device's ${limit} (${formatBytes(value)}) on ${adapterName}: ${hint}`, limit, n.bytes, value);
  }
  return null;
}

/**
 * An out-of-memory error at buffer creation as a {@link GpuLimitError}: what was being made (`creating the graph's
 * buffers`), the bytes asked for in all (0: unknown), the device's own message.
 */
export function outOfMemoryError(what: string, bytes: number, adapterName: string, deviceMessage: string, hint = LIMIT_HINT): GpuLimitError {
  const size = bytes > 0 ? ` (${formatBytes(bytes)} in all)` : '';
  return new GpuLimitError(`the device ran out of memory ${what}${size}${adapterName ? ` on ${adapterName}` : ''} (${deviceMessage.replace(/\s+/g, ' ').trim() || 'out of memory'}): ${hint}`, 'out-of-memory', bytes, 0);
}
