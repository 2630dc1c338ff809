/**
 * A Volume through the two-stage engine, streamed: the axial view is read straight out of the source data
 * (src/analysis/grid.ts, no copy of the volume), a batch of slices at a time is windowed, resized to the model
 * input, run on the GPU, and its lung probability and infection map are resized back to each slice's own size
 * and written into masks on the source grid, voxel for voxel. The patient head runs once at the end on all
 * slice embeddings. No file system: Node and the browser share this code.
 *
 * Memory: the host holds the input volume (the caller's), the two outputs on the source grid (lung mask and
 * infection map, 1 byte per voxel each: the map is quantised to 255 steps once, see {@link INFECTION_LEVELS}),
 * per-slice results (a few numbers and one embedding of E floats per slice), and per batch a constant: the
 * batch's windowed slices at model size, the engine's readbacks of that batch, and one slice-sized scratch at
 * source size. For 600 x 512 x 512 from DICOM (Int16, 2 bytes per voxel): 315 MB input + 157 MB mask + 157 MB
 * infection map = 629 MB, plus under 100 MB per batch of 16 at 512 x 512.
 * The GPU holds the compiled graph for one batch: its memory does not depend on the number of slices.
 * @module
 */
import type { Volume } from '../volume/volume.js';
import { VolumeError, voxelCount } from '../volume/volume.js';
import type { TwoStageEngine, TwoStageResult } from './engine.js';
import { axialGrid, axisCodes, readAxialSlice, slicePositionMm, writeAxialSlice, type AxialGrid } from './grid.js';
import { windowInto } from './preprocess.js';
import { resizeSlice } from './resize.js';
import { chestCoverage, postprocessLung } from './postprocess.js';
import { argmax, byClass, normalisedEntropy, REPORT_SCHEMA, REPORT_SCHEMA_VERSION, round, SOFTWARE_COMMIT, SOFTWARE_VERSION, type AnalysisReport, type ChestReport, type InputFingerprint, type PatientReport, type SliceReport, type SupportReport } from './report.js';
import { decide, readCalibration } from './calibration.js';
import { weightsInfo } from './weights-info.js';

/**
 * What the analysis needs of an engine: {@link TwoStageEngine} provides it; tests and embedders may pass another
 * implementation (e.g. a CPU stand-in).
 */
export type AnalysisEngine = Pick<TwoStageEngine, 'preprocess' | 'config' | 'height' | 'width' | 'batch' | 'patientHead'> & Partial<Pick<TwoStageEngine, 'precision' | 'storage'>> & {
  readonly gpu: Pick<TwoStageEngine['gpu'], 'adapterName' | 'isSoftware'>;
  readonly weights: { readonly name: string; readonly metadata: Readonly<Record<string, string>> };
  runWindowed(windowed: Float32Array, opts: { patientHead: false }): Promise<Pick<TwoStageResult, 'lung_prob' | 'infection_prob' | 'slice_probs' | 'slice_embedding' | 'slice_used'>>;
};

/** A progress event: `done` of `total` units of `stage` (slices for 'analyze'). */
export interface AnalysisProgress {
  stage: 'prepare' | 'analyze' | 'finish';
  done: number;
  total: number;
  /** Slices per second so far in 'analyze' (null before the first batch). */
  slicesPerSecond: number | null;
}

/** Options of {@link analyzeVolume}. */
export interface AnalyzeOptions {
  /** Called at the start, after every batch and at the end. */
  onProgress?: (p: AnalysisProgress) => void;
  /** Stops the run before the next batch; the promise rejects with {@link AnalysisAbortedError}. */
  signal?: AbortSignal;
  /** SHA-256 of the weights file (hex), for the report; null (with the reason) when not given. */
  weightsSha256?: string | null;
  /** Time spent compiling the engine, ms, for the report (null when not given). */
  compileMs?: number;
  /** Path of the input as the user named it (default the volume's source.path). */
  inputPath?: string;
  /** The series asked for (null or absent: the default choice), for the report. */
  seriesRequested?: string | null;
  /** What the input files were when read (src/node/scan-path.ts inputFingerprint), for the report; absent: null. */
  inputFingerprint?: InputFingerprint | null;
}

