/**
 * A folder of DICOM files as a set of series, the way dcm2niix sees it: files grouped by SeriesInstanceUID,
 * then each group split where the image orientation or the image size differs, and localizers (ImageType
 * LOCALIZER) apart from the rest (scouts and localizers often share the UID of the axial series). Non-image objects (SR, SEG, DICOMDIR, presentation states, anything
 * without pixel data) are skipped with a reason; non-CT image series are listed with `isCT: false` and a note.
 * Headers only: no pixel is decoded here.
 * @module
 */
import { ScanError } from '../errors.js';
import { nonImageReason, readHeader, type DicomHeader } from './header.js';
import { looksLikeDicom, parseDicom } from './parse.js';
import { DEFLATED_TS, TRANSFER_SYNTAX_NAMES } from './transfer.js';

/** One slice of a series: a single-frame file, or one frame of a multi-frame file. */
export interface DicomInstance {
  path: string;
  /** Frame index within the file (0 for single-frame files). */
  frame: number;
  /** The file's header (shared by the frames of one file). */
  header: DicomHeader;
  position?: [number, number, number];
  orientation?: [number, number, number, number, number, number];
  /** [between rows, between columns] in mm. */
  pixelSpacing?: [number, number];
  slope: number;
  intercept: number;
}

/** A series (or part of one, when split) found in a set of files. */
export interface DicomSeries {
  /** SeriesInstanceUID ('' when the files have none). */
  uid: string;
  /** `uid`, or `uid:2`, `uid:3`, ... for the parts split off it (the part with the most slices keeps `uid`). */
  key: string;
  modality: string;
  description: string;
  seriesNumber?: number;
  /** Files holding its slices, in the order met. */
  files: string[];
  rows: number;
  columns: number;
  /** Number of slices (frames across its files). */
  slices: number;
  transferSyntaxes: string[];
  /** Why this part was split from the others of its UID (absent when the UID was not split). */
  splitReason?: string;
  isCT: boolean;
  /** ImageType says LOCALIZER (a scout): never chosen by default. */
  isLocalizer: boolean;
  /** ImageOrientationPatient of its first slice, when present. */
  orientation?: [number, number, number, number, number, number];
  /** Its slices, in the order met (readDicomSeries sorts them by position). */
  instances: DicomInstance[];
}

/** The series found in a set of files, and what was left out. */
export interface DicomScan {
  series: DicomSeries[];
  /** Files that are no part of any series, each with the reason. */
  skipped: { path: string; reason: string }[];
  /** One line each on what the scan did (splits, non-CT series). */
  notes: string[];
  /** The folder the files came from, for error messages ('' when unknown). */
  root: string;
}

/** Orientation components closer than this are the same orientation (direction cosines). */
const ORIENTATION_TOLERANCE = 1e-3;

function sameOrientation(a?: readonly number[], b?: readonly number[]): boolean {
  if (!a || !b) return a === b;
  return a.every((v, i) => Math.abs(v - b[i]!) <= ORIENTATION_TOLERANCE);
}

function isLocalizer(h: DicomHeader): boolean {
  return h.imageType.includes('LOCALIZER');
}

function fmtOrientation(o?: readonly number[]): string {
  return o ? `[${o.map((v) => +v.toFixed(4)).join(', ')}]` : 'none';
}

/**
 * One file for {@link scanDicomFiles}: its bytes, or only its first bytes (`bytes.length < size`) with its size and
 * a way to read it whole when its header does not end within them.
 */
export interface DicomFileInput {
  path: string;
  /** The whole file, or its first bytes. */
  bytes: Uint8Array;
  /** The file's size in bytes, when `bytes` may be only its start. */
  size?: number;
  /** Reads the whole file (called only when the header does not end within `bytes`); may throw ScanError. */
  readAll?: () => Promise<Uint8Array>;
}

/** The header of a file from its bytes (or first bytes, `size` then the file's size). */
async function headerOf(bytes: Uint8Array, path: string, size: number | undefined): Promise<DicomHeader> {
  const parsed = await parseDicom(bytes, path, true);
  // A deflated data set is inflated whole before it is parsed: first bytes are not enough.
  if (size !== undefined && parsed.transferSyntax === DEFLATED_TS) throw new ScanError(path, 'deflated: needs the whole file', 'malformed');
  return readHeader(parsed.dataSet, path, parsed.transferSyntax, size ?? parsed.dataSet.byteArray.length);
}

