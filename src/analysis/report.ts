/**
 * report.json: what one analysis found, in a versioned schema (src/analysis/report.schema.json, JSON Schema
 * draft-07; tests validate every report against it). Stable for scripts: fields are added in minor versions,
 * never renamed or retyped without a major version.
 *
 * Numbers are finite or null: a value that does not exist (the infected fraction of a slice without lung, the
 * patient result when no lung was found) is null, and the object's `reasons` map says why, keyed by the field.
 * Units are in the names (Mm, Mm2, Ml, Pct, Ms).
 * @module
 */
import type { VolumeSource } from '../volume/volume.js';
import type { WeightsInfo } from './weights-info.js';

/** The schema's identifier and version (semver: major changes break readers). */
export const REPORT_SCHEMA = 'covidct-report';
export const REPORT_SCHEMA_VERSION = '1.3.0';

declare const __COVIDCT_VERSION__: string | undefined;
declare const __COVIDCT_BUILD_COMMIT__: string | undefined;

/** The package version embedded at build time (build.mjs), or '0.0.0-dev' when run from sources. */
export const SOFTWARE_VERSION: string = typeof __COVIDCT_VERSION__ === 'string' ? __COVIDCT_VERSION__ : '0.0.0-dev';
/** The commit embedded at build time, or null when run from sources. */
export const SOFTWARE_COMMIT: string | null = typeof __COVIDCT_BUILD_COMMIT__ === 'string' ? __COVIDCT_BUILD_COMMIT__ : null;

/** Null values' reasons, keyed by field name. */
export type Reasons = Record<string, string>;

/** One axial slice of the analysis. */
export interface SliceReport {
  /** Axial slice index (k of the axial view: 0 is the most inferior slice). */
  index: number;
  /** Position of the slice along its normal, mm (RAS, superior positive). */
  positionMm: number;
  /** Lung area on the source grid, mm^2 (lung voxels of the slice x in-plane voxel area). */
  lungAreaMm2: number;
  /** Lung voxels of the slice on the source grid. */
  lungVoxels: number;
  /** Fraction of the slice's lung with infection probability above the threshold; null without lung. */
  infectedFraction: number | null;
  /** Class probabilities, keyed by class name. */
  probabilities: Record<string, number>;
  /** The most probable class. */
  label: string;
  /** Whether the patient head used this slice (lung covers at least lung_area_threshold of it at model size). */
  used: boolean;
  reasons: Reasons;
}

/**
 * Whether the scan is a chest CT, read from the final lung mask (src/analysis/postprocess.ts): where the lungs lie
 * along the body axis, and what the post-processing removed. Since schema 1.1.
 */
export interface ChestReport {
  /** False: no patient class and no involvement (the patient's `reasons.label` says why). */
  isChest: boolean;
  /** Axial slices whose final lung covers at least 1 % of the slice. */
  lungSlices: number;
  /** First and last such slice (axial index, 0 most inferior); null without lung. */
  firstLungSlice: number | null;
  lastLungSlice: number | null;
  /** Those slices times the slice spacing, and the whole scan's slices times it, mm. */
  lungExtentMm: number;
  scanExtentMm: number;
  /** Voxels of stage 1's mask removed outside the body, and as small 3-D components. */
  removedOutsideBodyVoxels: number;
  removedComponentVoxels: number;
  /**
   * Whether the scan shows the lungs whole (since schema 1.3): false when its lowest or highest slice holds at least a
   * quarter of the largest lung slice's lung (src/analysis/postprocess.ts, CUT_END_FRACTION). A chest CT whose lungs
   * are not whole gets no class, no probabilities and no involvement, and `reasons.label` says why. Null without lung.
   */
  lungsWhole?: boolean | null;
  /** Lung voxels on the lowest and on the highest slice over those of the largest lung slice (since 1.3; null without lung). */
  lowerEndLungFraction?: number | null;
  upperEndLungFraction?: number | null;
  reasons: Reasons;
}

/**
 * Whether validation supports the patient answer (since schema 1.2; src/analysis/calibration.ts): the temperature
 * the probabilities were calibrated with and the out-of-distribution score of the patient head's input against the
 * largest score validation supports. `supported` false: the patient has no class, no probabilities, no uncertainty
 * and no involvement, and its `reasons.label` says why.
 */
export interface SupportReport {
  /** Whether the weights carry a calibration (metadata `covidct.calibration`). */
  calibrated: boolean;
  /** Temperature of the patient logits (null: not calibrated). */
  temperature: number | null;
  /** OOD score of this study and the threshold (null: not calibrated, or no patient head run). */
  oodScore: number | null;
  oodThreshold: number | null;
  /** True: the score is within what validation supports; false: "no class"; null: not decided (reasons say why). */
  supported: boolean | null;
  reasons: Reasons;
}

