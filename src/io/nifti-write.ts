/**
 * The NIfTI-1 writer (masks and maps on a Volume's grid, qform = sform = the affine), split from the reader in
 * nifti.ts, which re-exports it.
 * @module
 */
import { gzipPieces } from './gzip.js';
import { VolumeError, type NiftiXform } from '../volume/volume.js';
import { affineRows, det3, polarOrthogonal, spacingOf } from '../volume/affine.js';

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** NIfTI intent code of a label image (NIFTI_INTENT_LABEL). */
export const NIFTI_INTENT_LABEL = 1002;

/** A mask or map to write; see {@link writeNifti}. */
export interface NiftiImage {
  /** Voxels, x fastest (the Volume layout): uint8 (labels), int16 or float32. */
  data: Uint8Array | Int16Array | Float32Array;
  /** [nx, ny, nz]. */
  dims: [number, number, number];
  /** Voxel index -> RAS mm, wgpu-matrix layout (column-major), as in a Volume whose space is 'RAS'. */
  affine: Float64Array;
  /** 'label' sets intent_code NIFTI_INTENT_LABEL (1002); default 'none'. */
  intent?: 'label' | 'none';
  /** The descrip field (80 bytes at most, non-ASCII characters replaced by '?'). */
  description?: string;
  /**
   * scl_slope and scl_inter of the header (default 1 and 0): readers that apply them (nibabel's get_fdata,
   * ITK-SNAP, 3D Slicer, NiiVue) see `stored * slope + inter`. cal_min / cal_max are written in those scaled
   * units. The slope must be finite and not 0, the intercept finite.
   */
  scale?: { slope: number; inter: number };
  /** gzip the file (default true). */
  gzip?: boolean;
  /**
   * The codes and transforms to write (a NIfTI input's, {@link NiftiXform}): qform_code and sform_code as given,
   * the qform from `xform.qform` and the sform from `xform.sform` where given (else `affine`). Default: both
   * codes 1 (scanner) and both transforms `affine`.
   */
  xform?: NiftiXform;
}

/** Size of the pieces the voxels are handed to the compressor in. */
const PIECE_BYTES = 64 * 1024;

/**
 * Writes a NIfTI-1 single file, little-endian: vox_offset 352 (no extensions); datatype uint8 / int16 / float32
 * from the array type; qform_code and sform_code from `xform` (default 1, scanner), the sform rows the affine's
 * rows (or `xform.sform`'s), the qform the same transform (or `xform.qform`) as quaternion + qfac (pixdim[0]) +
 * voxel sizes (pixdim[1..3]) + offset (exact up to float32
 * rounding for an affine whose 3x3 part has orthogonal columns; for a sheared one the qform is the nearest
 * rotation, the sform exact, and readers that prefer the sform, as nibabel, ITK-SNAP and Slicer do, use it);
 * xyzt_units mm; scl_slope / scl_inter from `scale` (default 1, 0); intent_code 1002 (NIFTI_INTENT_LABEL) for
 * `intent: 'label'`; cal_min / cal_max the data's range after scaling (0 .. largest label for labels); descrip the
 * description. gzip unless `gzip: false`.
 *
 * Memory: a gzipped file is made by streaming the header and then the voxels, 64 KiB at a time, into the
 * compressor, so the uncompressed file is never built; the peak is the compressed bytes (held as chunks, then
 * joined once). `gzip: false` returns the uncompressed file, one buffer of 352 + the data's bytes.
 */
