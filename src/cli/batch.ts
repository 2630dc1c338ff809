/**
 * `covidct batch <folder of studies | list.csv> --out DIR [--shard K/N] [--weights W]`: one result folder per study
 * (DIR/<study id>/, written atomically as analyze writes), a summary table (DIR/summary.csv and summary.json;
 * with --shard, summary.shard-K-of-N.csv/.json so shards sharing DIR never write the same file). A study that
 * fails is recorded (status 'failed', the one-line error) and the run goes on; a GPU failure stops the run.
 * Resume: a study whose DIR/<id>/report.json records what this run would do (covidct version, weights SHA-256,
 * input size, precision, storage, series asked for, and the input files' fingerprint: {@link resumeChanges}) is
 * skipped ('done'); any difference is printed and the study analysed again.
 * Shards: study `id` belongs to shard K (0-based) of N when FNV-1a(id) mod N == K: deterministic, needs no
 * coordinator, and a study keeps its shard when others are added to the cohort.
 *
 * Studies: in a folder, each entry that is not hidden (a DICOM folder, a DICOM, NIfTI or safetensors file) is a
 * study named after it (extensions .nii.gz, .nii, .dcm, .safetensors dropped); a CSV has a header with a `path`
 * column and optional `id` and `series` columns (paths relative to the CSV's folder).
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { GpuDeviceError, GpuUnavailableError, type GpuContext } from '../gpu/device.js';
import type { PipelineCache } from '../gpu/pipelines.js';
import { readConfig, WeightsError } from '../models/load.js';
import { checkOutputDir } from '../node/output-dir.js';
import { inputFingerprint, loadScan } from '../node/scan-path.js';
import { dicomOutputsFor } from '../node/dicom-outputs.js';
import { SEG_FILE } from '../analysis/dicom-outputs.js';
import { SOFTWARE_VERSION } from '../analysis/report.js';
import { analyzeAndWrite, ENGINE_OPTIONS, engineOptions, loadEngine, type LoadedEngine } from './analyze.js';
import { errorLine, EXIT, exitCodeOf, getGpu, loadWeights, progressLine, UsageError, type CliIO } from './common.js';

export const BATCH_HELP = `usage: covidct batch <folder of studies | list.csv> --out DIR [--weights W.safetensors] [--shard K/N] [--dicom]
                     [--batch N|auto] [--size S] [--gpu-timeout SECONDS] [--json] [--quiet] [--debug] [--software[=lavapipe|swiftshader]] [--dawn-flags a,b]
  one folder per study in DIR, DIR/summary.csv and summary.json; failed studies recorded, the run goes on;
  --weights W: as for analyze (none: the trained model bundled with covidct; 'random': seeded random weights);
  --dicom: also seg.dcm, sr.dcm and contact_sheet.dcm per study (DICOM studies only: another input fails that study);
  studies whose DIR/<id>/report.json records the same covidct version, weights (SHA-256), --size, --precision,
  --storage, series and input files (paths, sizes, modification times) are skipped (resume), with --dicom only when
  their seg.dcm is there too; others analysed again;
  --shard K/N: only the studies of shard K (0 <= K < N), e.g. K=$SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX`;

/** One study of a batch. */
export interface Study {
  id: string;
  path: string;
  series?: string;
}

/** One row of the summary. */
export interface BatchRow {
  id: string;
  path: string;
  status: 'ok' | 'done' | 'failed';
  label: string | null;
  lungVolumeMl: number | null;
  infectedVolumeMl: number | null;
  lungInvolvementPct: number | null;
  slices: number | null;
  seconds: number | null;
  error: string | null;
}

/** FNV-1a 32-bit hash of a string (UTF-16 code units): the shard rule. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** Parses '--shard K/N'. */
export function parseShard(raw: string | undefined): { k: number; n: number } | null {
  if (raw === undefined) return null;
  const m = /^(\d+)\/(\d+)$/.exec(raw);
  const k = m ? Number(m[1]) : NaN;
  const n = m ? Number(m[2]) : NaN;
  if (!m || !(n >= 1) || !(k >= 0 && k < n)) throw new UsageError(`--shard must be K/N with 0 <= K < N, got '${raw}'`);
  return { k, n };
}

const ID_SAFE = /[^A-Za-z0-9._-]+/g;

/** Summary file names a study id must not take (a study's folder would be written over them, or they over it). */
const RESERVED_ID = /^summary(\.shard-\d+-of-\d+)?\.(csv|json)$/i;

/**
 * Why `id` cannot name a study's folder in DIR, or null when it can: it must be a plain name, so that DIR/<id>
 * is a folder of its own inside DIR (not '.', '..', empty, absolute, with a '/' or '\\', hidden, or a summary
 * file's name).
 */
