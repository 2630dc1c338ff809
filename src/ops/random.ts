/** Seeded random inputs for tests and benches (mulberry32): reproducible, uniform in [lo, hi). */

/** A seeded generator of floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi) from a generator. */
export function uniform(rand: () => number, n: number, lo = -1, hi = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * rand();
  return out;
}

/** Normalised mean squared error sum((a - ref)^2) / sum(ref^2), in double precision. */
export function nmse(a: Float32Array, ref: Float32Array): number {
  if (a.length !== ref.length) return Infinity;
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - ref[i]!;
    num += d * d;
    den += ref[i]! * ref[i]!;
  }
  if (!Number.isFinite(num)) return Infinity;
  return den === 0 ? (num === 0 ? 0 : Infinity) : num / den;
}
