/** IEEE binary16 rounding on the CPU, for references that emulate what f16 kernels compute. */

/**
 * Rounds a number to the nearest IEEE half-precision value (ties to even), as an f32-to-f16 conversion on the GPU
 * does: subnormals below 2^-14, infinity from 65520 up, NaN and zeros kept.
 */
export function roundToF16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const a = Math.abs(x);
  if (a >= 65520) return x > 0 ? Infinity : -Infinity;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const q = 2 ** (Math.max(e, -14) - 10); // spacing of f16 values around a
  const m = a / q; // exact: q is a power of two
  let f = Math.floor(m);
  const d = m - f;
  if (d > 0.5 || (d === 0.5 && f % 2 === 1)) f += 1;
  return Math.sign(x) * f * q;
}