export function badStudyId(id: string): string | null {
  if (!id) return 'is empty';
  if (id === '.' || id === '..') return `'${id}' would be DIR itself or its parent`;
  if (/[/\\]/.test(id)) return `'${id}' has a path separator: ids are plain names`;
  if (/^[A-Za-z]:/.test(id)) return `'${id}' is a path: ids are plain names`;
  if (id.startsWith('.')) return `'${id}' starts with '.': hidden names are covidct's temporary folders`;
  if (RESERVED_ID.test(id)) return `'${id}' is the name of a summary file`;
  return null;
}

function studyId(name: string): string {
  const id = name.replace(/\.(nii\.gz|nii|dcm|safetensors)$/i, '').replace(ID_SAFE, '_');
  return id.startsWith('.') ? `_${id.slice(1)}` : id || '_';
}

/** Splits one CSV line (double quotes, "" inside quotes). */
function csvFields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (q) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') q = false;
      else cur += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out.map((s) => s.trim());
}

/** The studies of a folder or a CSV list, sorted by id; ids must be unique. */
export async function listStudies(source: string): Promise<Study[]> {
  let studies: Study[];
  if (source.toLowerCase().endsWith('.csv')) {
    const text = await readFile(source, 'utf8');
    const lines = text.split(/\r?\n/).filter((l) => l.trim() && !l.startsWith('#'));
    if (!lines.length) throw new UsageError(`${source}: empty study list`);
    const head = csvFields(lines[0]!).map((h) => h.toLowerCase());
    const pi = head.indexOf('path');
    if (pi < 0) throw new UsageError(`${source}: the first line must name the columns, with a 'path' column (and optional 'id', 'series'); got '${lines[0]}'`);
    const ii = head.indexOf('id');
    const si = head.indexOf('series');
    studies = lines.slice(1).map((l, n) => {
      const f = csvFields(l);
      const p = f[pi];
      if (!p) throw new UsageError(`${source}: line ${n + 2} has no path`);
      let id = studyId(basename(p));
      if (ii >= 0 && f[ii]) {
        // A given id is used as it is, other characters than letters, digits, '.', '_' and '-' made '_', but
        // one that is not a plain name (a path, '.', '..') is refused rather than rewritten.
        const bad = badStudyId(f[ii]!);
        if (bad) throw new UsageError(`${source}: line ${n + 2}: study id ${bad}`);
        id = f[ii]!.replace(ID_SAFE, '_');
      }
      const s: Study = { id, path: resolve(dirname(source), p) };
      if (si >= 0 && f[si]) s.series = f[si]!;
      return s;
    });
  } else {
    // Symbolic links too (DataLad and git-annex data sets are links): a broken one is a study that fails by name.
    const entries = (await readdir(source, { withFileTypes: true })).filter((e) => !e.name.startsWith('.') && (e.isDirectory() || e.isFile() || e.isSymbolicLink()));
    studies = entries.map((e) => ({ id: studyId(e.name), path: join(source, e.name) }));
  }
  for (const s of studies) {
    const bad = badStudyId(s.id);
    if (bad) throw new UsageError(`${source}: study ${s.path}: id ${bad}`);
  }
  studies.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (let i = 1; i < studies.length; i++) if (studies[i]!.id === studies[i - 1]!.id) throw new UsageError(`${source}: two studies named '${studies[i]!.id}' (${studies[i - 1]!.path}, ${studies[i]!.path})`);
  return studies;
}

const CSV_COLUMNS: (keyof BatchRow)[] = ['id', 'path', 'status', 'label', 'lungVolumeMl', 'infectedVolumeMl', 'lungInvolvementPct', 'slices', 'seconds', 'error'];

