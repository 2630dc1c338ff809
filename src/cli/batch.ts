/**
 * `covidct batch <folder of studies | list.csv> --out DIR [--shard K/N] --weights W`: one result folder per study
 * (DIR/<study id>/, written atomically as analyze writes), a summary table (DIR/summary.csv and summary.json;
 * with --shard, summary.shard-K-of-N.csv/.json so shards sharing DIR never write the same file). A study that
 * fails is recorded (status 'failed', the one-line error) and the run goes on; a GPU failure stops the run.
 * Resume: a study whose DIR/<id>/report.json exists and names the same weights SHA-256 is skipped ('done').
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
import { loadScan } from '../node/scan-path.js';
import { analyzeAndWrite, ENGINE_OPTIONS, engineOptions, loadEngine, type LoadedEngine } from './analyze.js';
import { errorLine, EXIT, exitCodeOf, getGpu, loadWeights, progressLine, UsageError, type CliIO } from './common.js';

export const BATCH_HELP = `usage: covidct batch <folder of studies | list.csv> --out DIR --weights W.safetensors [--shard K/N]
                     [--batch N|auto] [--size S] [--gpu-timeout SECONDS] [--json] [--quiet] [--debug] [--software[=lavapipe|swiftshader]] [--dawn-flags a,b]
  one folder per study in DIR, DIR/summary.csv and summary.json; failed studies recorded, the run goes on;
  studies whose DIR/<id>/report.json names the same weights (SHA-256) are skipped (resume);
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
      const s: Study = { id: ii >= 0 && f[ii] ? f[ii]!.replace(ID_SAFE, '_') : studyId(basename(p)), path: resolve(dirname(source), p) };
      if (si >= 0 && f[si]) s.series = f[si]!;
      return s;
    });
  } else {
    const entries = (await readdir(source, { withFileTypes: true })).filter((e) => !e.name.startsWith('.') && (e.isDirectory() || e.isFile()));
    studies = entries.map((e) => ({ id: studyId(e.name), path: join(source, e.name) }));
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

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.partial-${process.pid}`);
  await writeFile(tmp, text);
  await rename(tmp, path);
}

function rowFromReport(s: Study, status: BatchRow['status'], report: any, seconds: number | null): BatchRow {
  const p = report.patient;
  return { id: s.id, path: s.path, status, label: p.label, lungVolumeMl: p.lungVolumeMl, infectedVolumeMl: p.infectedVolumeMl, lungInvolvementPct: p.lungInvolvementPct, slices: report.slices.length, seconds, error: null };
}

/** The batch command. */
export async function batchCommand(argv: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: { ...ENGINE_OPTIONS, out: { type: 'string' }, shard: { type: 'string' } } });
  if (values.help) {
    io.stdout(BATCH_HELP + '\n');
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError(`batch takes one folder of studies or list.csv, got ${positionals.length}`);
  if (values.out === undefined) throw new UsageError('batch needs --out DIR');
  if (values.weights === undefined) throw new UsageError('batch needs --weights W.safetensors');
  const shard = parseShard(values.shard);
  const out = values.out;
  const all = await listStudies(positionals[0]!);
  const studies = shard ? all.filter((s) => fnv1a(s.id) % shard.n === shard.k) : all;
  const weights = await loadWeights(values.weights);
  const opts = engineOptions(values);
  await (await import('node:fs/promises')).mkdir(out, { recursive: true });
  const rows: BatchRow[] = [];
  let gpu: { gpu: GpuContext; cache?: PipelineCache; owned: boolean } | undefined;
  let le: LoadedEngine | undefined;
  let fatal: unknown;
  try {
    for (const [n, s] of studies.entries()) {
      const dir = join(out, s.id);
      const reportPath = join(dir, 'report.json');
      if (existsSync(reportPath)) {
        try {
          const report = JSON.parse(readFileSync(reportPath, 'utf8'));
          if (report?.weights?.sha256 === weights.sha256) {
            rows.push(rowFromReport(s, 'done', report, null));
            continue;
          }
        } catch {
          /* unreadable: analyse again */
        }
      }
      const t0 = performance.now();
      try {
        const scan = await loadScan(s.path, s.series ? { series: s.series } : {});
        gpu ??= await getGpu(io, values.software, values['dawn-flags']);
        le ??= await loadEngine(gpu.gpu, gpu.cache, weights, opts);
        const progress = progressLine(io, !!values.quiet, `study ${n + 1}/${studies.length} ${s.id}: `);
        try {
          const { result } = await analyzeAndWrite(le, scan.volume, dir, { inputPath: s.path, onProgress: (p) => progress.update(p), startedMs: t0 });
          rows.push(rowFromReport(s, 'ok', result.report, Math.round(performance.now() - t0) / 1000));
        } finally {
          progress.done();
        }
      } catch (e) {
        if (e instanceof GpuDeviceError || e instanceof GpuUnavailableError || exitCodeOf(e) === EXIT.usage) {
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
  const suffix = shard ? `.shard-${shard.k}-of-${shard.n}` : '';
  const summary = { schema: 'covidct-batch-summary', schemaVersion: '1.0.0', weights: { name: values.weights, sha256: weights.sha256 }, shard: shard ? { k: shard.k, n: shard.n } : null, studies: all.length, rows };
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
