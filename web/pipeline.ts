/**
 * The worker's steps, on the same code as the CLI: the byte readers (NIfTI, DICOM), the series choice
 * (chooseSeries), the analysis of a Volume and its output files (makeOutputFiles), our NIfTI writer for the
 * viewer's copy of the CT. Only this file knows those APIs; worker.ts speaks messages.
 * @module
 */
import { createGpu, type GpuContext } from '../src/gpu/device.js';
import { openWeights } from '../src/models/load.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { ScanError } from '../src/io/errors.js';
import type { Volume } from '../src/volume/volume.js';
import { lpsToRas } from '../src/volume/affine.js';
import { readNifti, writeNifti } from '../src/io/nifti.js';
import { chooseSeries, readDicomSeries, scanDicomFiles, type DicomSeries } from '../src/io/dicom/index.js';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { makeOutputFiles } from '../src/analysis/outputs.js';
import { sha256Hex } from '../src/analysis/weights-info.js';
import type { InputFile, OutputFile, SeriesInfo } from './protocol.js';
import { PageError } from './problems.js';
import { BUNDLED_WEIGHTS, BUNDLED_WEIGHTS_NAME } from './bundled.js';

/** A scan read into a Volume, with one line saying what it is. */
export interface Loaded {
  volume: Volume;
  description: string;
  /** The name the report gives the input. */
  path: string;
  seriesUID?: string;
}

/** Where the weights come from: the bundled file next to the page, or one the user gave. */
export type WeightsChoice = { kind: 'bundled' } | { kind: 'file'; name: string; bytes: Uint8Array; key: string };

/** Progress sink: stage name, units done of total (slices, or files while reading), slices/s when known. */
export type Progress = (stage: string, done: number, total: number, slicesPerSec?: number | null) => void;

/** The bundled weights (web/bundled.ts) and sample, relative to the worker's own URL (so the page works from any folder). */
export { BUNDLED_WEIGHTS, BUNDLED_WEIGHTS_NAME } from './bundled.js';
export const SAMPLE_MANIFEST = 'sample/manifest.json';

/**
 * A progress sink that adds slices/s: the rate over the current stage so far (null until two reports of the stage
 * have come), posted at most every 100 ms except the first and last report of a stage.
 */
export function progressReporter(send: (stage: string, done: number, total: number, slicesPerSec: number | null) => void): Progress {
  let stage = '';
  let t0 = 0;
  let done0 = 0;
  let last = 0;
  return (s, done, total, rate) => {
    const now = performance.now();
    if (s !== stage) {
      stage = s;
      t0 = now;
      done0 = done;
      last = 0;
    }
    if (now - last < 100 && done !== total && done !== done0) return;
    last = now;
    const dt = (now - t0) / 1000;
    send(s, done, total, rate !== undefined ? rate : dt > 0 && done > done0 ? (done - done0) / dt : null);
  };
}

let gpu: GpuContext | null = null;
let engine: { key: string; name: string; batch: number; engine: TwoStageEngine; sha256: string; compileMs: number } | null = null;

/**
 * Drops the engine and the device after the device was lost or a GPU operation failed (GpuDeviceError): nothing
 * compiled on it can be used again, so the next run asks the browser for a fresh device and compiles the model
 * on it. Destroying a device that is already lost is a no-op.
 */
function dropDevice(): void {
  const [e, g] = [engine, gpu];
  engine = null;
  gpu = null;
  try {
    e?.engine.destroy();
  } catch {
    // its buffers went with the device
  }
  g?.destroy();
}

/** The device, made once and made again after it was lost. */
async function device(): Promise<GpuContext> {
  if (gpu && gpu.lostReason === null) return gpu;
  if (gpu) dropDevice();
  gpu = await createGpu();
  return gpu;
}

/** Acquires the GPU and says which adapter it is. */
export async function probeGpu(): Promise<{ adapter: string; isSoftware: boolean; maxBufferMiB: number }> {
  const g = await device();
  return { adapter: g.adapterName, isSoftware: g.isSoftware, maxBufferMiB: Math.round(g.limits.maxStorageBufferBindingSize / 2 ** 20) };
}

const NIFTI_NAME = /\.nii(\.gz)?$/i;

/** True when the bytes look like NIfTI-1/2 (either byte order) or gzip (a .nii.gz). */
function looksLikeNifti(bytes: Uint8Array): boolean {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return true;
  if (bytes.length < 4) return false;
  const v = new DataView(bytes.buffer, bytes.byteOffset, 4);
  return [348, 540].includes(v.getInt32(0, true)) || [348, 540].includes(v.getInt32(0, false));
}

