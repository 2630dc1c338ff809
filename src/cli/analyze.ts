/**
 * `covidct analyze [<scan>] [--weights W] [--out DIR] ...`: one scan through both stages, its files written to
 * DIR (atomically: src/node/output-dir.ts), a short summary on stdout (or the report with --json), progress on
 * stderr when it is a terminal. Without a scan: the embedded synthetic phantom; without --weights: the package's
 * trained default weights (src/node/default-weights.ts); `--weights random`: seeded random weights of the tiny
 * config. Every output names the weights used.
 * @module
 */
import { parseArgs } from 'node:util';
import { analyzeVolume, type AnalysisProgress, type AnalysisResult } from '../analysis/analyze.js';
import { MIN_INPUT_SIZE, TwoStageEngine } from '../analysis/engine.js';
import { makeOutputFiles } from '../analysis/outputs.js';
import type { DicomOutputs } from '../analysis/dicom-outputs.js';
import { chestPhantomVolume } from '../analysis/phantom.js';
import type { PipelineCache } from '../gpu/pipelines.js';
import { checkOutputDir, writeOutputDir } from '../node/output-dir.js';
import { inputFingerprint, loadScan, type LoadedScan } from '../node/scan-path.js';
import type { InputFingerprint } from '../analysis/report.js';
import { authorization, dicomOutputsFor, isDicomWeb, loadDicomWeb, parseStoreUrl, storeOutputs } from '../node/dicom-outputs.js';
import type { Volume } from '../volume/volume.js';
import { DEFAULT_GPU_TIMEOUT_MS } from '../gpu/watchdog.js';
import { EXIT, fmt, getGpu, loadWeights, positiveInt, progressLine, UsageError, type CliIO, type LoadedWeights } from './common.js';

