/**
 * Node only: a scan from a path, its format detected by content (never by extension):
 * - a folder: DICOM files, found recursively; headers are read file by file (each file's bytes let go once its
 *   header is read), the series chosen (`--series` or the CT series with the most slices), and its pixels
 *   decoded file by file;
 * - a file starting with the gzip magic (1f 8b) or a NIfTI header size (348 or 540, either byte order): NIfTI;
 * - a file with 'DICM' at byte 128, or another file the DICOM parser takes: one DICOM file (a single slice or
 *   an enhanced multi-frame object);
 * - a safetensors file with a tensor `hu` [slices, 1, H, W] in HU (the engine's own input format; no geometry:
 *   1 mm voxels, axial, slice 0 the most inferior; optional `spacing` [3] in mm overrides the voxel size).
 * Errors are ScanError naming the path and the problem.
 * @module
 */
import { createHash } from 'node:crypto';
import { lstat, open, readdir, readlink, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ScanError } from '../io/errors.js';
import { chooseSeries, readDicomSeries, scanDicomFiles, type DicomFileInput, type DicomScan, type DicomSeries } from '../io/dicom/index.js';
import { readNifti } from '../io/nifti.js';
import { parseSafetensors, SafetensorsError } from '../io/safetensors.js';
import { VolumeError, type Volume } from '../volume/volume.js';
import { checkAnalyzable } from '../analysis/analyze.js';
import type { InputFingerprint } from '../analysis/report.js';
import { describeFsError, readHead, readWholeFile } from './read-file.js';

/** What a path holds, from its first bytes (or that it is a folder). */
export type ScanKind = 'dicom-folder' | 'dicom-file' | 'nifti' | 'safetensors' | 'unknown';

/** A loaded scan: the volume and, for DICOM, the series found and the one chosen. */
export interface LoadedScan {
  kind: ScanKind;
  path: string;
  volume: Volume;
  dicom?: { scan: DicomScan; chosen: DicomSeries };
}

/** Most files a DICOM folder may hold (a guard against pointing at a whole disk). */
export const MAX_DICOM_FILES = 200_000;