function seriesInfo(s: DicomSeries): SeriesInfo {
  const info: SeriesInfo = { key: s.key, uid: s.uid, modality: s.modality, description: s.description, slices: s.slices, rows: s.rows, columns: s.columns, isCT: s.isCT };
  if (s.splitReason) info.splitReason = s.splitReason;
  return info;
}

/**
 * Reads the user's files into a Volume: one NIfTI file (by name or magic bytes), else DICOM files grouped into
 * series, the CLI's choice of series (or the one `seriesKey` names), the series list posted to the page.
 */
export async function loadFiles(
  files: InputFile[],
  seriesKey: string | undefined,
  signal: AbortSignal,
  progress: Progress,
  onSeries: (s: { series: SeriesInfo[]; chosen: string; skipped: number; notes: string[] }) => void,
): Promise<Loaded> {
  if (files.length === 0) throw new ScanError('', 'no files were given', 'empty');
  const scans = files.filter((f) => !/\.safetensors$/i.test(f.path));
  if (scans.length === 1) {
    const f = scans[0]!;
    const bytes = new Uint8Array(await f.file.arrayBuffer());
    if (NIFTI_NAME.test(f.path) || looksLikeNifti(bytes)) {
      progress('reading', 0, 1);
      const volume = await readNifti(bytes, f.path);
      progress('reading', 1, 1);
      return { volume, description: `NIfTI ${f.path} (${volume.dims.join(' x ')})`, path: f.path };
    }
  }
  const read: { path: string; bytes: Uint8Array }[] = [];
  for (const f of scans) {
    signal.throwIfAborted();
    read.push({ path: f.path, bytes: new Uint8Array(await f.file.arrayBuffer()) });
    progress('reading files', read.length, scans.length);
  }
  const root = scans.length > 1 && scans[0]!.path.includes('/') ? scans[0]!.path.split('/')[0]! : '';
  let scan: Awaited<ReturnType<typeof scanDicomFiles>>;
  try {
    scan = await scanDicomFiles(read, root);
  } catch (e) {
    // One file that is neither: say both formats were tried.
    if (read.length === 1 && e instanceof ScanError && e.kind === 'malformed') throw new ScanError(read[0]!.path, `not a DICOM or NIfTI file (${e.problem})`, 'malformed');
    throw e;
  }
  if (scan.series.length === 0 && scan.skipped.length === read.length) {
    const first = scan.skipped[0];
    if (read.length === 1) throw new ScanError(read[0]!.path, `not a DICOM or NIfTI file${first ? ` (${first.reason})` : ''}`, 'malformed');
    throw new ScanError(root, `none of the ${read.length} files is a DICOM or NIfTI scan${first ? ` (${first.path}: ${first.reason})` : ''}`, 'malformed');
  }
  const series = chooseSeries(scan, seriesKey);
  onSeries({ series: scan.series.map(seriesInfo), chosen: series.key, skipped: scan.skipped.length, notes: scan.notes });
  const map = new Map(read.map((f) => [f.path, f.bytes]));
  signal.throwIfAborted();
  progress('decoding slices', 0, series.slices);
  const volume = await readDicomSeries(scan, series, map);
  progress('decoding slices', series.slices, series.slices);
  const desc = `DICOM ${series.modality} series ${series.description ? `"${series.description}" ` : ''}(${volume.dims.join(' x ')})`;
  return { volume, description: desc, path: root || files[0]!.path, seriesUID: series.uid };
}

/** Fetches the bundled sample study (the files its manifest lists) and reads it as the user's files would be. */
export async function loadSample(signal: AbortSignal, progress: Progress): Promise<Loaded> {
  const base = new URL(SAMPLE_MANIFEST, self.location.href);
  const res = await fetch(base, { signal });
  if (!res.ok) throw new PageError('empty', `this copy of the page has no bundled sample (${base.pathname}: HTTP ${res.status}): drop a scan instead`);
  const manifest = (await res.json()) as { files: string[]; description?: string };
  const files: InputFile[] = [];
  for (const name of manifest.files) {
    const r = await fetch(new URL(name, base), { signal });
    if (!r.ok) throw new PageError('empty', `the bundled sample file ${name} is missing (HTTP ${r.status})`);
    files.push({ path: name, file: await r.blob() });
    progress('loading sample', files.length, manifest.files.length);
  }
  const loaded = await loadFiles(files, undefined, signal, progress, () => {});
  return { ...loaded, description: manifest.description ?? `sample: ${loaded.description}`, path: `sample/${manifest.files.length === 1 ? manifest.files[0] : ''}` };
}