/** What {@link analyzeVolume} returns. */
export interface AnalysisResult {
  report: AnalysisReport;
  /** The analysed volume (as given). */
  volume: Volume;
  /** Lung labels on the source grid (1 lung, 0 not), the volume's layout. */
  lungMask: Uint8Array;
  /**
   * Infection probability on the source grid quantised to 8 bits: the probability is `value / INFECTION_LEVELS`
   * (the nearest step, {@link quantiseProbability}: within 1/510 of the model's map), 0 outside the lung mask.
   * The report's counts (infected voxels, fractions, volumes) are taken from the unquantised probabilities; with
   * the default threshold 0.5 the map thresholded at 0.5 gives the same voxels.
   */
  infection: Uint8Array;
  /** The axial view the model saw. */
  grid: AxialGrid;
}

/** The run was stopped through its AbortSignal. `name` is 'AbortError', as fetch and DOM APIs use. */
export class AnalysisAbortedError extends Error {
  override name = 'AbortError';
  constructor(readonly slicesDone: number, readonly slicesTotal: number) {
    super(`analysis aborted after ${slicesDone} of ${slicesTotal} slices`);
  }
}

/** The infection map's steps: {@link AnalysisResult.infection} holds probability x 255, rounded. */
export const INFECTION_LEVELS = 255;

/**
 * A probability as one of the map's 256 levels: the nearest step of 1/255 (within 1/510), ties rounded down, so
 * that thresholding the map at 0.5 (127.5 steps) counts exactly the voxels the report counts with p > 0.5.
 * Clamped to [0, 1]; NaN gives 0.
 */
export function quantiseProbability(p: number): number {
  const x = Math.min(1, Math.max(0, p)) * INFECTION_LEVELS;
  return x === x ? Math.ceil(x - 0.5) : 0;
}

/** Fewest axial slices a volume must have: one slice is a 2-D image, not a chest CT volume. */
export const MIN_SLICES = 2;

/**
 * The checks a volume must pass to be analysed, made before any GPU work: its data length matches its dims, its
 * axial slices are at least 2 x 2 voxels, and it has at least {@link MIN_SLICES} axial slices (one slice is a 2-D
 * image, not a volume). {@link analyzeVolume} makes them; the CLI's `analyze` and `inspect` call this same
 * function, so inspect's exit code says what analyze would do. Returns the axial view.
 * @throws {VolumeError} saying which check failed.
 */
export function checkAnalyzable(volume: Volume): AxialGrid {
  const n = voxelCount(volume.dims);
  if (volume.data.length !== n) throw new VolumeError(`volume data has ${volume.data.length} values for dims ${volume.dims.join(' x ')}`);
  const grid = axialGrid(volume);
  const [nx, ny, nz] = grid.dims;
  if (nx < 2 || ny < 2) throw new VolumeError(`axial slices of ${nx} x ${ny} voxels are too small to analyse`);
  if (nz < MIN_SLICES) throw new VolumeError(`a 2-D image (${nz} axial slice of ${nx} x ${ny}), not a volume: the analysis needs at least ${MIN_SLICES} slices`);
  return grid;
}

/**
 * Analyses one volume (one patient) with a loaded engine: see the module comment.
 * @throws {VolumeError} for a volume the model cannot take (dims, affine, data length).
 * @throws {AnalysisAbortedError} when `signal` aborts.
 * @throws {GpuDeviceError} from the engine on a GPU failure.
 */
