/** IEEE binary16 rounding on the CPU, for references that emulate what f16 kernels compute. */
import { f16ToF32, f32ToF16 } from '../io/float16.js';

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
  const n = values.length;
  const words = new Uint32Array(halfWords(n));
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  for (let i = 0; i < n; i += 2) words[i >> 1] = halfBits(bits[i]!, values, i) | (i + 1 < n ? halfBits(bits[i + 1]!, values, i + 1) << 16 : 0);
  return words;
}

/**
 * f16 bits of the f32 with bits `x` (element i of `values`), rounded to nearest even: inline for results that are
 * normal halves (the bulk of weights and activations: a graph compile packs tens of millions), f32ToF16 otherwise.
 */
function halfBits(x: number, values: Float32Array, i: number): number {
  const exp = (x >>> 23) & 0xff;
  if (exp <= 112 || exp >= 142) return f32ToF16(values[i]!); // zero, subnormal, near or past the top, Inf, NaN
  const mant = x & 0x7fffff;
  const h = ((x >>> 16) & 0x8000) | ((exp - 112) << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  return rem > 0x1000 || (rem === 0x1000 && h & 1) ? h + 1 : h;
}

/** Unpacks the first `elements` halves of packed f16 words to f32 (the inverse of {@link packHalf}). */
export function unpackHalf(words: Uint32Array, elements: number): Float32Array {
  const out = new Float32Array(elements);
  for (let i = 0; i < elements; i++) out[i] = f16ToF32(words[i >> 1]! >>> ((i & 1) * 16));
  return out;
}