/** Options shared by analyze and batch. */
export const ENGINE_OPTIONS = {
  weights: { type: 'string' },
  batch: { type: 'string' },
  size: { type: 'string' },
  precision: { type: 'string' },
  storage: { type: 'string' },
  'gpu-timeout': { type: 'string' },
  software: { type: 'string' },
  'dawn-flags': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  debug: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

export const ANALYZE_HELP = `usage: covidct analyze [<scan>] [--weights W.safetensors] [--out DIR] [--series UID] [--batch N] [--size S]
                       [--dicom] [--store URL] [--precision f32|f16] [--storage f32|f16] [--json] [--quiet] [--debug]
                       [--software[=lavapipe|swiftshader]] [--dawn-flags a,b]
  <scan>        a DICOM folder, a DICOM file, a NIfTI file (.nii, .nii.gz), a safetensors file with 'hu' [slices, 1, H, W], or a
                study or series on a DICOMweb server: dicomweb:http://host:port/dicom-web/studies/<StudyUID>[/series/<SeriesUID>]
                (--input <scan> also works); none: the embedded synthetic phantom
  --weights W   weights exported by weights/export.py (a path, as given); none: the trained model bundled with
                covidct (its file inside the package, whatever the working folder); 'random': seeded random weights
                of the tiny config (untrained, for tests of the engine)
  --out DIR     write report.json, lung_mask.nii.gz, infection.nii.gz and overlays/ to DIR (replaced atomically)
  --series UID  the DICOM series to analyse (default: the CT series with the most slices)
  --dicom       DICOM input only: also write seg.dcm (DICOM SEG: lung, infection), sr.dcm (TID 1500 measurement report) and
                contact_sheet.dcm (Secondary Capture) in the source study
  --store URL   send the DICOM outputs to a DICOMweb server with STOW-RS (URL: its base, e.g. http://host:8042/dicom-web;
                implies --dicom); credentials from COVIDCT_DICOMWEB_AUTH ('basic USER:PASSWORD' or 'bearer TOKEN')
  --batch N     slices per GPU batch (default 4; auto: the largest that fits the GPU); --size S: model input S x S
                (default: the weights' input_size)
  --gpu-timeout SECONDS  fail (exit 5) when the GPU does not finish a batch's work within this (default 600)
  --json        print report.json on stdout instead of the summary
  --quiet       no progress on stderr; --debug: stack traces on errors`;

/** Engine options from the parsed flags. */
export function engineOptions(v: { batch?: string | undefined; size?: string | undefined; precision?: string | undefined; storage?: string | undefined; 'gpu-timeout'?: string | undefined }, slices?: number) {
  const precision = v.precision ?? 'f32';
  if (precision !== 'f32' && precision !== 'f16') throw new UsageError(`--precision must be f32 or f16, got '${precision}'`);
  const storage = v.storage ?? precision;
  if (storage !== 'f32' && storage !== 'f16') throw new UsageError(`--storage must be f32 or f16, got '${storage}'`);
  const size = v.size !== undefined ? positiveInt(v.size, 'size', 64) : undefined;
  if (size !== undefined && size < MIN_INPUT_SIZE) throw new UsageError(`--size must be an integer of at least ${MIN_INPUT_SIZE}, got '${v.size}'`);
  // 'auto': the largest batch (up to 16, or the slices) whose buffers fit the GPU's limits.
  const batch = v.batch === 'auto' ? ('auto' as const) : positiveInt(v.batch, 'batch', Math.max(1, Math.min(4, slices ?? 4)));
  // --gpu-timeout SECONDS: the bound on each wait for the GPU in a batch run (default 600).
  const gpuTimeoutMs = positiveInt(v['gpu-timeout'], 'gpu-timeout', DEFAULT_GPU_TIMEOUT_MS / 1000) * 1000;
  return { batch, ...(batch === 'auto' ? { maxBatch: Math.max(1, Math.min(16, slices ?? 16)) } : {}), precision, storage, gpuTimeoutMs, ...(size ? { height: size, width: size } : {}) } as const;
}

/** A loaded engine with its compile time. */
export interface LoadedEngine {
  engine: TwoStageEngine;
  compileMs: number;
  weights: LoadedWeights;
}

/** Loads and compiles the engine. */
export async function loadEngine(gpu: Parameters<typeof TwoStageEngine.load>[0], cache: PipelineCache | undefined, weights: LoadedWeights, opts: ReturnType<typeof engineOptions>): Promise<LoadedEngine> {
  const t0 = performance.now();
  const engine = await TwoStageEngine.load(gpu, weights.file, { ...opts, ...(cache ? { cache } : {}) });
  return { engine, compileMs: performance.now() - t0, weights };
}

/** Analyses a loaded volume and writes its folder; returns the result (report with total time). */
export async function analyzeAndWrite(
  le: LoadedEngine,
  volume: Volume,
  out: string | undefined,
  opts: { inputPath: string; seriesRequested?: string | null; inputFingerprint?: InputFingerprint | null; onProgress?: (p: AnalysisProgress) => void; signal?: AbortSignal; startedMs: number; dicom?: (result: AnalysisResult) => Promise<DicomOutputs> },
): Promise<{ result: AnalysisResult; files: string[]; dicom?: DicomOutputs }> {
  const result = await analyzeVolume(le.engine, volume, {
    inputPath: opts.inputPath,
    seriesRequested: opts.seriesRequested ?? null,
    inputFingerprint: opts.inputFingerprint ?? null,
    weightsSha256: le.weights.sha256,
    compileMs: le.compileMs,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  result.report.timings.totalMs = Math.round((performance.now() - opts.startedMs) * 10) / 10;
  delete result.report.timings.reasons.totalMs;
  let files: string[] = [];
  // The DICOM outputs (--dicom) are made before the folder is written, so that they land in it with the rest.
  const dicom = opts.dicom ? await opts.dicom(result) : undefined;
  if (out !== undefined) {
    const made = [...(await makeOutputFiles(result)), ...(dicom?.files ?? [])];
    await writeOutputDir(out, made);
    files = made.map((f) => f.name);
  }
  return { result, files, ...(dicom ? { dicom } : {}) };
}

/** The terminal summary of one analysis. */
export function summary(result: AnalysisResult, out: string | undefined, files: string[]): string {
  const r = result.report;
  const p = r.patient;
  const names = r.model.classNames;
  const lines = [
    `covidct ${r.software.version}: ${r.notice}`,
    `input: ${r.input.path || r.input.description} (${r.input.format}${r.input.seriesUID ? `, series ${r.input.seriesUID}` : ''}), ${r.input.dims.join(' x ')} voxels of ${r.input.spacingMm.map((v) => +v.toFixed(3)).join(' x ')} mm, ${r.input.orientation}`,
    `weights: ${r.weights.name}${r.weights.sha256 ? ` (sha256 ${r.weights.sha256.slice(0, 12)})` : ''}`,
    `adapter: ${r.adapter.name}${r.adapter.software ? ' (software)' : ''}; model ${r.model.inputSize.join(' x ')}, batch ${r.model.batch}; compile ${fmt(r.timings.compileMs, 0)} ms, analysis ${r.timings.analysisMs.toFixed(0)} ms (${r.timings.slicesPerSecond.toFixed(1)} slices/s)`,
  ];
  if (r.slices.length <= 12) {
    lines.push('slice  position  lung area  infected  ' + names.map((n) => n.padStart(13)).join('') + '  used');
    for (const s of r.slices)
      lines.push(
        `${String(s.index).padStart(5)}  ${s.positionMm.toFixed(1).padStart(8)}  ${(s.lungAreaMm2 / 100).toFixed(1).padStart(6)} cm2  ${fmt(s.infectedFraction === null ? null : s.infectedFraction * 100, 1, '%').padStart(8)}  ` +
          names.map((n) => s.probabilities[n]!.toFixed(3).padStart(13)).join('') +
          `  ${s.used ? 'yes' : 'no'}`,
      );
  }
  const sup = p.support;
  if (p.chest && !p.chest.isChest) lines.push(`patient: no class: ${p.reasons.label} (lung ${p.lungVolumeMl.toFixed(1)} mL)`);
  else if (sup?.supported === false || p.chest?.lungsWhole === false) lines.push(`patient: ${p.reasons.label} (lung ${p.lungVolumeMl.toFixed(1)} mL, ${p.slicesUsed} of ${r.slices.length} slices used)`);
  else if (p.lungFound && p.label !== null)
    lines.push(
      `patient: ${p.label} (${names.map((n) => `${n} ${p.probabilities![n]!.toFixed(3)}`).join(', ')}), ${p.slicesUsed} of ${r.slices.length} slices used, lung ${p.lungVolumeMl.toFixed(1)} mL, infected ${p.infectedVolumeMl.toFixed(1)} mL, lung involvement ${fmt(p.lungInvolvementPct, 1, '%')}, uncertainty ${fmt(p.uncertainty, 3)}` +
        (sup?.calibrated ? ` (calibrated, temperature ${fmt(sup.temperature, 2)}; out-of-distribution score ${fmt(sup.oodScore, 2)}, supported up to ${fmt(sup.oodThreshold, 2)})` : ' (uncalibrated weights: no out-of-distribution check)'),
    );
  else lines.push(`patient: no lung found (${p.reasons.label})`);
  lines.push(out !== undefined ? `outputs: ${out} (${files.length} files: ${files.filter((f) => !f.startsWith('overlays/')).join(', ')}, overlays/)` : 'outputs: none written (no --out)');
  return lines.join('\n') + '\n';
}

/** The analyze command. */
export async function analyzeCommand(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...ENGINE_OPTIONS, input: { type: 'string' }, out: { type: 'string' }, series: { type: 'string' }, dicom: { type: 'boolean' }, store: { type: 'string' } } });
  if (values.help) {
    io.stdout(ANALYZE_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length > 1) throw new UsageError(`analyze takes one scan, got ${positionals.length}: ${positionals.join(' ')}`);
  if (positionals.length && values.input) throw new UsageError('give the scan either as an argument or with --input, not both');
  const scanPath = positionals[0] ?? values.input;
  if (values.series !== undefined && scanPath === undefined) throw new UsageError('--series needs a scan');
  const wantDicom = !!values.dicom || values.store !== undefined;
  if (wantDicom && scanPath === undefined) throw new UsageError(`--${values.dicom ? 'dicom' : 'store'} needs a DICOM scan (a folder, a file or dicomweb:URL)`);
  if (values.dicom && values.out === undefined && values.store === undefined) throw new UsageError('--dicom writes seg.dcm, sr.dcm and contact_sheet.dcm to the --out folder: give --out DIR (or --store URL)');
  const store = values.store !== undefined ? parseStoreUrl(values.store) : undefined;
  // A malformed COVIDCT_DICOMWEB_AUTH is refused now, not after the analysis when the store would read it.
  if (store || (scanPath !== undefined && isDicomWeb(scanPath))) authorization();
  const started = performance.now();
  if (values.out !== undefined) await checkOutputDir(values.out);
  let scan: LoadedScan | undefined;
  let volume: Volume;
  const seriesOpt = values.series !== undefined ? { series: values.series } : {};
  // What the input files are before they are read (report.json input.fingerprint; batch resumes on it).
  const fingerprint = scanPath !== undefined && !isDicomWeb(scanPath) ? await inputFingerprint(scanPath).catch(() => null) : null;
  if (scanPath !== undefined) {
    scan = isDicomWeb(scanPath) ? await loadDicomWeb(scanPath, seriesOpt) : await loadScan(scanPath, seriesOpt);
    volume = scan.volume;
  } else volume = chestPhantomVolume({ slices: 4, height: 96, width: 96 });
  const dicom = wantDicom ? await dicomOutputsFor(scan!) : undefined;
  const weights = await loadWeights(values.weights);
  const opts = engineOptions(values, volume.dims[2]);
  const { gpu, cache, owned } = await getGpu(io, values.software, values['dawn-flags'], !!values.debug);
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  const progress = progressLine(io, !!values.quiet);
  let le: LoadedEngine | undefined;
  try {
    progress.update({ stage: 'prepare', done: 0, total: volume.dims[2], slicesPerSecond: null });
    le = await loadEngine(gpu, cache, weights, opts);
    const { result, files, dicom: made } = await analyzeAndWrite(le, volume, values.out, { inputPath: scanPath ?? '', seriesRequested: values.series ?? null, inputFingerprint: fingerprint, onProgress: (p) => progress.update(p), signal: ac.signal, startedMs: started, ...(dicom ? { dicom } : {}) });
    progress.done();
    io.stdout(values.json ? JSON.stringify(result.report, null, 2) + '\n' : summary(result, values.out, files));
    if (store && made) {
      // After the folder is written: a store that fails leaves the results on disk, and says so (exit 7).
      const line = await storeOutputs(store, made);
      if (values.json) {
        if (!values.quiet) io.stderr(line + '\n');
      } else io.stdout(line + '\n');
    }
    return EXIT.ok;
  } finally {
    progress.done();
    process.removeListener('SIGINT', onSigint);
    le?.engine.destroy();
    if (owned) gpu.destroy();
  }
}