/** The patient-level result. */
export interface PatientReport {
  /** Whether any slice was used (a lung was found). */
  lungFound: boolean;
  label: string | null;
  probabilities: Record<string, number> | null;
  /** Normalised entropy of the probabilities, 0 (certain) .. 1 (uniform); calibrated when `support.calibrated`. */
  uncertainty: number | null;
  slicesUsed: number;
  /** Lung voxels x voxel volume on the source grid, mL. */
  lungVolumeMl: number;
  /** Lung voxels with infection probability above the threshold x voxel volume, mL. */
  infectedVolumeMl: number;
  /** infectedVolumeMl / lungVolumeMl, %; null without lung, when the scan is not a chest CT, and when validation does
   * not support the study (`support.supported` false) or the scan does not show the lungs whole (`chest.lungsWhole` false). */
  lungInvolvementPct: number | null;
  /** The chest check (since schema 1.1; always written by this version). */
  chest?: ChestReport;
  /** Calibration and out-of-distribution check (since schema 1.2; always written by this version). */
  support?: SupportReport;
  reasons: Reasons;
}

/** The whole report (see report.schema.json). */
export interface AnalysisReport {
  schema: typeof REPORT_SCHEMA;
  schemaVersion: string;
  software: { name: 'covidct'; version: string; commit: string | null };
  /** One sentence on what the weights are (trained on what, or untrained), from their metadata. */
  notice: string;
  createdAt: string;
  input: {
    path: string;
    format: VolumeSource['format'];
    description: string;
    seriesUID: string | null;
    transferSyntaxes: string[];
    /** Source grid [nx, ny, nz] and voxel size, mm. */
    dims: [number, number, number];
    spacingMm: [number, number, number];
    /** Axis codes of the source grid in RAS terms (nibabel's aff2axcodes), e.g. 'LPS'. */
    orientation: string;
    space: 'RAS' | 'LPS';
    /** Voxel -> mm, 16 values column-major (wgpu-matrix layout). */
    affine: number[];
    /** The axial view the model saw: dims and which source axis each of its axes reads (negative: flipped). */
    axial: { dims: [number, number, number]; spacingMm: [number, number, number]; sourceAxes: [number, number, number]; flipped: [boolean, boolean, boolean] };
    /** The series asked for (`--series`, a batch list's `series` column); null: the default choice. Since 1.1. */
    seriesRequested?: string | null;
    /**
     * What the input was when it was read, for `batch` to tell a changed input (since 1.1; null without a file
     * system, with the reason): the files (the one file, or every file under the folder, links followed), their
     * bytes, and the SHA-256 of one line per file (path relative to the input, size, modification time in ns,
     * a link's target), see src/node/scan-path.ts inputFingerprint.
     */
    fingerprint?: InputFingerprint | null;
    notes: string[];
    reasons: Reasons;
  };
  weights: WeightsInfo & { reasons: Reasons };
  model: {
    inputSize: [number, number];
    batch: number;
    classNames: string[];
    thresholds: { lung: number; lungArea: number; infection: number };
    window: [number, number];
    /** The arithmetic and activation storage the graph was compiled with (since 1.1). */
    precision?: 'f32' | 'f16';
    storage?: 'f32' | 'f16';
  };
  adapter: { name: string; software: boolean };
  timings: { compileMs: number | null; analysisMs: number; totalMs: number | null; slicesPerSecond: number; reasons: Reasons };
  slices: SliceReport[];
  patient: PatientReport;
}

/** See AnalysisReport.input.fingerprint. */
export interface InputFingerprint {
  files: number;
  bytes: number;
  sha256: string;
}

/** Rounds for JSON (keeps reports small and diffable): `digits` significant decimals, never NaN. */
export function round(x: number, digits = 6): number {
  if (!Number.isFinite(x)) throw new RangeError(`report value is not finite: ${x}`);
  const f = 10 ** digits;
  const r = Math.round(x * f) / f;
  return Object.is(r, -0) ? 0 : r;
}

/** Normalised entropy of a probability vector (0 certain, 1 uniform). */
export function normalisedEntropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i]! > 0) h -= p[i]! * Math.log(p[i]!);
  return p.length > 1 ? Math.min(1, Math.max(0, h / Math.log(p.length))) : 0;
}

/** Class probabilities as a { name: p } record, rounded. */
export function byClass(names: readonly string[], p: ArrayLike<number>): Record<string, number> {
  return Object.fromEntries(names.map((n, i) => [n, round(p[i]!)]));
}

/** Index of the largest value. */
export function argmax(p: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[b]!) b = i;
  return b;
}

/**
 * Walks a report and returns the path of every number that is not finite (an empty list for a good report):
 * the check the writers and tests use so that no NaN or Infinity reaches report.json.
 */
export function nonFinitePaths(x: unknown, path = '$'): string[] {
  if (typeof x === 'number') return Number.isFinite(x) ? [] : [path];
  if (Array.isArray(x)) return x.flatMap((v, i) => nonFinitePaths(v, `${path}[${i}]`));
  if (x && typeof x === 'object') return Object.entries(x).flatMap(([k, v]) => nonFinitePaths(v, `${path}.${k}`));
  return [];
}