/**
 * Groups files into series from their headers (no pixel decoding). `files` may be any iterable, sync or async,
 * so a Node layer can read the files one by one and let each file's bytes go once its header is read; an item
 * may hold only the first bytes of its file ({@link DicomFileInput}): a file that is not DICOM is then passed
 * over without reading more, and one whose header ends within them (the data set up to the pixel data element)
 * is never read whole here. Files that are not DICOM, or cannot be parsed, are skipped with the reason.
 * Asynchronous because a deflated file's data set is inflated (DecompressionStream) before its header can be read.
 */
export async function scanDicomFiles(files: Iterable<DicomFileInput> | AsyncIterable<DicomFileInput>, root = ''): Promise<DicomScan> {
  const skipped: { path: string; reason: string }[] = [];
  const notes: string[] = [];
  const byUid = new Map<string, DicomInstance[]>();
  for await (const { path, bytes, size, readAll } of files) {
    let h: DicomHeader;
    try {
      const partial = size !== undefined && size > bytes.length;
      try {
        h = await headerOf(bytes, path, partial ? size : undefined);
      } catch (e) {
        // The header goes on past the first bytes (or the data set is deflated): read the file whole.
        if (!(e instanceof ScanError) || !partial || !readAll || !looksLikeDicom(bytes)) throw e;
        h = await headerOf(await readAll(), path, undefined);
      }
    } catch (e) {
      if (!(e instanceof ScanError)) throw e;
      skipped.push({ path, reason: e.problem });
      continue;
    }
    const nonImage = nonImageReason(h.sopClassUID, h.modality);
    if (nonImage) {
      skipped.push({ path, reason: nonImage });
      continue;
    }
    if (!h.hasPixelData) {
      skipped.push({ path, reason: `no pixel data (${h.modality || 'no modality'}, SOP class ${h.sopClassUID || 'none'})` });
      continue;
    }
    let list = byUid.get(h.seriesUID);
    if (!list) byUid.set(h.seriesUID, (list = []));
    h.frameInfo.forEach((f, frame) => {
      const inst: DicomInstance = { path, frame, header: h, slope: f.slope, intercept: f.intercept };
      if (f.position) inst.position = f.position;
      if (f.orientation) inst.orientation = f.orientation;
      if (f.pixelSpacing) inst.pixelSpacing = f.pixelSpacing;
      list!.push(inst);
    });
  }
  const series: DicomSeries[] = [];
  for (const [uid, instances] of byUid) {
    const parts: DicomInstance[][] = [];
    for (const inst of instances) {
      const part = parts.find((p) => {
        const a = p[0]!;
        return a.header.rows === inst.header.rows && a.header.columns === inst.header.columns && sameOrientation(a.orientation, inst.orientation) &&
          isLocalizer(a.header) === isLocalizer(inst.header);
      });
      if (part) part.push(inst);
      else parts.push([inst]);
    }
    parts.sort((a, b) => b.length - a.length);
    const main = parts[0]![0]!;
    parts.forEach((part, i) => {
      const first = part[0]!;
      const h = first.header;
      const files = [...new Set(part.map((p) => p.path))];
      const s: DicomSeries = {
        uid,
        key: i === 0 ? uid : `${uid}:${i + 1}`,
        modality: h.modality,
        description: h.seriesDescription,
        files,
        rows: h.rows,
        columns: h.columns,
        slices: part.length,
        transferSyntaxes: [...new Set(part.map((p) => p.header.transferSyntax))],
        isCT: h.modality === 'CT',
        isLocalizer: isLocalizer(h),
        instances: part,
      };
      if (h.seriesNumber !== undefined) s.seriesNumber = h.seriesNumber;
      if (first.orientation) s.orientation = first.orientation;
      if (parts.length > 1) {
        const why: string[] = [];
        if (i === 0) why.push(`main part of ${parts.length} (most slices)`);
        else {
          if (!sameOrientation(first.orientation, main.orientation)) why.push(`orientation ${fmtOrientation(first.orientation)} differs from ${fmtOrientation(main.orientation)}`);
          if (h.rows !== main.header.rows || h.columns !== main.header.columns) {
            why.push(`size ${h.columns} x ${h.rows} differs from ${main.header.columns} x ${main.header.rows}`);
          }
          if (isLocalizer(h) !== isLocalizer(main.header)) why.push(isLocalizer(h) ? 'ImageType LOCALIZER' : 'not a localizer');
        }
        s.splitReason = why.join('; ');
      }
      series.push(s);
    });
    if (parts.length > 1) {
      notes.push(`series ${uid || '(no SeriesInstanceUID)'} split in ${parts.length} parts by image orientation, size and localizer type: ` +
        parts.map((p, i) => `${i === 0 ? uid : `${uid}:${i + 1}`} ${p[0]!.header.columns} x ${p[0]!.header.rows} orientation ${fmtOrientation(p[0]!.orientation)}, ${p.length} slice(s)`).join('; '));
    }
  }
  for (const s of series) {
    if (!s.isCT) notes.push(`series ${s.key} (${s.modality || 'no modality'}, ${s.slices} slice(s)) is not CT: not used for the analysis`);
  }
  return { series, skipped, notes, root };
}