async function weightsFile(choice: WeightsChoice): Promise<{ name: string; file: SafetensorsFile; sha256: string }> {
  if (choice.kind === 'file') return { name: choice.name, file: openWeights(choice.bytes, choice.name), sha256: await sha256Hex(choice.bytes) };
  const url = new URL(BUNDLED_WEIGHTS, self.location.href);
  const res = await fetch(url);
  if (!res.ok) throw new PageError('weights', `this copy of the page has no bundled weights (${url.pathname}: HTTP ${res.status}): choose a covidct .safetensors file with "Other weights…"`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { name: BUNDLED_WEIGHTS_NAME, file: openWeights(bytes, BUNDLED_WEIGHTS_NAME), sha256: await sha256Hex(bytes) };
}

/**
 * The most slices per GPU batch: more on a hardware adapter. The engine takes the largest batch up to this whose
 * buffers fit the device's limits (batch 'auto'), down to one; a model that does not fit even so is refused with
 * a GpuLimitError (shown as "too large for this GPU's limits").
 */
function maxBatchFor(g: GpuContext): number {
  return g.isSoftware ? 2 : 8;
}

/**
 * The compiled engine for these weights, kept between runs (compiling is the slow part on a software GPU). The
 * engine of other weights is kept until these have loaded, so weights that cannot be used (not a covidct file, a
 * model too large for this GPU's limits) leave the page's engine as it was for the next run.
 */
async function engineFor(g: GpuContext, choice: WeightsChoice, progress: Progress): Promise<NonNullable<typeof engine>> {
  const key = choice.kind === 'file' ? choice.key : 'bundled';
  if (engine && engine.key === key) return engine;
  const { name, file, sha256 } = await weightsFile(choice);
  progress('compiling the model', 0, 1);
  const t0 = performance.now();
  const e = await TwoStageEngine.load(g, file, { batch: 'auto', maxBatch: maxBatchFor(g) });
  engine?.engine.destroy();
  engine = { key, name, batch: e.batch, engine: e, sha256, compileMs: performance.now() - t0 };
  progress('compiling the model', 1, 1);
  return engine;
}

const STAGES: Record<string, string> = { prepare: 'preparing slices', analyze: 'analysing slices', finish: 'patient result' };

/** Runs both stages and the report on the volume, then makes the CLI's output files and the viewer's CT. */
export async function analyse(
  loaded: Loaded,
  weights: WeightsChoice,
  opts: { signal: AbortSignal; progress: Progress; onGpu: (g: { adapter: string; isSoftware: boolean; maxBufferMiB: number }) => void },
): Promise<{ report: unknown; ct: Uint8Array; lung: Uint8Array; files: OutputFile[] }> {
  const g = await device();
  opts.onGpu({ adapter: g.adapterName, isSoftware: g.isSoftware, maxBufferMiB: Math.round(g.limits.maxStorageBufferBindingSize / 2 ** 20) });
  let result: Awaited<ReturnType<typeof analyzeVolume>>;
  try {
    const e = await engineFor(g, weights, opts.progress);
    opts.signal.throwIfAborted();
    result = await analyzeVolume(e.engine, loaded.volume, {
      signal: opts.signal,
      onProgress: (p) => opts.progress(STAGES[p.stage] ?? p.stage, p.done, p.total, p.slicesPerSecond),
      weightsSha256: e.sha256,
      compileMs: e.compileMs,
      inputPath: loaded.path,
    });
  } catch (err) {
    // A lost device (its lost promise may not have settled yet when the failed readback throws) or a failed GPU
    // operation: the engine and the device go, and the next run gets fresh ones.
    if (g.lostReason !== null || (err instanceof Error && err.name === 'GpuDeviceError')) dropDevice();
    throw err;
  }
  const files = await makeOutputFiles(result);
  const reportFile = files.find((f) => f.name === 'report.json');
  const report = reportFile ? JSON.parse(new TextDecoder().decode(reportFile.bytes)) : result.report;
  const v = loaded.volume;
  // The CT as the masks are written (RAS affine), uncompressed: the viewer reads it straight away.
  const affine = v.space === 'LPS' ? lpsToRas(v.affine) : v.affine;
  const ct = await writeNifti({ data: v.data, dims: v.dims, affine, description: 'covidct CT (HU)', gzip: false });
  // The viewer's lung mask: plain uint8 (no label intent, see protocol.ts), uncompressed.
  const lung = await writeNifti({ data: result.lungMask, dims: v.dims, affine, intent: 'none', description: 'covidct lung mask (viewer)', gzip: false });
  return { report, ct, lung, files };
}
