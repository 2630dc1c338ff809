/**
 * Per-dispatch uniform slots in one arena buffer: every dispatch of a forward pass gets its own slot, so one
 * command encoder can carry all of them without one uniform write clobbering another (ggml-webgpu's scheme).
 */
import type { ParamWord } from './spec.js';

/** Bytes per slot: the minimum uniform-buffer offset alignment WebGPU guarantees. */
export const UNIFORM_SLOT_BYTES = 256;
/** Largest number of 32-bit words a dispatch's Params struct may hold. */
export const MAX_PARAM_WORDS = UNIFORM_SLOT_BYTES / 4;

/** Encodes uniform words into `out` at word offset `at`. */
export function encodeParams(words: ParamWord[], out: ArrayBuffer, byteOffset: number): void {
  if (words.length > MAX_PARAM_WORDS) throw new RangeError(`a dispatch has ${words.length} uniform words; the limit is ${MAX_PARAM_WORDS}`);
  const u = new Uint32Array(out, byteOffset, MAX_PARAM_WORDS);
  const f = new Float32Array(out, byteOffset, MAX_PARAM_WORDS);
  const s = new Int32Array(out, byteOffset, MAX_PARAM_WORDS);
  words.forEach((w, i) => {
    if (typeof w === 'number') {
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new RangeError(`uniform word ${i} = ${w} is not a u32`);
      u[i] = w;
    } else if ('f32' in w) f[i] = w.f32;
    else s[i] = w.i32;
  });
}

/** An arena of uniform slots, written once with `queue.writeBuffer` before the work that reads it. */
export class UniformArena {
  readonly buffer: GPUBuffer;
  private readonly data: ArrayBuffer;
  private used = 0;

  constructor(
    private readonly device: GPUDevice,
    readonly slots: number,
    label = 'uniforms',
  ) {
    const bytes = Math.max(1, slots) * UNIFORM_SLOT_BYTES;
    this.buffer = device.createBuffer({ size: bytes, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label });
    this.data = new ArrayBuffer(bytes);
  }

  /** Stores a dispatch's words in the next slot and returns its byte offset. */
  push(words: ParamWord[]): number {
    if (this.used >= this.slots) throw new RangeError(`uniform arena full (${this.slots} slots)`);
    const off = this.used * UNIFORM_SLOT_BYTES;
    encodeParams(words, this.data, off);
    this.used++;
    return off;
  }

  /** Uploads every slot. */
  upload(): void {
    this.device.queue.writeBuffer(this.buffer, 0, this.data, 0, Math.max(1, this.used) * UNIFORM_SLOT_BYTES);
  }

  destroy(): void {
    this.buffer.destroy();
  }
}
