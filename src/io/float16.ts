/**
 * IEEE binary16 and bfloat16 conversions of single numbers (and a lookup table of every f16 value): what the
 * safetensors reader and writer (F16/BF16 tensors) and the ops' f16 emulation (src/ops/half.ts) both use.
 */

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Decodes IEEE 754 binary16 bits (0..0xffff) to a number; handles subnormals, ±Inf and NaN. */
export function f16ToF32(u16: number): number {
  const h = u16 & 0xffff;
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/**
 * Encodes a number as IEEE 754 binary16 bits, rounding to nearest, ties to even. Values beyond
 * the f16 range become ±Inf, tiny values become subnormals or ±0, NaN stays a (quiet) NaN.
 * A float64 input is first rounded to float32; since float32 has 24 >= 2×11+2 significand bits,
 * that double rounding never changes the result.
 */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // subnormal half (or zero): half mantissa = m * 2^(e - 14)
    if (e < -10) return sign; // below half the smallest subnormal (2^-25): rounds to ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half; // a carry into bit 10 yields the smallest normal, as it should
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // carry may round up to Inf: correct
  return half;
}

/** Decodes bfloat16 bits (0..0xffff) to a number (exact: bf16 is the top half of an f32). */
export function bf16ToF32(u16: number): number {
  scratchU32[0] = (u16 & 0xffff) << 16;
  return scratchF32[0]!;
}

/**
 * Encodes a number as bfloat16 bits, rounding to nearest, ties to even (the float64 input is
 * rounded to float32 first, which cannot change the result). Overflow gives ±Inf; NaN stays NaN.
 */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return Math.floor((x + 0x7fff + ((x >>> 16) & 1)) / 0x10000) & 0xffff;
}

let f16Table: Float32Array | undefined;
/** All 65536 f16 values as f32 (256 KiB), built on first use. */
export function f16LookupTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}