export async function writeNifti(img: NiftiImage): Promise<Uint8Array> {
  const { data, dims, affine } = img;
  if (!dims.every((d) => Number.isInteger(d) && d >= 1 && d <= 32767)) throw new VolumeError(`writeNifti: dimensions must be integers in 1..32767, got ${dims.join(' x ')}`);
  if (data.length !== dims[0] * dims[1] * dims[2]) throw new VolumeError(`writeNifti: ${data.length} values for ${dims.join(' x ')} voxels`);
  if (affine.length !== 16 || !affine.every(Number.isFinite)) throw new VolumeError('writeNifti: the affine must be 16 finite numbers');
  const qAffine = img.xform?.qform ?? affine;
  const sAffine = img.xform?.sform ?? affine;
  for (const a of [qAffine, sAffine]) if (a.length !== 16 || !a.every(Number.isFinite)) throw new VolumeError('writeNifti: the qform and sform must be 16 finite numbers');
  const [qformCode, sformCode] = img.xform ? [img.xform.qformCode, img.xform.sformCode] : [1, 1];
  for (const c of [qformCode, sformCode]) if (!Number.isInteger(c) || c < -32768 || c > 32767) throw new VolumeError(`writeNifti: xform codes must be int16 integers, got ${qformCode} and ${sformCode}`);
  const [datatype, bitpix] = data instanceof Uint8Array ? [2, 8] : data instanceof Int16Array ? [4, 16] : data instanceof Float32Array ? [16, 32] : [0, 0];
  if (datatype === 0) throw new VolumeError('writeNifti: data must be a Uint8Array, Int16Array or Float32Array');
  const slope = img.scale?.slope ?? 1;
  const inter = img.scale?.inter ?? 0;
  if (!Number.isFinite(slope) || slope === 0 || !Number.isFinite(inter)) throw new VolumeError(`writeNifti: scl_slope must be finite and not 0 and scl_inter finite, got ${slope} and ${inter}`);
  // The qform (quaternion, qfac, pixdim, offset) from qAffine; the sform rows from sAffine.
  const qrows = affineRows(qAffine);
  const rows = affineRows(sAffine);
  const r3 = qrows.slice(0, 3).map((r) => r.slice(0, 3));
  const spacing = spacingOf(qAffine);
  if (spacing.some((s) => s === 0)) throw new VolumeError('writeNifti: the affine has a zero column');
  const { quatern, qfac } = matrixToQuatern(r3.map((r) => r.map((v, c) => v / spacing[c]!)));

  const header = new Uint8Array(352);
  const v = new DataView(header.buffer);
  v.setInt32(0, 348, true);
  v.setInt8(38, 'r'.charCodeAt(0)); // regular
  [3, dims[0], dims[1], dims[2], 1, 1, 1, 1].forEach((d, k) => v.setInt16(40 + 2 * k, d, true));
  v.setInt16(68, img.intent === 'label' ? NIFTI_INTENT_LABEL : 0, true);
  v.setInt16(70, datatype, true);
  v.setInt16(72, bitpix, true);
  [qfac, spacing[0], spacing[1], spacing[2], 1, 1, 1, 1].forEach((p, k) => v.setFloat32(76 + 4 * k, p, true));
  v.setFloat32(108, 352, true);
  v.setFloat32(112, slope, true);
  v.setFloat32(116, inter, true);
  v.setUint8(123, 2); // NIFTI_UNITS_MM
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (img.intent === 'label') lo = 0;
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 0];
  // In scaled units (what a reader shows); a negative slope swaps the ends.
  [lo, hi] = [lo * Math.fround(slope) + Math.fround(inter), hi * Math.fround(slope) + Math.fround(inter)].sort((a, b) => a - b) as [number, number];
  v.setFloat32(124, hi, true);
  v.setFloat32(128, lo, true);
  const descrip = (img.description ?? '').slice(0, 80);
  for (let i = 0; i < descrip.length; i++) {
    const c = descrip.charCodeAt(i);
    header[148 + i] = c >= 32 && c < 127 ? c : 63;
  }
  v.setInt16(252, qformCode, true);
  v.setInt16(254, sformCode, true);
  quatern.forEach((q, k) => v.setFloat32(256 + 4 * k, q, true));
  [0, 1, 2].forEach((r) => v.setFloat32(268 + 4 * r, qrows[r]![3]!, true));
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + 16 * r + 4 * c, rows[r]![c]!, true);
  header.set([0x6e, 0x2b, 0x31, 0], 344); // 'n+1\0'
  // 348..351: extension flag 0 (none).

  if (img.gzip !== false) return gzipPieces(filePieces(header, data));
  const out = new Uint8Array(352 + data.byteLength);
  out.set(header, 0);
  let o = 352;
  for (const piece of voxelPieces(data)) {
    out.set(piece, o);
    o += piece.length;
  }
  return out;
}

/** The header, then {@link voxelPieces}, lazily. */
function* filePieces(header: Uint8Array, data: Uint8Array | Int16Array | Float32Array): Generator<Uint8Array> {
  yield header;
  yield* voxelPieces(data);
}

/**
 * The voxels as little-endian bytes, at most PIECE_BYTES at a time, each a fresh copy (so a consumer may hold
 * on to it) and made only when asked for.
 */
function* voxelPieces(data: Uint8Array | Int16Array | Float32Array): Generator<Uint8Array> {
  const size = data.BYTES_PER_ELEMENT;
  const per = PIECE_BYTES / size;
  for (let i = 0; i < data.length; i += per) {
    const part = data.subarray(i, Math.min(data.length, i + per));
    if (HOST_LITTLE_ENDIAN || size === 1) {
      yield new Uint8Array(part.buffer.slice(part.byteOffset, part.byteOffset + part.byteLength));
      continue;
    }
    const piece = new Uint8Array(part.byteLength);
    const dv = new DataView(piece.buffer);
    for (let k = 0; k < part.length; k++) {
      if (size === 2) dv.setInt16(2 * k, part[k]!, true);
      else dv.setFloat32(4 * k, part[k]!, true);
    }
    yield piece;
  }
}

/**
 * The qform quaternion (b, c, d; a >= 0) and qfac of a 3x3 direction matrix (unit columns, rows given), as
 * nibabel's set_qform: qfac -1 when the determinant is negative (the third column then negated), the nearest
 * rotation by polar decomposition, then the quaternion (NIfTI's nifti_mat44_to_quatern).
 */
export function matrixToQuatern(dir: number[][]): { quatern: [number, number, number]; qfac: 1 | -1 } {
  const m = dir.map((r) => r.slice());
  let qfac: 1 | -1 = 1;
  if (det3(m) < 0) {
    qfac = -1;
    for (let r = 0; r < 3; r++) m[r]![2] = -m[r]![2]!;
  }
  const R = polarOrthogonal(m);
  const [r11, r12, r13] = R[0]!;
  const [r21, r22, r23] = R[1]!;
  const [r31, r32, r33] = R[2]!;
  let a = r11! + r22! + r33! + 1;
  let b: number, c: number, d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32! - r23!)) / a;
    c = (0.25 * (r13! - r31!)) / a;
    d = (0.25 * (r21! - r12!)) / a;
  } else {
    const xd = 1 + r11! - (r22! + r33!);
    const yd = 1 + r22! - (r11! + r33!);
    const zd = 1 + r33! - (r11! + r22!);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12! + r21!)) / b;
      d = (0.25 * (r13! + r31!)) / b;
      a = (0.25 * (r32! - r23!)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12! + r21!)) / c;
      d = (0.25 * (r23! + r32!)) / c;
      a = (0.25 * (r13! - r31!)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13! + r31!)) / d;
      c = (0.25 * (r23! + r32!)) / d;
      a = (0.25 * (r21! - r12!)) / d;
    }
    if (a < 0) [b, c, d] = [-b, -c, -d];
  }
  return { quatern: [b, c, d], qfac };
}
