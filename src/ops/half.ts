/** IEEE binary16 rounding on the CPU, for references that emulate what f16 kernels compute. */
import { f16ToF32, f32ToF16 } from '../io/safetensors.js';

/**
 * Rounds an f32 value to the nearest IEEE half-precision value (ties to even), as an f32-to-f16 conversion on
 * the GPU does: subnormals below 2^-14, infinity from 65520 up, NaN and zeros kept. (A number that is not an f32
 * value is rounded to f32 first.)
 */
export function roundToF16(x: number): number {
  return f16ToF32(f32ToF16(x));
}

/** Words of a packed-f16 buffer of `elements` halves (two per u32 word). */
export const halfWords = (elements: number): number => Math.ceil(elements / 2);

/**
 * Packs f32 values into f16 pairs, as kernels store a half-storage tensor: element i goes to the low (even i) or
 * high (odd i) 16 bits of word i >> 1, rounded to nearest even (WGSL pack2x16float). An odd count leaves the last
 * high half zero.
 */
export function packHalf(values: Float32Array): Uint32Array {
  const words = new Uint32Array(halfWords(values.length));
  for (let i = 0; i < values.length; i++) words[i >> 1]! |= f32ToF16(values[i]!) << ((i & 1) * 16);
  return words;
}

/** Unpacks the first `elements` halves of packed f16 words to f32 (the inverse of {@link packHalf}). */
export function unpackHalf(words: Uint32Array, elements: number): Float32Array {
  const out = new Float32Array(elements);
  for (let i = 0; i < elements; i++) out[i] = f16ToF32(words[i >> 1]! >>> ((i & 1) * 16));
  return out;
}