/** The kind of scan at `path` (content-based; reads at most 2 KiB of a file). */
export async function detectScan(path: string): Promise<ScanKind> {
  const st = await statOrThrow(path);
  if (st.isDirectory()) return 'dicom-folder';
  if (!st.isFile()) throw new ScanError(path, 'not a file or folder', 'malformed');
  const fh = await open(path, 'r');
  let head: Uint8Array;
  try {
    const buf = new Uint8Array(Math.min(2048, st.size));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  return kindOf(head, st.size);
}

/** The kind of a file from its first bytes (up to 2 KiB) and its size. */
export function kindOf(head: Uint8Array, size: number): ScanKind {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'nifti';
  if (head.length >= 132 && String.fromCharCode(...head.subarray(128, 132)) === 'DICM') return 'dicom-file';
  // safetensors first: its 8-byte header size may be 348 or 540, a NIfTI header's size; byte 8 is then '{'.
  if (head.length >= 9) {
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const n = Number(dv.getBigUint64(0, true));
    if (head[8] === 0x7b /* { */ && n >= 2 && 8 + n <= size) return 'safetensors';
  }
  if (head.length >= 4) {
    const dv = new DataView(head.buffer, head.byteOffset, head.byteLength);
    const le = dv.getInt32(0, true);
    const be = dv.getInt32(0, false);
    if (le === 348 || be === 348 || le === 540 || be === 540) return 'nifti';
  }
  // DICOM without its 128-byte preamble starts with a group 0002 or 0008 tag (little endian).
  if (head.length >= 4 && (head[0] === 0x02 || head[0] === 0x08) && head[1] === 0x00) return 'dicom-file';
  return 'unknown';
}

async function statOrThrow(path: string) {
  try {
    return await stat(path);
  } catch (e) {
    throw new ScanError(path, await describeFsError(path, e), 'empty');
  }
}

/** The whole file at `path` for a reader (a plain Uint8Array of its own); problems are ScanErrors naming it. */
export function readScanFile(path: string): Promise<Uint8Array> {
  return readWholeFile(path, (problem, why) => new ScanError(path, problem, why === 'too-large' ? 'unsupported' : why === 'not-found' ? 'empty' : 'malformed'), { what: 'a scan file' });
}

/** The files under a folder, and the entries passed over with the reason. */
export interface FolderListing {
  /** Files (symbolic links to files included, under the link's path), sorted within each folder, depth first. */
  files: string[];
  /** Entries that are not followed: broken links, link loops, a folder reached twice, special files. */
  skipped: { path: string; reason: string }[];
}

/**
 * Every file under `dir`, recursively, in name order, hidden entries (names starting with '.') skipped. Symbolic
 * links are followed (DataLad and git-annex data sets are links), to files and to folders; a folder is entered
 * once whatever the way to it (its device and inode are remembered), so a link loop ends; a broken link, a loop
 * and anything that is not a file or folder are listed in `skipped` with the reason.
 */
export async function listFiles(dir: string, max = MAX_DICOM_FILES): Promise<FolderListing> {
  const files: string[] = [];
  const skipped: { path: string; reason: string }[] = [];
  const seen = new Set<string>();
  const idOf = (st: { dev: number; ino: number }) => `${st.dev}:${st.ino}`;
  const walk = async (d: string): Promise<void> => {
    const entries = await readdir(d, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      let kind: 'dir' | 'file' | 'other' = e.isDirectory() ? 'dir' : e.isFile() ? 'file' : 'other';
      let st: import('node:fs').Stats | undefined;
      if (e.isSymbolicLink() || kind === 'dir') {
        try {
          st = await stat(p);
        } catch (err) {
          skipped.push({ path: p, reason: await describeFsError(p, err) });
          continue;
        }
        kind = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
      }
      if (kind === 'dir') {
        const id = idOf(st!);
        if (seen.has(id)) {
          skipped.push({ path: p, reason: `${e.isSymbolicLink() ? `symbolic link to ${await readlink(p)}, ` : ''}a folder already scanned (a link loop or a second way to it): not entered again` });
          continue;
        }
        seen.add(id);
        await walk(p);
      } else if (kind === 'file') {
        files.push(p);
        if (files.length > max) throw new ScanError(dir, `more than ${max} files: not a scan folder`, 'unusable');
      } else skipped.push({ path: p, reason: 'not a regular file or folder' });
    }
  };
  seen.add(idOf(await stat(dir)));
  await walk(dir);
  return { files, skipped };
}

/**
 * What the input at `path` is now, cheaply (no file is read): the files (the one file, or every file under the
 * folder as {@link listFiles} lists them, links followed, hidden ones left out as the scan leaves them out), their
 * total bytes, and the SHA-256 of one line per file: its path relative to the input, size, modification time in
 * nanoseconds, and for a symbolic link its target (a git-annex link names its content's key). A file added,
 * removed, replaced, touched or re-linked changes it; copies made with their times (cp -p, rsync -t) do not.
 * `batch` compares it to the one in a study's report.json to decide whether to analyse the study again.
 */
export async function inputFingerprint(path: string): Promise<InputFingerprint> {
  const top = await statOrThrow(path);
  const files = top.isDirectory() ? (await listFiles(path)).files : [path];
  const lines: string[] = [];
  let bytes = 0;
  for (const f of files) {
    let line: string;
    try {
      const st = await stat(f, { bigint: true });
      const link = (await lstat(f)).isSymbolicLink() ? await readlink(f) : '';
      bytes += Number(st.size);
      line = `${relative(path, f) || '.'}\t${st.size}\t${st.mtimeNs}\t${link}`;
    } catch (e) {
      line = `${relative(path, f) || '.'}\t${await describeFsError(f, e)}`;
    }
    lines.push(line);
  }
  const sha256 = createHash('sha256').update(lines.join('\n')).digest('hex');
  return { files: files.length, bytes, sha256 };
}

/** Bytes read from the start of each file of a folder scan: a DICOM header almost always ends within them. */
export const DICOM_HEAD_BYTES = 64 * 1024;

/**
 * The series of a DICOM folder, headers only, one file at a time: the first {@link DICOM_HEAD_BYTES} of each file
 * (a file that is not DICOM costs no more), the whole file only when its header goes on past them (or it is
 * deflated). Whole files are read with {@link readScanFile}'s checks (size, links), naming the file.
 */
export async function scanDicomFolder(dir: string): Promise<DicomScan> {
  const listing = await listFiles(dir);
  // scanDicomFiles takes an iterable: each file's first bytes are read when it asks for them and dropped after.
  async function* read(): AsyncGenerator<DicomFileInput> {
    for (const p of listing.files) {
      let head: { bytes: Uint8Array; size: number };
      try {
        head = await readHead(p, DICOM_HEAD_BYTES, (problem) => new ScanError(p, problem, 'malformed'));
      } catch (e) {
        if (!(e instanceof ScanError)) throw e;
        listing.skipped.push({ path: p, reason: e.problem });
        continue;
      }
      yield { path: p, bytes: head.bytes, size: head.size, readAll: () => readScanFile(p) };
    }
  }
  const scan = await scanDicomFiles(read(), dir);
  scan.skipped.push(...listing.skipped);
  return scan;
}

/** Options of {@link loadScan}. */
export interface LoadScanOptions {
  /** DICOM SeriesInstanceUID (or split key such as 'uid:2') to analyse instead of the default choice. */
  series?: string;
}

/**
 * Loads the scan at `path` as a Volume for the analysis; see the module comment. A volume the analysis cannot take
 * (a 2-D image, slices under 2 x 2 voxels: {@link checkScan}) is refused here, naming the file, before any GPU work.
 */
export async function loadScan(path: string, opts: LoadScanOptions = {}): Promise<LoadedScan> {
  const scan = await readScan(path, opts);
  checkScan(scan.volume, path);
  return scan;
}

/**
 * The analysis's own checks on a volume read from `path` (src/analysis/analyze.ts checkAnalyzable), as a ScanError
 * ('unusable') naming the path: what `analyze` refuses and `inspect` reports with exit code 3.
 */
export function checkScan(volume: Volume, path: string): void {
  try {
    checkAnalyzable(volume);
  } catch (e) {
    if (e instanceof VolumeError) throw new ScanError(path, e.message, 'unusable');
    throw e;
  }
}

/** Reads the scan at `path` as a Volume, whatever its number of slices. */
export async function readScan(path: string, opts: LoadScanOptions = {}): Promise<LoadedScan> {
  const kind = await detectScan(path);
  switch (kind) {
    case 'dicom-folder': {
      const scan = await scanDicomFolder(path);
      const chosen = chooseSeries(scan, opts.series);
      const volume = await readDicomSeries(scan, chosen, readScanFile);
      return { kind, path, volume, dicom: { scan, chosen } };
    }
    case 'dicom-file': {
      const bytes = await readScanFile(path);
      const scan = await scanDicomFiles([{ path, bytes }], path);
      const chosen = chooseSeries(scan, opts.series);
      const volume = await readDicomSeries(scan, chosen, new Map([[path, bytes]]));
      return { kind, path, volume, dicom: { scan, chosen } };
    }
    case 'nifti':
      return { kind, path, volume: await readNifti(await readScanFile(path), path) };
    case 'safetensors':
      return { kind, path, volume: safetensorsVolume(await readScanFile(path), path) };
    default:
      throw new ScanError(path, 'not a DICOM, NIfTI or safetensors file (unrecognised content)', 'malformed');
  }
}

/** A Volume from a safetensors file holding `hu` [slices, 1, H, W] (see the module comment). */
export function safetensorsVolume(bytes: Uint8Array, path: string): Volume {
  let f;
  try {
    f = parseSafetensors(bytes, path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new ScanError(path, `not a readable safetensors file: ${e.message.replace(`${path}: `, '')}`, 'malformed');
    throw e;
  }
  if (!f.has('hu')) throw new ScanError(path, `no tensor 'hu' [slices, 1, H, W] of Hounsfield units (has: ${f.names().join(', ') || 'none'})`, 'unusable');
  const s = f.info('hu').shape;
  if (s.length !== 4 || s[1] !== 1) throw new ScanError(path, `'hu' must be [slices, 1, H, W], got [${s.join(', ')}]`, 'unusable');
  const [nz, , ny, nx] = s as [number, number, number, number];
  const hu = f.getF32('hu');
  let spacing: [number, number, number] = [1, 1, 1];
  const notes: string[] = [];
  if (f.has('spacing')) {
    const sp = Array.from(f.getF32('spacing'));
    if (sp.length !== 3 || !sp.every((v) => Number.isFinite(v) && v > 0)) throw new ScanError(path, `'spacing' must be 3 positive mm values, got [${sp.join(', ')}]`, 'malformed');
    spacing = sp as [number, number, number];
  } else notes.push('no geometry in a safetensors input: 1 mm voxels assumed');
  if (f.has('voxel_volume')) notes.push("'voxel_volume' ignored: volumes come from the voxel size ('spacing')");
  const integral = hu.every((v) => Number.isInteger(v) && v >= -32768 && v <= 32767);
  const data = integral ? Int16Array.from(hu) : hu;
  // Slices as given, i -> patient left, j -> posterior, k -> superior (the axial view's own layout).
  const affine = new Float64Array([-spacing[0], 0, 0, 0, 0, -spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1]);
  return {
    data,
    dims: [nx, ny, nz],
    spacing,
    affine,
    space: 'RAS',
    source: { format: 'safetensors', path, description: `safetensors 'hu' [${s.join(', ')}]`, notes },
  };
}

/** A path shown relative to `base` when inside it. */
export function shortPath(p: string, base: string): string {
  const r = relative(base, p);
  return r && !r.startsWith('..') ? r : p;
}