function listSeries(scan: DicomScan): string {
  return scan.series.map((s) => `${s.key} (${s.modality || '?'}${s.isLocalizer ? ' localizer' : ''}, ${s.slices} slice(s) ${s.columns} x ${s.rows})`).join(', ');
}

function listSkipped(scan: DicomScan, max = 5): string {
  const shown = scan.skipped.slice(0, max).map((s) => `${s.path}: ${s.reason}`);
  if (scan.skipped.length > max) shown.push(`and ${scan.skipped.length - max} more`);
  return shown.join('; ');
}

/**
 * The series to analyse: the one whose key or UID is `uid` when given, else the CT series with the most
 * slices (localizers excluded; ties go to the lower SeriesNumber). Throws ScanError 'empty' when no image was
 * found and 'unusable' when no CT series is there, naming what was found, or when the chosen series shares its
 * UID and orientation with a part of another image size (mixed slice sizes in one series are refused).
 */
export function chooseSeries(scan: DicomScan, uid?: string): DicomSeries {
  const where = scan.root;
  if (!scan.series.length) {
    if (!scan.skipped.length) throw new ScanError(where, 'no files found (empty folder)', 'empty');
    throw new ScanError(where, `no DICOM image found among ${scan.skipped.length} file(s): ${listSkipped(scan)}`, 'empty');
  }
  let chosen: DicomSeries | undefined;
  if (uid !== undefined) {
    chosen = scan.series.find((s) => s.key === uid) ?? scan.series.filter((s) => s.uid === uid).sort((a, b) => b.slices - a.slices)[0];
    if (!chosen) throw new ScanError(where, `no series ${uid}; found ${listSeries(scan)}`, 'unusable');
    if (!chosen.isCT) throw new ScanError(where, `series ${chosen.key} is ${chosen.modality || 'of no modality'}, not CT`, 'unusable');
  } else {
    const cts = scan.series.filter((s) => s.isCT && !s.isLocalizer);
    if (!cts.length) throw new ScanError(where, `no CT series found; found ${listSeries(scan)}`, 'unusable');
    cts.sort((a, b) => b.slices - a.slices || (a.seriesNumber ?? Infinity) - (b.seriesNumber ?? Infinity) || a.key.localeCompare(b.key));
    chosen = cts[0]!;
  }
  const mixed = scan.series.filter((s) => s !== chosen && s.uid === chosen.uid && sameOrientation(s.orientation, chosen.orientation) &&
    s.isLocalizer === chosen.isLocalizer && (s.rows !== chosen.rows || s.columns !== chosen.columns));
  if (mixed.length) {
    const sizes = [chosen, ...mixed].map((s) => `${s.columns} x ${s.rows} in ${s.slices} slice(s) (${s.files.slice(0, 3).join(', ')}${s.files.length > 3 ? ', ...' : ''})`);
    throw new ScanError(where, `mixed slice sizes in series ${chosen.uid}: ${sizes.join('; ')}`, 'unusable');
  }
  return chosen;
}

/** A readable name of a transfer syntax UID (for inspect). */
export function transferSyntaxName(uid: string): string {
  return TRANSFER_SYNTAX_NAMES[uid] ?? 'unknown transfer syntax';
}
