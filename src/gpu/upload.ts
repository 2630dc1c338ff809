/**
 * Input upload through a mapped staging buffer: the caller writes the data straight into mapped memory, the
 * run's command encoder copies it to the storage buffer, and the staging buffer is mapped again for the next run
 * while this one works.
 */
import { GpuDeviceError } from './device.js';

/** One graph input's storage buffer and its staging buffer (mapped at creation and between runs). */
export class StagedInput {
  /** The pending re-map after a run; null while the staging buffer is mapped. */
  private ready: Promise<void> | null = null;

  /**
   * @param buffer the storage buffer the kernels read.
   * @param staging a MAP_WRITE | COPY_SRC buffer created mapped, at least as large as the input.
   */
  constructor(
    readonly buffer: GPUBuffer,
    readonly staging: GPUBuffer,
    readonly elements: number,
    readonly shape: readonly number[],
  ) {}

  /** The input's name and the device's lost reason, from the last {@link mapped} call (for write's error). */
  private owner: { name: string; lostReason: () => string | null | undefined } | null = null;

  /** Waits until the staging buffer is mapped again after the last run; `lostReason` names a lost device. */
  async mapped(name: string, lostReason: () => string | null | undefined): Promise<void> {
    this.owner = { name, lostReason };
    if (!this.ready) return;
    try {
      await this.ready;
    } catch (e) {
      throw new GpuDeviceError(`cannot upload input '${name}': ${lostReason() ?? (e as Error).message}`);
    }
    this.ready = null;
  }

  /** Writes `data` into the mapped staging buffer and unmaps it (call after {@link mapped}). */
  write(data: Float32Array): void {
    try {
      new Float32Array(this.staging.getMappedRange(0, data.byteLength)).set(data);
      this.staging.unmap();
    } catch (e) {
      // A device destroyed or lost since the map (its buffers are unmapped with it): a GPU failure, not a bug.
      const { name, lostReason } = this.owner ?? { name: '?', lostReason: () => null };
      throw new GpuDeviceError(`cannot upload input '${name}': ${lostReason() ?? `the staging buffer is no longer mapped (${(e as Error).name}${(e as Error).message ? `: ${(e as Error).message}` : ''}; device destroyed or lost?)`}`);
    }
  }

  /** Encodes the copy of `bytes` from the staging buffer to the storage buffer. */
  encodeCopy(enc: GPUCommandEncoder, bytes: number): void {
    enc.copyBufferToBuffer(this.staging, 0, this.buffer, 0, bytes);
  }

  /** Starts mapping the staging buffer again after the run that copies from it was submitted (or failed). */
  remap(): void {
    const ready = this.staging.mapAsync(GPUMapMode.WRITE);
    ready.catch(() => {});
    this.ready = ready;
  }
}
