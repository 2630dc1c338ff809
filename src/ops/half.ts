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
