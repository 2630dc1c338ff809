/** Bench inputs, shared by the engine's runs and the ONNX Runtime Web child process. */

/** Synthetic windowed slices [B, 1, H, W] in [0, 1]: a body ellipse with two darker lungs and a little noise. */
export function syntheticWindowed(batch: number, h: number, w: number): Float32Array {
  const out = new Float32Array(batch * h * w);
  let seed = 12345;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
  for (let b = 0; b < batch; b++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const v = h > 1 ? (2 * y) / (h - 1) - 1 : 0;
        const u = w > 1 ? (2 * x) / (w - 1) - 1 : 0;
        const body = (v / 0.85) ** 2 + (u / 0.95) ** 2 <= 1 ? 1 : 0;
        const lung = (v / 0.55) ** 2 + ((u - 0.42) / 0.33) ** 2 <= 1 || (v / 0.55) ** 2 + ((u + 0.42) / 0.33) ** 2 <= 1 ? 1 : 0;
        out[(b * h + y) * w + x] = Math.min(1, Math.max(0, 0.55 * body - 0.45 * lung + 0.04 * rnd()));
      }
  return out;
}
