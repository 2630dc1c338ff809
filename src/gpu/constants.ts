/**
 * Constants (weights, prepared operands) uploaded once into as few buffers as the device's maxBufferSize allows,
 * each at a 256-byte aligned offset (minStorageBufferOffsetAlignment).
 */
import type { BufferRange } from './dispatch.js';

/** Offset alignment of a constant inside its buffer. */
export const CONSTANT_ALIGN = 256;

/**
 * Writes `constants` into buffers made by `make` (none larger than `maxBufferSize` unless one constant alone is),
 * in order, and returns where each one landed and the bytes of all the buffers.
 */
export function uploadConstants(
  device: GPUDevice,
  maxBufferSize: number,
  constants: ReadonlyArray<Float32Array | Uint32Array>,
  make: (bytes: number, label: string) => GPUBuffer,
): { ranges: BufferRange[]; bytes: number } {
  const ranges: BufferRange[] = [];
  let bytes = 0;
  let start = 0;
  while (start < constants.length) {
    let end = start;
    let size = 0;
    const offsets: number[] = [];
    while (end < constants.length) {
      const b = Math.ceil((constants[end]!.length * 4) / CONSTANT_ALIGN) * CONSTANT_ALIGN;
      if (size + b > maxBufferSize && end > start) break;
      offsets.push(size);
      size += b;
      end++;
    }
    const buffer = make(size, `weights${start}`);
    for (let i = start; i < end; i++) {
      const data = constants[i]!;
      const offset = offsets[i - start]!;
      device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
      ranges.push({ buffer, offset, size: Math.max(4, data.byteLength) });
    }
    bytes += size;
    start = end;
  }
  return { ranges, bytes };
}