export async function analyzeVolume(engine: AnalysisEngine, volume: Volume, opts: AnalyzeOptions = {}): Promise<AnalysisResult> {
  const grid = checkAnalyzable(volume);
  const n = volume.data.length;
  const [nx, ny, nz] = grid.dims;
  const { signal, onProgress } = opts;
  const pre = engine.preprocess;
  const cfg = engine.config;
  const names = cfg.cls.class_names;
  const k = cfg.cls.num_classes;
  const H = engine.height;
  const W = engine.width;
  const hw = H * W;
  const batch = engine.batch;
  const align = pre.resize_align_corners;
  const checkAbort = (done: number) => {
    if (signal?.aborted) throw new AnalysisAbortedError(done, nz);
  };
  checkAbort(0);
  onProgress?.({ stage: 'prepare', done: 0, total: nz, slicesPerSecond: null });

  const lungMask = new Uint8Array(n);
  const infection = new Uint8Array(n);
  const slicePx = nx * ny;
  const huSlice = new Float32Array(slicePx);
  const back = new Float32Array(slicePx);
  const maskSlice = new Uint8Array(slicePx);
  const infSlice = new Uint8Array(slicePx);
  const windowed = new Float32Array(batch * hw);

  const sliceProbs = new Float32Array(nz * k);
  let embeddings: Float32Array | null = null;
  const used: boolean[] = [];

  const t0 = performance.now();
  for (let start = 0; start < nz; start += batch) {
    checkAbort(start);
    const m = Math.min(batch, nz - start);
    // Window (preprocess.windowInto, the one windowing) then resize to the model input.
    for (let b = 0; b < m; b++) {
      readAxialSlice(grid, volume.data, start + b, huSlice);
      windowInto(huSlice, pre, huSlice);
      resizeSlice(huSlice, ny, nx, H, W, align, windowed.subarray(b * hw, (b + 1) * hw));
    }
    const r = await engine.runWindowed(windowed.subarray(0, m * hw), { patientHead: false });
    const e = r.slice_embedding.length / m;
    embeddings ??= new Float32Array(nz * e);
    embeddings.set(r.slice_embedding, start * e);
    sliceProbs.set(r.slice_probs, start * k);
    for (let b = 0; b < m; b++) {
      const kz = start + b;
      used.push(r.slice_used[b]!);
      // Lung: the probability resized back to the slice's size, thresholded there.
      resizeSlice(r.lung_prob.subarray(b * hw, (b + 1) * hw), H, W, ny, nx, align, back);
      for (let i = 0; i < slicePx; i++) maskSlice[i] = back[i]! > pre.lung_threshold ? 1 : 0;
      // The infection map inside stage 1's mask; state 2 marks an infected lung voxel until postprocessLung counts
      // the voxels that stay in the final mask.
      resizeSlice(r.infection_prob.subarray(b * hw, (b + 1) * hw), H, W, ny, nx, align, back);
      for (let i = 0; i < slicePx; i++) {
        const p = maskSlice[i] ? back[i]! : 0;
        infSlice[i] = quantiseProbability(p);
        if (p > pre.infection_threshold) maskSlice[i] = 2;
      }
      writeAxialSlice(grid, maskSlice, kz, lungMask);
      writeAxialSlice(grid, infSlice, kz, infection);
    }
    const done = start + m;
    const s = (performance.now() - t0) / 1000;
    onProgress?.({ stage: 'analyze', done, total: nz, slicesPerSecond: s > 0 ? done / s : null });
  }
  checkAbort(nz);
  const analysisMs = performance.now() - t0;
  onProgress?.({ stage: 'finish', done: 0, total: 1, slicesPerSecond: analysisMs > 0 ? nz / (analysisMs / 1000) : null });

  // One gated map everywhere: the final lung mask (post-processed) gates the infection map, and every count,
  // figure and output below is taken from these two arrays.
  const post = postprocessLung(grid, volume.data, lungMask, infection);
  const { lungVoxels, infectedVoxels } = post;
  const patientRun = engine.patientHead(embeddings!, used);
  const voxelMm3 = volumeOfVoxel(volume.affine);
  const pixelMm2 = pixelArea(grid.affine);

  const slices: SliceReport[] = [];
  for (let z = 0; z < nz; z++) {
    const p = sliceProbs.subarray(z * k, (z + 1) * k);
    const lung = lungVoxels[z]!;
    const reasons: Record<string, string> = {};
    if (!lung) reasons.infectedFraction = 'no lung in this slice';
    slices.push({
      index: z,
      positionMm: round(slicePositionMm(grid, z), 4),
      lungAreaMm2: round(lung * pixelMm2, 3),
      lungVoxels: lung,
      infectedFraction: lung ? round(infectedVoxels[z]! / lung) : null,
      probabilities: byClass(names, p),
      label: names[argmax(p)]!,
      used: used[z]!,
      reasons,
    });
  }
  let lungTotal = 0;
  let infTotal = 0;
  for (let z = 0; z < nz; z++) {
    lungTotal += lungVoxels[z]!;
    infTotal += infectedVoxels[z]!;
  }
  const lungVolumeMl = (lungTotal * voxelMm3) / 1000;
  const infectedVolumeMl = (infTotal * voxelMm3) / 1000;
  const noLungReason = `no slice has a lung mask covering ${(pre.lung_area_threshold * 100).toFixed(1)}% of the slice at model size: no patient-level result`;
  const cov = chestCoverage(lungVoxels, nx * ny, grid.spacing[2], lungVolumeMl);
  const chest: ChestReport = {
    isChest: cov.isChest,
    lungSlices: cov.lungSlices,
    firstLungSlice: cov.firstLungSlice,
    lastLungSlice: cov.lastLungSlice,
    lungExtentMm: round(cov.lungExtentMm, 3),
    scanExtentMm: round(cov.scanExtentMm, 3),
    removedOutsideBodyVoxels: post.removedOutsideBody,
    removedComponentVoxels: post.removedComponents,
    lungsWhole: cov.lungsWhole,
    lowerEndLungFraction: cov.lowerEndFraction === null ? null : round(cov.lowerEndFraction, 4),
    upperEndLungFraction: cov.upperEndFraction === null ? null : round(cov.upperEndFraction, 4),
    reasons: {
      ...(cov.firstLungSlice === null ? { firstLungSlice: 'no slice has lung', lastLungSlice: 'no slice has lung' } : {}),
      ...(cov.lungsWhole === null ? { lungsWhole: 'no lung voxel on the source grid', lowerEndLungFraction: 'no lung voxel on the source grid', upperEndLungFraction: 'no lung voxel on the source grid' } : {}),
    },
  };
  const notChest = cov.reason;
  // Calibration and the out-of-distribution check (src/analysis/calibration.ts): the probabilities shown are the
  // calibrated ones; a study whose score validation does not support gets no class.
  const cal = readCalibration(engine.weights.metadata, patientRun?.pooled.length, k);
  const noCal = 'the weights carry no calibration (no covidct.calibration in their metadata): plain softmax probabilities, no out-of-distribution check';
  const dec = patientRun && !notChest ? decide(patientRun.logits, patientRun.pooled, cal) : null;
  const notRun = notChest ? notChest : 'no patient-level result (no lung found)';
  const support: SupportReport = {
    calibrated: cal !== null,
    temperature: cal ? round(cal.temperature) : null,
    oodScore: dec?.oodScore != null ? round(dec.oodScore) : null,
    oodThreshold: cal ? round(cal.threshold) : null,
    supported: dec ? dec.supported : null,
    reasons: {
      ...(cal ? {} : { temperature: noCal, oodThreshold: noCal }),
      ...(dec?.oodScore != null ? {} : { oodScore: cal ? notRun : noCal }),
      ...(dec && dec.supported !== null ? {} : { supported: cal ? notRun : noCal }),
    },
  };
  // A chest CT whose lungs continue beyond the scan gets no class (postprocess.ts, CUT_END_FRACTION), before the
  // out-of-distribution check: its score is still reported.
  const unsupported = cov.cutReason
    ? cov.cutReason
    : dec && dec.supported === false
      ? `no class: the scan lies outside what validation supports (out-of-distribution score ${dec.oodScore!.toFixed(3)} above ${cal!.threshold.toFixed(3)}, the ${(cal!.quantile * 100).toFixed(0)}th percentile of ${cal!.validationStudies} validation studies' scores)`
      : null;
  const patient: PatientReport = notChest
    ? {
        lungFound: patientRun !== null,
        label: null,
        probabilities: null,
        uncertainty: null,
        slicesUsed: patientRun?.slicesUsed ?? 0,
        lungVolumeMl: round(lungVolumeMl, 4),
        infectedVolumeMl: round(infectedVolumeMl, 4),
        lungInvolvementPct: null,
        chest,
        support,
        reasons: { label: notChest, probabilities: notChest, uncertainty: notChest, lungInvolvementPct: notChest },
      }
    : patientRun && unsupported
    ? {
        lungFound: true,
        label: null,
        probabilities: null,
        uncertainty: null,
        slicesUsed: patientRun.slicesUsed,
        lungVolumeMl: round(lungVolumeMl, 4),
        infectedVolumeMl: round(infectedVolumeMl, 4),
        lungInvolvementPct: null,
        chest,
        support,
        reasons: { label: unsupported, probabilities: unsupported, uncertainty: unsupported, lungInvolvementPct: unsupported },
      }
    : patientRun && dec
    ? {
        lungFound: true,
        label: names[argmax(dec.probs)]!,
        probabilities: byClass(names, dec.probs),
        uncertainty: round(normalisedEntropy(dec.probs)),
        slicesUsed: patientRun.slicesUsed,
        lungVolumeMl: round(lungVolumeMl, 4),
        infectedVolumeMl: round(infectedVolumeMl, 4),
        lungInvolvementPct: lungTotal ? round((100 * infTotal) / lungTotal, 4) : null,
        chest,
        support,
        reasons: lungTotal ? {} : { lungInvolvementPct: 'no lung voxel on the source grid' },
      }
    : {
        lungFound: false,
        label: null,
        probabilities: null,
        uncertainty: null,
        slicesUsed: 0,
        lungVolumeMl: round(lungVolumeMl, 4),
        infectedVolumeMl: round(infectedVolumeMl, 4),
        lungInvolvementPct: lungTotal ? round((100 * infTotal) / lungTotal, 4) : null,
        chest,
        support,
        reasons: { label: noLungReason, probabilities: noLungReason, uncertainty: noLungReason, ...(lungTotal ? {} : { lungInvolvementPct: 'no lung voxel on the source grid' }) },
      };

  const src = volume.source;
  const weights = weightsInfo(engine.weights.name, engine.weights.metadata, opts.weightsSha256 ?? null);
  const sps = analysisMs > 0 ? nz / (analysisMs / 1000) : 0;
  const report: AnalysisReport = {
    schema: REPORT_SCHEMA,
    schemaVersion: REPORT_SCHEMA_VERSION,
    software: { name: 'covidct', version: SOFTWARE_VERSION, commit: SOFTWARE_COMMIT },
    notice: weights.notice,
    createdAt: new Date().toISOString(),
    input: {
      path: opts.inputPath ?? src.path,
      format: src.format,
      description: src.description,
      seriesUID: src.seriesUID ?? null,
      transferSyntaxes: src.transferSyntax ?? [],
      dims: [...volume.dims],
      spacingMm: volume.spacing.map((v) => round(v, 6)) as [number, number, number],
      orientation: axisCodes(volume.affine, volume.space),
      space: volume.space,
      affine: Array.from(volume.affine, (v) => round(v, 6)),
      axial: {
        dims: grid.dims,
        spacingMm: grid.spacing.map((v) => round(v, 6)) as [number, number, number],
        sourceAxes: grid.srcAxis,
        flipped: grid.flip,
      },
      seriesRequested: opts.seriesRequested ?? null,
      fingerprint: opts.inputFingerprint ?? null,
      notes: [...src.notes],
      reasons: {
        ...(src.seriesUID ? {} : { seriesUID: src.format === 'dicom' ? 'the series has no SeriesInstanceUID' : `a ${src.format} input has no DICOM series` }),
        ...(opts.inputFingerprint ? {} : { fingerprint: 'the input files were not given to the analysis (no file system)' }),
      },
    },
    weights: { ...weights, reasons: weights.sha256 ? {} : { sha256: 'the weights file bytes were not given to the analysis' } },
    model: {
      inputSize: [H, W],
      batch,
      classNames: [...names],
      thresholds: { lung: pre.lung_threshold, lungArea: pre.lung_area_threshold, infection: pre.infection_threshold },
      window: [pre.window_min, pre.window_max],
      precision: engine.precision ?? 'f32',
      storage: engine.storage ?? engine.precision ?? 'f32',
    },
    adapter: { name: engine.gpu.adapterName, software: engine.gpu.isSoftware },
    timings: {
      compileMs: opts.compileMs !== undefined ? round(opts.compileMs, 1) : null,
      analysisMs: round(analysisMs, 1),
      totalMs: null,
      slicesPerSecond: round(sps, 3),
      reasons: { ...(opts.compileMs === undefined ? { compileMs: 'the engine was compiled before the analysis and its time not given' } : {}), totalMs: 'filled in by the caller that writes the outputs' },
    },
    slices,
    patient,
  };
  onProgress?.({ stage: 'finish', done: 1, total: 1, slicesPerSecond: sps || null });
  return { report, volume, lungMask, infection, grid };
}

/** |det| of the affine's 3x3 part: the volume of one voxel, mm^3. */
export function volumeOfVoxel(a: Float64Array): number {
  const m = (r: number, c: number) => a[c * 4 + r]!;
  const det = m(0, 0) * (m(1, 1) * m(2, 2) - m(1, 2) * m(2, 1)) - m(0, 1) * (m(1, 0) * m(2, 2) - m(1, 2) * m(2, 0)) + m(0, 2) * (m(1, 0) * m(2, 1) - m(1, 1) * m(2, 0));
  return Math.abs(det);
}

/** Area of one in-plane pixel (|i column x j column|), mm^2. */
export function pixelArea(a: Float64Array): number {
  const ci = [a[0]!, a[1]!, a[2]!];
  const cj = [a[4]!, a[5]!, a[6]!];
  return Math.hypot(ci[1]! * cj[2]! - ci[2]! * cj[1]!, ci[2]! * cj[0]! - ci[0]! * cj[2]!, ci[0]! * cj[1]! - ci[1]! * cj[0]!);
}
