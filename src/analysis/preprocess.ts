/**
 * Per-slice preprocessing and the glue between the two stages, as plain TypeScript on the CPU (MODEL.md "Input
 * and preprocessing"; weights/reference/model.py `hu_from_stored`, `window`, `preprocess_hu`, `normalise` and
 * the mask logic of `TwoStageModel.forward`). Arithmetic is float32 step by step like PyTorch's, so results
 * match the reference to rounding. Layouts are NCHW row-major; a "windowed" batch is [B, 1, H, W] in [0, 1].
 */
import type { PreprocessConfig } from '../models/config.js';
import { resizeBatch } from './resize.js';

export { resizeBatch };

const f = Math.fround;

/**
 * DICOM stored values to HU: stored * slope + intercept; pixels equal to `paddingValue` map to padding_hu.
 */
export function huFromStored(stored: ArrayLike<number>, slope: number, intercept: number, pre: PreprocessConfig, paddingValue?: number): Float32Array {
  const out = new Float32Array(stored.length);
  const s = f(slope);
  const b = f(intercept);
  for (let i = 0; i < out.length; i++) {
    const v = f(stored[i]!);
    out[i] = paddingValue !== undefined && v === paddingValue ? pre.padding_hu : f(f(v * s) + b);
  }
  return out;
}

/**
 * The windowing, the one implementation: HU clipped to [window_min, window_max] and scaled to [0, 1],
 * (clamp(hu) - min) / (max - min), float32 step by step as the reference computes it; a NaN (no value) counts
 * as padding, below the window: 0. Writes `out` (which may be `hu` itself) and returns it.
 */
export function windowInto(hu: ArrayLike<number>, pre: PreprocessConfig, out: Float32Array): Float32Array {
  const lo = f(pre.window_min);
  const hi = f(pre.window_max);
  const range = f(pre.window_max - pre.window_min);
  for (let i = 0; i < hu.length; i++) {
    const v = f(hu[i]!);
    out[i] = v !== v ? 0 : f(f(Math.min(Math.max(v, lo), hi) - lo) / range);
  }
  return out;
}

/** {@link windowInto} into a new array: HU to [0, 1] (NaN as padding, 0). */
export function windowHU(hu: ArrayLike<number>, pre: PreprocessConfig): Float32Array {
  return windowInto(hu, pre, new Float32Array(hu.length));
}

/**
 * HU slices [B, 1, H0, W0] -> windowed slices [B, 1, S0, S1] in [0, 1]: window first, then bilinear resize to the
 * model size (`size`, default input_size x input_size).
 */
export function preprocessHU(hu: Float32Array, shape: readonly [number, number, number, number], pre: PreprocessConfig, size: readonly [number, number]): Float32Array {
  return resizeBatch(windowHU(hu, pre), shape, size, pre.resize_align_corners);
}

/** Windowed [B, 1, H, W] -> network input [B, 3, H, W]: replicate, (x - mean[c]) / std[c]. */
export function normalise(windowed: Float32Array, batch: number, pre: PreprocessConfig): Float32Array {
  const hw = windowed.length / batch;
  const out = new Float32Array(batch * 3 * hw);
  for (let n = 0; n < batch; n++)
    for (let c = 0; c < 3; c++) {
      const m = f(pre.mean[c]!);
      const s = f(pre.std[c]!);
      const o = (n * 3 + c) * hw;
      for (let i = 0; i < hw; i++) out[o + i] = f(f(windowed[n * hw + i]! - m) / s);
    }
  return out;
}

/** Lung mask (1 / 0) from the stage-1 probability: prob > lung_threshold. */
export function lungMask(prob: Float32Array, pre: PreprocessConfig): Float32Array {
  const t = pre.lung_threshold;
  return prob.map((p) => (p > t ? 1 : 0));
}

/** Fraction of each slice covered by the mask ([B, 1, H, W] -> [B]), at model input resolution. */
export function lungArea(mask: Float32Array, batch: number): Float32Array {
  const hw = mask.length / batch;
  const out = new Float32Array(batch);
  for (let n = 0; n < batch; n++) {
    let s = 0;
    for (let i = 0; i < hw; i++) s += mask[n * hw + i]!;
    out[n] = s / hw;
  }
  return out;
}

/** Whether each slice is used by the patient head: area >= lung_area_threshold. */
export function sliceUsed(area: Float32Array, pre: PreprocessConfig): boolean[] {
  return Array.from(area, (a) => a >= f(pre.lung_area_threshold));
}

/** Stage-2 input: window where mask > 0, else outside_mask_value, then replicate and normalise. */
export function maskedInput(windowed: Float32Array, mask: Float32Array, batch: number, pre: PreprocessConfig): Float32Array {
  const v = f(pre.outside_mask_value);
  return normalise(windowed.map((w, i) => (mask[i]! > 0 ? w : v)), batch, pre);
}

/** Everything between stage 1 and stage 2 for one batch. */
export interface Stage2Input {
  mask: Float32Array;
  area: Float32Array;
  used: boolean[];
  /** [B, 3, H, W], the stage-2 graph's `cls.input`. */
  input: Float32Array;
}

/** mask, area, slice selection and the stage-2 input from the windowed batch and the stage-1 probability. */
export function stage2Input(windowed: Float32Array, lungProb: Float32Array, batch: number, pre: PreprocessConfig): Stage2Input {
  const mask = lungMask(lungProb, pre);
  const area = lungArea(mask, batch);
  return { mask, area, used: sliceUsed(area, pre), input: maskedInput(windowed, mask, batch, pre) };
}