function csvCell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The summary as CSV text. */
export function summaryCsv(rows: BatchRow[]): string {
  return [CSV_COLUMNS.join(','), ...rows.map((r) => CSV_COLUMNS.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
}

/**
 * Refuses (UsageError) a summary file that exists but is not one batch wrote (summary.json: schema
 * 'covidct-batch-summary'; summary.csv: our header line), so that batch never writes over a file it did not write.
 */
function checkSummaryFile(path: string): void {
  if (!existsSync(path)) return;
  let ours = false;
  try {
    const text = readFileSync(path, 'utf8');
    ours = path.endsWith('.json') ? JSON.parse(text)?.schema === SUMMARY_SCHEMA : text.split(/\r?\n/, 1)[0] === CSV_COLUMNS.join(',');
  } catch {
    ours = false;
  }
  if (!ours) throw new UsageError(`${path}: exists and is not a covidct batch summary: not overwritten (choose another --out)`);
}

const SUMMARY_SCHEMA = 'covidct-batch-summary';

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  await writeFile(tmp, text);
  await rename(tmp, path);
}

/** What a study's result depends on, as its report.json records it (see {@link resumeChanges}). */
export interface ResumeKey {
  /** covidct's version (report.software.version). */
  version: string;
  weightsSha256: string | null;
  /** Model input [height, width] (report.model.inputSize). */
  inputSize: [number, number];
  precision: 'f32' | 'f16';
  storage: 'f32' | 'f16';
  /** The series asked for; null: the default choice (report.input.seriesRequested). */
  seriesRequested: string | null;
  /** SHA-256 of the input's files now (src/node/scan-path.ts inputFingerprint; report.input.fingerprint). */
  fingerprint: string | null;
}

/**
 * What differs between the report of an earlier run and this run (empty: the study is done and skipped): covidct's
 * version, the weights (SHA-256), the model input size, precision and storage, the series asked for, and the input
 * files (their fingerprint: paths, sizes, modification times, link targets). A report that does not record one of
 * them (an older covidct) counts as different.
 */
export function resumeChanges(report: any, want: ResumeKey): string[] {
  const out: string[] = [];
  const was = (v: unknown) => (v === undefined ? 'not recorded' : v === null ? 'none' : String(v));
  if (report?.software?.version !== want.version) out.push(`covidct ${was(report?.software?.version)} -> ${want.version}`);
  if (!want.weightsSha256 || report?.weights?.sha256 !== want.weightsSha256) out.push(`weights sha256 ${was(report?.weights?.sha256).slice(0, 12)} -> ${String(want.weightsSha256).slice(0, 12)}`);
  const size = report?.model?.inputSize;
  if (!Array.isArray(size) || size[0] !== want.inputSize[0] || size[1] !== want.inputSize[1]) out.push(`size ${Array.isArray(size) ? size.join(' x ') : 'not recorded'} -> ${want.inputSize.join(' x ')}`);
  if (report?.model?.precision !== want.precision) out.push(`precision ${was(report?.model?.precision)} -> ${want.precision}`);
  if (report?.model?.storage !== want.storage) out.push(`storage ${was(report?.model?.storage)} -> ${want.storage}`);
  const series = report?.input?.seriesRequested;
  if (series === undefined || series !== want.seriesRequested) out.push(`series ${series === undefined ? 'not recorded' : (series ?? 'default')} -> ${want.seriesRequested ?? 'default'}`);
  const fp = report?.input?.fingerprint?.sha256;
  if (!want.fingerprint || fp !== want.fingerprint) out.push(fp === undefined ? 'input fingerprint not recorded' : want.fingerprint ? 'the input files changed (added, removed, resized or modified)' : 'the input cannot be listed now');
  return out;
}

function rowFromReport(s: Study, status: BatchRow['status'], report: any, seconds: number | null): BatchRow {
  const p = report.patient;
  return { id: s.id, path: s.path, status, label: p.label, lungVolumeMl: p.lungVolumeMl, infectedVolumeMl: p.infectedVolumeMl, lungInvolvementPct: p.lungInvolvementPct, slices: report.slices.length, seconds, error: null };
}

/** The batch command. */
export async function batchCommand(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...ENGINE_OPTIONS, out: { type: 'string' }, shard: { type: 'string' }, dicom: { type: 'boolean' } } });
  if (values.help) {
    io.stdout(BATCH_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`batch takes one folder of studies or list.csv, got ${positionals.length}`);
  if (values.out === undefined) throw new UsageError('batch needs --out DIR');
  const shard = parseShard(values.shard);
  const out = values.out;
  const all = await listStudies(positionals[0]!);
  const studies = shard ? all.filter((s) => fnv1a(s.id) % shard.n === shard.k) : all;
  const weights = await loadWeights(values.weights);
  const opts = engineOptions(values);
  // What shapes a study's result besides its input (resumeChanges): the same everywhere in this run.
  const size = opts.height ?? readConfig(weights.file).config.input_size;
  const resumeBase = { version: SOFTWARE_VERSION, weightsSha256: weights.sha256, inputSize: [size, opts.width ?? size] as [number, number], precision: opts.precision, storage: opts.storage };
  const suffix = shard ? `.shard-${shard.k}-of-${shard.n}` : '';
  for (const ext of ['json', 'csv']) checkSummaryFile(join(out, `summary${suffix}.${ext}`));
  // Every study's folder that is there already must be a covidct output (it is replaced when the study runs):
  // one that is not stops the run here, before any work, as analyze --out does.
  for (const s of studies) if (existsSync(join(out, s.id))) await checkOutputDir(join(out, s.id));
  await (await import('node:fs/promises')).mkdir(out, { recursive: true });
  const rows: BatchRow[] = [];
  let gpu: { gpu: GpuContext; cache?: PipelineCache; owned: boolean } | undefined;
  let le: LoadedEngine | undefined;
  let fatal: unknown;
  let loadingEngine = false;
  try {
    for (const [n, s] of studies.entries()) {
      const dir = join(out, s.id);
      const reportPath = join(dir, 'report.json');
      // Taken before the input is read: a change made while it is analysed shows at the next resume.
      const fingerprint = await inputFingerprint(s.path).catch(() => null);
      if (existsSync(reportPath)) {
        let report: unknown = null;
        try {
          report = JSON.parse(readFileSync(reportPath, 'utf8'));
        } catch {
          /* unreadable: analysed again */
        }
        const changed = report ? resumeChanges(report, { ...resumeBase, seriesRequested: s.series ?? null, fingerprint: fingerprint?.sha256 ?? null }) : ['its report.json cannot be read'];
        // --dicom: a study done without its DICOM outputs is analysed again.
        if (values.dicom && !existsSync(join(dir, SEG_FILE))) changed.push(`--dicom and no ${SEG_FILE}`);
        if (!changed.length) {
          rows.push(rowFromReport(s, 'done', report, null));
          continue;
        }
        if (!values.quiet) io.stderr(`covidct: study ${s.id}: analysed again (${changed.join('; ')})\n`);
      }
      const t0 = performance.now();
      try {
        const scan = await loadScan(s.path, s.series ? { series: s.series } : {});
        const dicom = values.dicom ? await dicomOutputsFor(scan) : undefined;
        gpu ??= await getGpu(io, values.software, values['dawn-flags'], !!values.debug);
        if (!le) {
          // A failure here is the engine's (weights, size, GPU), not the study's: it stops the run.
          loadingEngine = true;
          le = await loadEngine(gpu.gpu, gpu.cache, weights, opts);
          loadingEngine = false;
        }
        const progress = progressLine(io, !!values.quiet, `study ${n + 1}/${studies.length} ${s.id}: `);
        try {
          const { result } = await analyzeAndWrite(le, scan.volume, dir, { inputPath: s.path, seriesRequested: s.series ?? null, inputFingerprint: fingerprint, onProgress: (p) => progress.update(p), startedMs: t0, ...(dicom ? { dicom } : {}) });
          rows.push(rowFromReport(s, 'ok', result.report, Math.round(performance.now() - t0) / 1000));
        } finally {
          progress.done();
        }
      } catch (e) {
        if (loadingEngine || e instanceof GpuDeviceError || e instanceof GpuUnavailableError || e instanceof WeightsError || exitCodeOf(e) === EXIT.usage) {
          fatal = e;
          rows.push({ id: s.id, path: s.path, status: 'failed', label: null, lungVolumeMl: null, infectedVolumeMl: null, lungInvolvementPct: null, slices: null, seconds: null, error: errorLine(e).replace(/^covidct: /, '') });
          break;
        }
        if (values.debug) io.stderr(`${(e as Error).stack}\n`);
        const line = errorLine(e).replace(/^covidct: /, '');
        if (!values.quiet) io.stderr(`covidct: study ${s.id} failed: ${line}\n`);
        rows.push({ id: s.id, path: s.path, status: 'failed', label: null, lungVolumeMl: null, infectedVolumeMl: null, lungInvolvementPct: null, slices: null, seconds: Math.round(performance.now() - t0) / 1000, error: line });
      }
    }
  } finally {
    le?.engine.destroy();
    if (gpu?.owned) gpu.gpu.destroy();
  }
  const summary = { schema: SUMMARY_SCHEMA, schemaVersion: '1.0.0', weights: { name: weights.name, sha256: weights.sha256 }, shard: shard ? { k: shard.k, n: shard.n } : null, studies: all.length, rows };
  await writeAtomic(join(out, `summary${suffix}.json`), JSON.stringify(summary, null, 2) + '\n');
  await writeAtomic(join(out, `summary${suffix}.csv`), summaryCsv(rows));
  if (values.json) io.stdout(JSON.stringify(summary, null, 2) + '\n');
  else {
    const counts = (st: BatchRow['status']) => rows.filter((r) => r.status === st).length;
    io.stdout(`${rows.length} of ${all.length} studies${shard ? ` (shard ${shard.k}/${shard.n})` : ''}: ${counts('ok')} analysed, ${counts('done')} already done, ${counts('failed')} failed; summary in ${join(out, `summary${suffix}.csv`)}\n`);
    for (const r of rows) io.stdout(`  ${r.id}: ${r.status}${r.status === 'failed' ? ` (${r.error})` : `, ${r.label ?? 'no class (report.json says why)'}, involvement ${r.lungInvolvementPct === null ? '-' : r.lungInvolvementPct.toFixed(1) + '%'}`}\n`);
  }
  if (fatal) throw fatal;
  return rows.some((r) => r.status === 'failed') ? EXIT.input : EXIT.ok;
}
