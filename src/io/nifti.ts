/**
 * NIfTI-1 and NIfTI-2 single files (`.nii`, and `.nii.gz` detected by the gzip magic 1f 8b), read into a
 * {@link Volume} and written from masks and maps.
 *
 * The format in one paragraph: a fixed header (NIfTI-1: 348 bytes, 16/32-bit fields; NIfTI-2: 540 bytes, 64-bit
 * fields), four bytes saying whether extensions follow, optional extensions, then the voxels from byte
 * `vox_offset` on, x fastest (Fortran order), in the header's byte order, which a reader finds by reading
 * `sizeof_hdr` (348 or 540) both ways. `dim[0]` is the number of dimensions and `dim[1..]` their sizes;
 * `datatype` the voxel type; stored values v mean `v * scl_slope + scl_inter` unless the slope is 0 or not
 * finite. Geometry comes from one of three places, chosen as nibabel does (`get_best_affine`): the `sform`
 * (three rows of a general affine) when `sform_code` > 0, else the `qform` (a rotation quaternion b, c, d with
 * a = sqrt(1 - b² - c² - d²), voxel sizes pixdim[1..3], qfac = pixdim[0] (-1 flips k; any other value counts as
 * 1), and an offset) when `qform_code` > 0, else pixdim alone (nibabel's fall-back: x flipped, origin at the
 * centre of the grid). The world space is RAS+ (scanner or template coordinates).
 *
 * What this reader does with what it meets (each stated in `source.notes` where it changes something):
 * - datatypes uint8, int8, int16, uint16, int32, uint32, float32, float64; any other is `ScanError('unsupported')`
 *   naming the code and type;
 * - 1-, 2- and 3-D images (a 2-D image is one slice, nz = 1: whether it is usable is the analysis's call);
 *   4-D (or more) when every dimension past the third is 1; several volumes: `ScanError('unsupported')` saying
 *   how many;
 * - values after scaling go into an Int16Array when every one is an integer in int16 range, else a
 *   Float32Array; NaN or infinite voxels (or values beyond float32's range) become {@link PADDING_HU}, counted in
 *   a note;
 * - impossible headers (sizeof_hdr, magic, dim[0] outside 1..7, a dimension below 1, vox_offset inside the
 *   header or not an integer, more than {@link MAX_NIFTI_VOXELS} voxels or {@link MAX_NIFTI_DATA_BYTES} bytes of
 *   voxel data, a file shorter than the header says) are refused before any voxel array is allocated; a
 *   `.nii.gz` is decompressed only up to the bytes the header needs (the header is read first from the start of
 *   the stream), so a small file never becomes a large allocation;
 * - header/image pairs (`.hdr` + `.img`, magic ni1 / ni2) are not read (`ScanError('unsupported')`).
 * @module
 */
import { copyBytes } from './bytes.js';
import { ScanError } from './errors.js';
import { inflateBounded, isGzip } from './gzip.js';
import { PADDING_HU, VolumeError, type NiftiXform, type Volume } from '../volume/volume.js';
import { axcodes, spacingOf, type Affine } from '../volume/affine.js';
import { NIFTI_INTENT_LABEL } from './nifti-write.js';

// The writer lives in nifti-write.ts; re-exported so `io/nifti.js` stays the one import for the format.
export { writeNifti, matrixToQuatern, NIFTI_INTENT_LABEL, type NiftiImage } from './nifti-write.js';

/** The most voxels a NIfTI volume may have here: 2^31. */
export const MAX_NIFTI_VOXELS = 2 ** 31;
/** The most bytes of voxel data a NIfTI file may have here: 4 GiB. */
export const MAX_NIFTI_DATA_BYTES = 4 * 1024 ** 3;

