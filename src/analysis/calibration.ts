/**
 * No answer the model cannot back: the patient head's temperature and out-of-distribution (OOD) score, read from the
 * weights file's metadata key `covidct.calibration` (written by weights/calibrate.py, which computes the same
 * things in PyTorch; weights/README.md "The classifier on real CT").
 *
 * - **Calibrated probabilities**: softmax(logits / T), T fitted on validation studies (temperature scaling). The
 *   label (the most probable class) is the same as without T; the probabilities and the uncertainty (their
 *   normalised entropy) are the calibrated ones.
 * - **OOD score** on the patient head's input, the pooled feature p = concat(mean, max) of the used slices'
 *   embeddings: score(p) = min over classes c of |W p - m_c|^2 / d, with W [d, D] and the projected class means
 *   m_c [K, d] from the file (a shared-covariance Mahalanobis distance, fitted on training studies). All in float64
 *   from the decimal numbers of the metadata, as weights/calibrate.py computes it.
 * - **Supported**: score <= threshold, the threshold a quantile of the validation studies' scores. Above it the
 *   study is unlike what validation covered, and the patient result is "no class" with the reason
 *   (src/analysis/analyze.ts).
 *
 * Weights without `covidct.calibration` (older files, random weights) give plain softmax probabilities and no OOD
 * decision; the report says so.
 * @module
 */

/** The metadata key weights/calibrate.py writes. */
export const CALIBRATION_KEY = 'covidct.calibration';

/** A weights file's calibration, ready to apply. */
export interface Calibration {
  /** Temperature T > 0 of the patient logits. */
  temperature: number;
  /** Projection W, row-major [dims, features]. */
  projection: Float64Array;
  /** Projected class means, row-major [classes, dims]. */
  classMeans: Float64Array;
  dims: number;
  features: number;
  classes: number;
  /** Largest supported score (the validation quantile {@link quantile}). */
  threshold: number;
  quantile: number;
  /** Validation studies the threshold and T were chosen on (0 when the file does not say). */
  validationStudies: number;
}

/** A malformed `covidct.calibration` (names the problem). */
export class CalibrationError extends Error {
  override name = 'CalibrationError';
}

function finite(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new CalibrationError(`${CALIBRATION_KEY}: ${what} is not a finite number`);
  return x;
}

function matrix(x: unknown, rows: number, cols: number, what: string): Float64Array {
  if (!Array.isArray(x) || x.length !== rows) throw new CalibrationError(`${CALIBRATION_KEY}: ${what} must have ${rows} rows`);
  const out = new Float64Array(rows * cols);
  x.forEach((row: unknown, i) => {
    if (!Array.isArray(row) || row.length !== cols) throw new CalibrationError(`${CALIBRATION_KEY}: ${what} row ${i} must have ${cols} values`);
    row.forEach((v: unknown, j) => (out[i * cols + j] = finite(v, `${what}[${i}][${j}]`)));
  });
  return out;
}

/**
 * Reads the calibration of a weights file: null when the metadata has none.
 * @param features the patient head's input size (2 x the slice embedding size); undefined: taken from the file.
 * @param classes the number of classes.
 * @throws {CalibrationError} when the key is present but malformed or does not fit the model.
 */
export function readCalibration(metadata: Readonly<Record<string, string>>, features: number | undefined, classes: number): Calibration | null {
  const raw = metadata[CALIBRATION_KEY];
  if (raw === undefined || raw.trim() === '') return null;
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(raw) as Record<string, unknown>;
  } catch (e) {
    throw new CalibrationError(`${CALIBRATION_KEY}: not JSON (${(e as Error).message})`);
  }
  if (!c || typeof c !== 'object') throw new CalibrationError(`${CALIBRATION_KEY}: not a JSON object`);
  if (c.version !== 1) throw new CalibrationError(`${CALIBRATION_KEY}: version ${JSON.stringify(c.version)}, this software reads version 1`);
  const temperature = finite(c.temperature, 'temperature');
  if (!(temperature > 0)) throw new CalibrationError(`${CALIBRATION_KEY}: temperature must be > 0, got ${temperature}`);
  const ood = c.ood as Record<string, unknown> | undefined;
  if (!ood || typeof ood !== 'object') throw new CalibrationError(`${CALIBRATION_KEY}: no "ood" object`);
  const dims = finite(ood.dims, 'ood.dims');
  const n = features ?? (Array.isArray(ood.projection) && Array.isArray(ood.projection[0]) ? (ood.projection[0] as unknown[]).length : 0);
  if (!Number.isInteger(dims) || dims < 1 || dims > n) throw new CalibrationError(`${CALIBRATION_KEY}: ood.dims ${dims} must be an integer in 1..${n} (the patient head's input size)`);
  const projection = matrix(ood.projection, dims, n, 'ood.projection');
  const classMeans = matrix(ood.class_means, classes, dims, 'ood.class_means');
  const threshold = finite(ood.threshold, 'ood.threshold');
  const quantile = finite(ood.quantile, 'ood.quantile');
  const val = c.validation as Record<string, unknown> | undefined;
  const validationStudies = val && typeof val.studies === 'number' ? val.studies : 0;
  return { temperature, projection, classMeans, dims, features: n, classes, threshold, quantile, validationStudies };
}

/** softmax(logits / T) in float64. */
export function calibratedProbabilities(logits: ArrayLike<number>, temperature: number): Float64Array {
  const k = logits.length;
  const out = new Float64Array(k);
  let m = -Infinity;
  for (let i = 0; i < k; i++) m = Math.max(m, logits[i]! / temperature);
  let s = 0;
  for (let i = 0; i < k; i++) s += out[i] = Math.exp(logits[i]! / temperature - m);
  for (let i = 0; i < k; i++) out[i]! /= s;
  return out;
}

/** The OOD score of a pooled feature (see the module comment). */
export function oodScore(cal: Calibration, pooled: ArrayLike<number>): number {
  if (pooled.length !== cal.features) throw new RangeError(`oodScore: ${pooled.length} features, the calibration has ${cal.features}`);
  const { dims: d, features: n, projection: w, classMeans: mu } = cal;
  const z = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += w[i * n + j]! * pooled[j]!;
    z[i] = s;
  }
  let best = Infinity;
  for (let c = 0; c < cal.classes; c++) {
    let s = 0;
    for (let i = 0; i < d; i++) {
      const t = z[i]! - mu[c * d + i]!;
      s += t * t;
    }
    best = Math.min(best, s);
  }
  return best / d;
}

/** The patient answer of {@link decide}. */
export interface PatientDecision {
  /** Calibrated probabilities (plain softmax without a calibration). */
  probs: Float64Array;
  /** The temperature applied, or null without a calibration. */
  temperature: number | null;
  /** OOD score and threshold, or null without a calibration. */
  oodScore: number | null;
  oodThreshold: number | null;
  /** Whether validation supports the score; null without a calibration. */
  supported: boolean | null;
}

/** The patient answer from the head's logits and pooled feature (`cal` null: uncalibrated weights). */
export function decide(logits: ArrayLike<number>, pooled: ArrayLike<number>, cal: Calibration | null): PatientDecision {
  if (!cal) return { probs: calibratedProbabilities(logits, 1), temperature: null, oodScore: null, oodThreshold: null, supported: null };
  const score = oodScore(cal, pooled);
  return { probs: calibratedProbabilities(logits, cal.temperature), temperature: cal.temperature, oodScore: score, oodThreshold: cal.threshold, supported: score <= cal.threshold };
}
