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