/** NIfTI datatype codes and names; `bytes` for the types this reader decodes. */
const DATATYPES: Record<number, { name: string; bytes?: number }> = {
  0: { name: 'unknown' },
  1: { name: 'binary (1 bit)' },
  2: { name: 'uint8', bytes: 1 },
  4: { name: 'int16', bytes: 2 },
  8: { name: 'int32', bytes: 4 },
  16: { name: 'float32', bytes: 4 },
  32: { name: 'complex64' },
  64: { name: 'float64', bytes: 8 },
  128: { name: 'RGB24' },
  256: { name: 'int8', bytes: 1 },
  512: { name: 'uint16', bytes: 2 },
  768: { name: 'uint32', bytes: 4 },
  1024: { name: 'int64' },
  1280: { name: 'uint64' },
  1536: { name: 'float128' },
  1792: { name: 'complex128' },
  2048: { name: 'complex256' },
  2304: { name: 'RGBA32' },
};

/** Name of a NIfTI datatype code, e.g. 4 -> 'int16'. */
export function niftiDatatypeName(code: number): string {
  return DATATYPES[code]?.name ?? `unknown datatype ${code}`;
}

/** NIfTI xform code names (qform_code / sform_code). */
const XFORM_NAMES = ['unknown', 'scanner', 'aligned', 'talairach', 'mni', 'template'];

/** Name of a qform/sform code, e.g. 1 -> 'scanner'. */
export function niftiXformName(code: number): string {
  return XFORM_NAMES[code] ?? `code ${code}`;
}


/** What `inspect` shows of a NIfTI header; nothing in it needs the voxels. */
export interface NiftiHeaderInfo {
  /** 1 or 2. */
  version: 1 | 2;
  /** Whether the file was gzip-compressed. */
  gzipped: boolean;
  littleEndian: boolean;
  /** dim[1 .. dim[0]]. */
  dims: number[];
  /** Datatype code and name ('int16', ...), and whether this reader decodes it. */
  datatype: number;
  datatypeName: string;
  datatypeSupported: boolean;
  bitpix: number;
  /** pixdim[0..7] as stored (pixdim[0] is qfac). */
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  calMin: number;
  calMax: number;
  qformCode: number;
  sformCode: number;
  /** The affine the reader uses (voxel -> RAS mm, wgpu-matrix layout) and where it came from. */
  affine: Affine;
  affineFrom: 'sform' | 'qform' | 'pixdim';
  /** Orientation code of the affine, e.g. 'LAS' (nibabel's aff2axcodes). */
  axcodes: string;
  /** Voxel size in mm from the affine. */
  spacing: [number, number, number];
  intentCode: number;
  intentName: string;
  /** The `descrip` field. */
  description: string;
  /** xyzt_units; spatial unit name ('mm', 'm', 'um', 'unknown'). */
  xyztUnits: number;
  spatialUnit: string;
  /** The magic string ('n+1', 'n+2'). */
  magic: string;
}


/** Everything the reader takes from a header. */
interface Header {
  version: 1 | 2;
  littleEndian: boolean;
  headerBytes: number;
  magic: string;
  dim: number[];
  datatype: number;
  bitpix: number;
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  calMin: number;
  calMax: number;
  xyztUnits: number;
  intentCode: number;
  intentName: string;
  descrip: string;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: number[];
}

/** Bytes to take from the start of a file to be sure to hold either header and the extension flag. */
const HEADER_PREFIX = 544;

function text(bytes: Uint8Array, start: number, length: number): string {
  let s = '';
  for (let i = start; i < start + length && i < bytes.length; i++) {
    const c = bytes[i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

/** Text with control and non-ASCII bytes escaped (\\xNN), so that a message or description stays one line. */
function printable(t: string): string {
  return t.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Parses and checks the fixed header (everything that makes it impossible is a 'malformed' ScanError). */
function parseHeader(bytes: Uint8Array, path: string): Header {
  if (bytes.length < 348) throw new ScanError(path, `file too short for a NIfTI header: ${bytes.length} bytes, a NIfTI-1 header alone is 348`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = view.getInt32(0, true);
  const be = view.getInt32(0, false);
  let version: 1 | 2;
  let littleEndian: boolean;
  if (le === 348 || be === 348) [version, littleEndian] = [1, le === 348];
  else if (le === 540 || be === 540) [version, littleEndian] = [2, le === 540];
  else throw new ScanError(path, `not a NIfTI file: sizeof_hdr is ${le} (${be} read big-endian), NIfTI-1 has 348 and NIfTI-2 540`);
  const headerBytes = version === 1 ? 348 : 540;
  if (bytes.length < headerBytes) throw new ScanError(path, `file too short for a NIfTI-2 header: ${bytes.length} bytes of 540`);
  const i16 = (o: number) => view.getInt16(o, littleEndian);
  const i32 = (o: number) => view.getInt32(o, littleEndian);
  const f32 = (o: number) => view.getFloat32(o, littleEndian);
  const f64 = (o: number) => view.getFloat64(o, littleEndian);
  const i64 = (o: number, what: string) => {
    const v = view.getBigInt64(o, littleEndian);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new ScanError(path, `impossible NIfTI-2 header: ${what} is ${v}`);
    return Number(v);
  };
  let h: Header;
  if (version === 1) {
    h = {
      version,
      littleEndian,
      headerBytes,
      magic: text(bytes, 344, 4),
      dim: Array.from({ length: 8 }, (_, k) => i16(40 + 2 * k)),
      datatype: i16(70),
      bitpix: i16(72),
      pixdim: Array.from({ length: 8 }, (_, k) => f32(76 + 4 * k)),
      voxOffset: f32(108),
      sclSlope: f32(112),
      sclInter: f32(116),
      xyztUnits: bytes[123]!,
      calMax: f32(124),
      calMin: f32(128),
      intentCode: i16(68),
      descrip: text(bytes, 148, 80),
      qformCode: i16(252),
      sformCode: i16(254),
      quatern: [f32(256), f32(260), f32(264)],
      qoffset: [f32(268), f32(272), f32(276)],
      srow: Array.from({ length: 12 }, (_, k) => f32(280 + 4 * k)),
      intentName: text(bytes, 328, 16),
    };
  } else {
    h = {
      version,
      littleEndian,
      headerBytes,
      magic: text(bytes, 4, 4),
      datatype: i16(12),
      bitpix: i16(14),
      dim: Array.from({ length: 8 }, (_, k) => i64(16 + 8 * k, `dim[${k}]`)),
      pixdim: Array.from({ length: 8 }, (_, k) => f64(104 + 8 * k)),
      voxOffset: i64(168, 'vox_offset'),
      sclSlope: f64(176),
      sclInter: f64(184),
      calMax: f64(192),
      calMin: f64(200),
      descrip: text(bytes, 240, 80),
      qformCode: i32(344),
      sformCode: i32(348),
      quatern: [f64(352), f64(360), f64(368)],
      qoffset: [f64(376), f64(384), f64(392)],
      srow: Array.from({ length: 12 }, (_, k) => f64(400 + 8 * k)),
      xyztUnits: i32(500),
      intentCode: i32(504),
      intentName: text(bytes, 508, 16),
    };
  }
  const single = version === 1 ? 'n+1' : 'n+2';
  const pair = version === 1 ? 'ni1' : 'ni2';
  if (h.magic === pair) throw new ScanError(path, `a NIfTI-${version} header/image pair (magic '${pair}', voxels in a separate .img file) is not read here; convert it to a single .nii`, 'unsupported');
  // The magic as printable text (control bytes escaped), so the message stays one line.
  const shown = printable(h.magic);
  if (h.magic !== single) throw new ScanError(path, `not a NIfTI-${version} file: magic is '${shown}', expected '${single}' (an Analyze 7.5 header?)`);
  const nd = h.dim[0]!;
  if (!(nd >= 1 && nd <= 7)) throw new ScanError(path, `impossible NIfTI header: dim[0] (the number of dimensions) is ${nd}, must be 1..7`);
  for (let k = 1; k <= nd; k++) if (!(h.dim[k]! >= 1)) throw new ScanError(path, `impossible NIfTI header: dim[${k}] is ${h.dim[k]}, dimensions must be at least 1 (dim = ${h.dim.slice(1, nd + 1).join(' x ')})`);
  const minOffset = headerBytes + 4;
  if (!Number.isInteger(h.voxOffset) || h.voxOffset < minOffset)
    throw new ScanError(path, `impossible NIfTI header: vox_offset is ${h.voxOffset}, must be an integer of at least ${minOffset} in a single-file NIfTI-${version}`);
  return h;
}

/** The affine nibabel would give (`img.affine`, i.e. `header.get_best_affine()`), and where it came from. */
function bestAffine(h: Header, path: string): { affine: Affine; from: 'sform' | 'qform' | 'pixdim' } {
  if (h.sformCode !== 0) return { affine: sformAffine(h, path), from: 'sform' };
  if (h.qformCode !== 0) return { affine: qformAffine(h, path), from: 'qform' };
  // nibabel's shape_zoom_affine(shape, zooms, x_flip=True) on the first three dimensions (padded with 1).
  const nd = h.dim[0]!;
  const shape = [1, 2, 3].map((k) => (k <= nd ? h.dim[k]! : 1));
  const zooms = [1, 2, 3].map((k) => (k <= nd ? zoomOf(h, k, path) : 1));
  zooms[0] = -zooms[0]!;
  const rows = [0, 1, 2].map((i) => [0, 1, 2].map((j) => (i === j ? zooms[i]! : 0)).concat(-((shape[i]! - 1) / 2) * zooms[i]!));
  return { affine: fromRows3(rows), from: 'pixdim' };
}

/**
 * The header's codes and transforms for outputs on this grid. A qform that cannot be read (an impossible
 * quaternion) beside an sform that wins is passed on with qform_code 0, with a note.
 */
function xformOf(h: Header, path: string, notes: string[]): NiftiXform {
  let qform: Affine | null = null;
  let qformCode = h.qformCode;
  if (qformCode !== 0) {
    try {
      qform = qformAffine(h, path);
    } catch (e) {
      if (!(e instanceof ScanError) || h.sformCode === 0) throw e;
      notes.push(`qform (qform_code ${qformCode}) unreadable (${e.problem}); outputs carry qform_code 0`);
      qformCode = 0;
    }
  }
  return { qformCode, sformCode: h.sformCode, qform, sform: h.sformCode !== 0 ? sformAffine(h, path) : null };
}

/** The sform's matrix (srow_x, srow_y, srow_z), nibabel's get_sform(). */
function sformAffine(h: Header, path: string): Affine {
  const rows = [h.srow.slice(0, 4), h.srow.slice(4, 8), h.srow.slice(8, 12)];
  if (rows.flat().some((v) => !Number.isFinite(v))) throw new ScanError(path, `impossible NIfTI header: sform has non-finite values`);
  return fromRows3(rows);
}

/** pixdim[k] as nibabel fixes it on load: zeros become 1, negatives their absolute value (k 1..3). */
function zoomOf(h: Header, k: number, path: string): number {
  const v = h.pixdim[k]!;
  if (!Number.isFinite(v)) throw new ScanError(path, `impossible NIfTI header: pixdim[${k}] is ${v}`);
  return k <= 3 ? Math.abs(v) || 1 : v;
}

/** The qform's matrix (quaternion, qfac, pixdim, offset), nibabel's get_qform(). */
function qformAffine(h: Header, path: string): Affine {
  const zoom = (k: number) => zoomOf(h, k, path);
  {
    const [b, c, d] = h.quatern;
    if (![b, c, d, ...h.qoffset].every(Number.isFinite)) throw new ScanError(path, `impossible NIfTI header: qform has non-finite values`);
    const w2 = 1 - (b * b + c * c + d * d);
    const threshold = h.version === 1 ? 3 * 2 ** -23 : 3 * 2 ** -52;
    if (w2 < -threshold) throw new ScanError(path, `impossible NIfTI header: qform quaternion (b, c, d) = (${b}, ${c}, ${d}) has b² + c² + d² > 1`);
    const a = w2 < 0 ? 0 : Math.sqrt(w2);
    const r = quatToMatrix(a, b, c, d);
    const qfac = h.pixdim[0] === -1 ? -1 : 1;
    const vox = [zoom(1), zoom(2), zoom(3) * qfac];
    const rows = [0, 1, 2].map((i) => [r[i]![0]! * vox[0]!, r[i]![1]! * vox[1]!, r[i]![2]! * vox[2]!, h.qoffset[i]!]);
    return fromRows3(rows);
  }
}

function fromRows3(rows: number[][]): Affine {
  const m = new Float64Array(16);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) m[4 * c + r] = rows[r]![c]!;
  m[15] = 1;
  return m;
}

/** Rotation matrix (rows) of the quaternion (a, b, c, d) = (w, x, y, z), as nibabel's quat2mat. */
function quatToMatrix(w: number, x: number, y: number, z: number): number[][] {
  const nq = w * w + x * x + y * y + z * z;
  if (nq < 2 ** -52) return [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
  const s = 2 / nq;
  const [X, Y, Z] = [x * s, y * s, z * s];
  const [wX, wY, wZ] = [w * X, w * Y, w * Z];
  const [xX, xY, xZ] = [x * X, x * Y, x * Z];
  const [yY, yZ, zZ] = [y * Y, y * Z, z * Z];
  return [
    [1 - (yY + zZ), xY - wZ, xZ + wY],
    [xY + wZ, 1 - (xX + zZ), yZ - wX],
    [xZ - wY, yZ + wX, 1 - (xX + yY)],
  ];
}

function spatialUnit(xyztUnits: number): string {
  return ({ 1: 'm', 2: 'mm', 3: 'um' } as Record<number, string>)[xyztUnits & 7] ?? 'unknown';
}

function headerInfo(h: Header, gzipped: boolean, path: string): NiftiHeaderInfo {
  const { affine, from } = bestAffine(h, path);
  return {
    version: h.version,
    gzipped,
    littleEndian: h.littleEndian,
    dims: h.dim.slice(1, h.dim[0]! + 1),
    datatype: h.datatype,
    datatypeName: niftiDatatypeName(h.datatype),
    datatypeSupported: DATATYPES[h.datatype]?.bytes !== undefined,
    bitpix: h.bitpix,
    pixdim: h.pixdim.slice(),
    voxOffset: h.voxOffset,
    sclSlope: h.sclSlope,
    sclInter: h.sclInter,
    calMin: h.calMin,
    calMax: h.calMax,
    qformCode: h.qformCode,
    sformCode: h.sformCode,
    affine,
    affineFrom: from,
    axcodes: axcodes(affine, 'RAS'),
    spacing: spacingOf(affine),
    intentCode: h.intentCode,
    intentName: h.intentName,
    description: h.descrip,
    xyztUnits: h.xyztUnits,
    spatialUnit: spatialUnit(h.xyztUnits),
    magic: h.magic,
  };
}

/** The header of the bytes of a file, decompressing only its start when it is gzipped. */
async function headerOf(bytes: Uint8Array, path: string): Promise<{ h: Header; gzipped: boolean }> {
  const gzipped = isGzip(bytes);
  const head = gzipped ? await inflateBounded(bytes, path, { format: 'gzip', stopAt: HEADER_PREFIX }) : bytes;
  return { h: parseHeader(head, path), gzipped };
}

/**
 * Whether the bytes look like a NIfTI-1 or NIfTI-2 file (sizeof_hdr 348 or 540 in either byte order, the
 * single-file magic 'n+1' / 'n+2'), gzipped or not; for telling a NIfTI from a DICOM or safetensors file
 * whatever its name. Never throws.
 */
export async function isNiftiBytes(bytes: Uint8Array): Promise<boolean> {
  let head = bytes;
  if (isGzip(bytes)) {
    try {
      head = await inflateBounded(bytes, '', { format: 'gzip', stopAt: HEADER_PREFIX });
    } catch {
      return false;
    }
  }
  if (head.length < 348) return false;
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const size = [v.getInt32(0, true), v.getInt32(0, false)];
  if (size.includes(348)) return text(head, 344, 4) === 'n+1';
  if (size.includes(540)) return head.length >= 540 && text(head, 4, 4) === 'n+2';
  return false;
}

/**
 * The header of a NIfTI file (`.nii` or `.nii.gz`), for `inspect`: dimensions, datatype, pixdim, codes, the
 * affine and its orientation code, intent, description. Reads headers `readNifti` would refuse for their content
 * (an unsupported datatype, several volumes); throws `ScanError('malformed')` for an impossible one.
 */
export async function readNiftiHeader(bytes: Uint8Array, path: string): Promise<NiftiHeaderInfo> {
  const { h, gzipped } = await headerOf(bytes, path);
  return headerInfo(h, gzipped, path);
}

/**
 * Reads a NIfTI-1 or NIfTI-2 file (`.nii`, or `.nii.gz` detected by its magic bytes) into a Volume in RAS+, with
 * the affine nibabel gives (`img.affine`) and the voxel values nibabel's `get_fdata()` gives (scaled); see the
 * module doc for what is read, what is refused and the notes. Errors are `ScanError`s naming `path`.
 */
export async function readNifti(bytes: Uint8Array, path: string): Promise<Volume> {
  const { h, gzipped } = await headerOf(bytes, path);
  const info = headerInfo(h, gzipped, path);
  const notes: string[] = [];
  const dt = DATATYPES[h.datatype];
  if (dt?.bytes === undefined) throw new ScanError(path, `NIfTI datatype ${h.datatype} (${niftiDatatypeName(h.datatype)}) is not supported; supported: uint8, int8, int16, uint16, int32, uint32, float32, float64`, 'unsupported');
  const nd = h.dim[0]!;
  const dims = [1, 2, 3].map((k) => (k <= nd ? h.dim[k]! : 1)) as [number, number, number];
  const extra = h.dim.slice(4, nd + 1);
  const volumes = extra.reduce((p, v) => p * v, 1);
  if (volumes > 1) throw new ScanError(path, `${nd}-D NIfTI with ${volumes} volumes (dim = ${h.dim.slice(1, nd + 1).join(' x ')}); only a single 3-D volume is analysed`, 'unsupported');
  if (nd > 3) notes.push(`${nd}-D image with one volume, read as 3-D`);
  const voxels = dims[0] * dims[1] * dims[2];
  const dataBytes = voxels * dt.bytes;
  const needed = h.voxOffset + dataBytes;
  const tooShort = (found: string) =>
    new ScanError(path, `file too short (truncated?): expected ${needed} bytes (vox_offset ${h.voxOffset} + ${dims.join(' x ')} ${dt.name} voxels, ${dataBytes} bytes), found ${found}`);
  // An uncompressed file shows its size: a header asking for more than is there is refused first.
  if (!gzipped && bytes.length < needed) {
    if (voxels > MAX_NIFTI_VOXELS) throw new ScanError(path, `impossible NIfTI header: ${dims.join(' x ')} = ${voxels} ${dt.name} voxels (${dataBytes} bytes) in a file of ${bytes.length} bytes`);
    throw tooShort(`${bytes.length}`);
  }
  if (voxels > MAX_NIFTI_VOXELS) throw new ScanError(path, `header gives ${dims.join(' x ')} = ${voxels} voxels, more than the ${MAX_NIFTI_VOXELS} this reader accepts`, 'unsupported');
  if (dataBytes > MAX_NIFTI_DATA_BYTES) throw new ScanError(path, `header gives ${dataBytes} bytes of voxel data, more than the ${MAX_NIFTI_DATA_BYTES} this reader accepts`, 'unsupported');
  let file = bytes;
  if (gzipped) {
    // Decompress only what the header says is needed, never more.
    try {
      file = await inflateBounded(bytes, path, { format: 'gzip', stopAt: needed, maxOutput: needed });
    } catch (e) {
      if (e instanceof ScanError) throw new ScanError(path, `${e.problem}; the header needs ${needed} bytes`, e.kind);
      throw e;
    }
    if (file.length < needed) throw tooShort(`${file.length} after decompression`);
  }
  if (h.bitpix !== dt.bytes * 8) notes.push(`bitpix ${h.bitpix} does not match datatype ${dt.name}; the datatype was used`);
  if (h.voxOffset > h.headerBytes + 4) notes.push(`${h.voxOffset - h.headerBytes - 4} bytes of header extensions skipped`);

  let slope = h.sclSlope;
  let inter = h.sclInter;
  const scaled = slope !== 0 && Number.isFinite(slope);
  if (scaled && !Number.isFinite(inter)) throw new ScanError(path, `impossible NIfTI header: scl_slope ${slope} with non-finite scl_inter ${inter}`);
  if (!scaled || (slope === 1 && inter === 0)) [slope, inter] = [1, 0];
  else notes.push(`scl_slope ${slope} and scl_inter ${inter} applied`);

  const raw = rawValues(file, h.voxOffset, voxels, h.datatype, h.littleEndian);
  const data = toHU(raw.values, slope, inter, h.datatype, gzipped || raw.copied, notes);
  const code = info.affineFrom === 'sform' ? h.sformCode : h.qformCode;
  notes.push(info.affineFrom === 'pixdim' ? 'affine from pixdim (no qform or sform)' : `affine from ${info.affineFrom} (${info.affineFrom}_code ${code}, ${niftiXformName(code)})`);
  const description = `NIfTI-${h.version}${gzipped ? ' (gzip)' : ''}, ${dt.name} ${h.littleEndian ? 'little' : 'big'}-endian, ${dims.join(' x ')} voxels, ${info.spacing.map((s) => +s.toFixed(3)).join(' x ')} mm, ${info.axcodes}${h.descrip ? `, '${printable(h.descrip)}'` : ''}`;
  return {
    data,
    dims,
    spacing: info.spacing,
    affine: info.affine,
    space: 'RAS',
    source: {
      format: 'nifti',
      path,
      description,
      notes,
      niftiXform: xformOf(h, path, notes),
    },
  };
}

type RawArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;
const CTORS: Record<number, { new (b: ArrayBuffer, o: number, n: number): RawArray; BYTES_PER_ELEMENT: number }> = {
  2: Uint8Array,
  4: Int16Array,
  8: Int32Array,
  16: Float32Array,
  64: Float64Array,
  256: Int8Array,
  512: Uint16Array,
  768: Uint32Array,
};
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The stored values as a typed array in host byte order: a view where possible, else a (swapped) copy. */
function rawValues(file: Uint8Array, offset: number, n: number, datatype: number, littleEndian: boolean): { values: RawArray; copied: boolean } {
  const Ctor = CTORS[datatype]!;
  const size = Ctor.BYTES_PER_ELEMENT;
  const start = file.byteOffset + offset;
  if (littleEndian === HOST_LITTLE_ENDIAN && start % size === 0) return { values: new Ctor(file.buffer as ArrayBuffer, start, n), copied: false };
  // Our own bytes (copyBytes, never `file.slice()`: a Node Buffer's slice is a view of the caller's memory),
  // swapped in place and read from byte 0 of their own buffer.
  const copy = copyBytes(file, offset, offset + n * size);
  if (littleEndian !== HOST_LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < copy.length; i += size)
      for (let a = i, b = i + size - 1; a < b; a++, b--) {
        const t = copy[a]!;
        copy[a] = copy[b]!;
        copy[b] = t;
      }
  }
  return { values: new Ctor(copy.buffer, 0, n), copied: true };
}

const F32_MAX = 3.4028234663852886e38;

/**
 * Scaled values (v * slope + inter in float64, nibabel's get_fdata) into Int16Array when all are integers in
 * int16 range, else Float32Array; non-finite (or beyond float32) values become PADDING_HU with a note.
 * `reuse`: the raw array may become the output (it is not the caller's memory).
 */
function toHU(raw: RawArray, slope: number, inter: number, datatype: number, reuse: boolean, notes: string[]): Int16Array | Float32Array {
  const identity = slope === 1 && inter === 0;
  if (identity && raw instanceof Int16Array) return reuse ? raw : raw.slice();
  if (identity && (raw instanceof Uint8Array || raw instanceof Int8Array)) return new Int16Array(raw);
  const n = raw.length;
  let allInt16 = true;
  let bad = 0;
  for (let i = 0; i < n; i++) {
    const v = raw[i]! * slope + inter;
    if (!(Math.abs(v) <= F32_MAX)) bad++;
    else if (allInt16 && (v !== Math.round(v) || v < -32768 || v > 32767)) allInt16 = false;
  }
  const out = allInt16 ? new Int16Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = raw[i]! * slope + inter;
    out[i] = Math.abs(v) <= F32_MAX ? v : PADDING_HU;
  }
  if (bad > 0) notes.push(`${bad} voxel${bad === 1 ? '' : 's'} NaN or infinite${datatype === 16 || datatype === 64 ? '' : ' after scaling'}: set to ${PADDING_HU} (padding, outside the body)`);
  return out;
}
