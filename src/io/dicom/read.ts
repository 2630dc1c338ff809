/**
 * A DICOM series to a Volume: geometry first (from the headers, before any pixel is decoded), then the pixels
 * file by file, rescaled to HU, into one grid.
 *
 * Geometry (the rules, and the tolerances they use):
 * - Slices are sorted by ImagePositionPatient projected on the slice normal (row direction x column direction
 *   of ImageOrientationPatient), never by InstanceNumber or file name.
 * - Duplicates: slices whose positions are within 0.01 mm of each other. Identical HU: one is kept and a note
 *   says which files were dropped; different HU: ScanError 'unusable' naming the files.
 * - Spacing comes from the positions, never SliceThickness: the third affine column is (last - first) /
 *   (n - 1). Missing slices: any gap between neighbours above 1.5 x the median spacing is refused, naming the
 *   positions and files either side. Irregular spacing: a gap that differs from the median by more than 1 %
 *   AND by more than 0.1 mm is refused likewise. (dcm2niix converts such series with a warning, or resamples
 *   them to equal spacing; we refuse, since the model needs a regular grid and a silent gap misplaces lesions.)
 * - Gantry tilt: when the slice positions leave the normal (any position more than 0.02 mm + 0.1 % of its
 *   distance along the normal away from the line through the first slice along the normal, i.e. a tilt of
 *   about 0.06 degrees or more), the series is refused naming the tilt angle. We do not resample (dcm2niix
 *   does, by shearing: its `_Tilt_1` output).
 * - ImageOrientationPatient must be unit vectors within 0.01 and orthogonal within 0.01 (cosine); PixelSpacing
 *   must agree across slices within 0.1 %; all slices must share one orientation (the scan split by it).
 * - The affine maps (i = column, j = row, k = sorted slice) to LPS mm, then is converted to RAS (x and y
 *   negated), built with wgpu-matrix's float64 mat4d.
 *
 * Values: stored value x RescaleSlope + RescaleIntercept, per slice (per frame for enhanced objects). Stored
 * values equal to PixelPaddingValue (or within [PixelPaddingValue, PixelPaddingRangeLimit] when the limit is
 * present), compared as the stored integers read per PixelRepresentation, become PADDING_HU. The volume is an
 * Int16Array when every slope and intercept is an integer and every value fits int16, else Float32Array.
 * @module
 */
import { mat4d } from 'wgpu-matrix';
import { PADDING_HU, type Volume } from '../../volume/volume.js';
import { ScanError } from '../errors.js';
import { readHeader, type DicomHeader } from './header.js';
import { parseDicom } from './parse.js';
import { checkDecodable, decodeFrame } from './pixels.js';
import type { DicomInstance, DicomScan, DicomSeries } from './series.js';
import { describeTransferSyntax } from './transfer.js';

/** Most voxels in one volume: 2^30 (2 GiB as int16; a 4096-slice 512 x 512 scan). */
export const MAX_VOXELS = 2 ** 30;
/** Positions closer than this (mm) are the same slice. */
export const DUPLICATE_TOLERANCE_MM = 0.01;
/** A gap above this multiple of the median spacing is a missing slice. */
export const GAP_FACTOR = 1.5;
/** Spacings may differ from the median by up to 1 % or 0.1 mm, whichever is larger. */
export const SPACING_RELATIVE_TOLERANCE = 0.01;
export const SPACING_ABSOLUTE_TOLERANCE_MM = 0.1;

type Vec3 = [number, number, number];
const dot = (a: readonly number[], b: readonly number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const sub = (a: readonly number[], b: readonly number[]): Vec3 => [a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!];
const norm = (a: readonly number[]): number => Math.hypot(a[0]!, a[1]!, a[2]!);
const cross = (a: readonly number[], b: readonly number[]): Vec3 => [a[1]! * b[2]! - a[2]! * b[1]!, a[2]! * b[0]! - a[0]! * b[2]!, a[0]! * b[1]! - a[1]! * b[0]!];
const fmt = (v: number, d = 2): string => String(+v.toFixed(d));

/** 'file' or 'file frame N' for multi-frame files. */
function nameOf(i: DicomInstance): string {
  return i.header.frames > 1 ? `${i.path} frame ${i.frame + 1}` : i.path;
}

/** The sorted slices and the LPS affine of a series, from its headers alone. */
export interface DicomGeometry {
  /** Unique positions in order along the normal; each entry lists the instances at that position. */
  slices: DicomInstance[][];
  /** Voxel -> LPS mm (column-major float64). */
  affineLps: Float64Array;
  spacing: [number, number, number];
  notes: string[];
}

/** Sorts a series' slices and builds its affine, refusing duplicates at one position only after decoding. */
export function seriesGeometry(series: DicomSeries, where: string): DicomGeometry {
  const notes: string[] = [];
  const insts = series.instances;
  if (!insts.length) throw new ScanError(where, `series ${series.key} has no slices`, 'unusable');
  for (const i of insts) {
    if (!i.orientation) throw new ScanError(i.path, 'no ImageOrientationPatient: the slice cannot be placed in space', 'unusable');
    if (!i.position) throw new ScanError(i.path, 'no ImagePositionPatient: the slice cannot be placed in space', 'unusable');
    if (!i.pixelSpacing || !(i.pixelSpacing[0] > 0) || !(i.pixelSpacing[1] > 0)) throw new ScanError(i.path, 'no valid PixelSpacing', 'unusable');
  }
  const o = insts[0]!.orientation!;
  let row: Vec3 = [o[0], o[1], o[2]];
  let col: Vec3 = [o[3], o[4], o[5]];
  const rn = norm(row);
  const cn = norm(col);
  if (Math.abs(rn - 1) > 0.01 || Math.abs(cn - 1) > 0.01 || Math.abs(dot(row, col)) > 0.01) {
    throw new ScanError(insts[0]!.path, `ImageOrientationPatient ${o.join('\\')} is not two orthogonal unit vectors`, 'malformed');
  }
  row = [row[0] / rn, row[1] / rn, row[2] / rn];
  col = [col[0] / cn, col[1] / cn, col[2] / cn];
  const normal = cross(row, col);
  const ps = insts[0]!.pixelSpacing!;
  for (const i of insts) {
    if (Math.abs(i.pixelSpacing![0] - ps[0]) > 1e-3 * ps[0] || Math.abs(i.pixelSpacing![1] - ps[1]) > 1e-3 * ps[1]) {
      throw new ScanError(i.path, `PixelSpacing ${i.pixelSpacing!.join('\\')} differs from ${ps.join('\\')} of ${insts[0]!.path} in the same series`, 'unusable');
    }
  }
  const sorted = insts.map((inst) => ({ inst, d: dot(inst.position!, normal) }))
    .sort((a, b) => a.d - b.d || (a.inst.path < b.inst.path ? -1 : a.inst.path > b.inst.path ? 1 : 0) || a.inst.frame - b.inst.frame);
  const slices: DicomInstance[][] = [];
  const depth: number[] = [];
  for (const { inst, d } of sorted) {
    const last = slices[slices.length - 1];
    if (last && Math.abs(d - depth[depth.length - 1]!) < DUPLICATE_TOLERANCE_MM) last.push(inst);
    else {
      slices.push([inst]);
      depth.push(d);
    }
  }
  const name = nameOf;
  const nz = slices.length;
  const p0 = slices[0]![0]!.position!;
  let sliceVec: Vec3;
  if (nz === 1) {
    const t = insts[0]!.header.sliceThickness ?? 1;
    sliceVec = [normal[0] * t, normal[1] * t, normal[2] * t];
    notes.push(`a single slice: the third axis is ${fmt(t)} mm along the normal (SliceThickness), not a measured spacing`);
  } else {
    const gaps = depth.slice(1).map((d, k) => d - depth[k]!);
    const median = [...gaps].sort((a, b) => a - b)[Math.floor((gaps.length - 1) / 2)]!;
    for (let k = 0; k < gaps.length; k++) {
      const g = gaps[k]!;
      const where2 = `between ${fmt(depth[k]!)} mm (${name(slices[k]![0]!)}) and ${fmt(depth[k + 1]!)} mm (${name(slices[k + 1]![0]!)}) along the slice normal`;
      if (g > GAP_FACTOR * median) {
        throw new ScanError(where, `missing slice(s) in series ${series.key}: a gap of ${fmt(g, 3)} mm ${where2}, where the median spacing is ${fmt(median, 3)} mm (gaps above ${GAP_FACTOR} x the median are refused)`, 'unusable');
      }
      if (Math.abs(g - median) > SPACING_RELATIVE_TOLERANCE * median && Math.abs(g - median) > SPACING_ABSOLUTE_TOLERANCE_MM) {
        throw new ScanError(where, `irregular slice spacing in series ${series.key}: ${fmt(g, 3)} mm ${where2}, where the median is ${fmt(median, 3)} mm (tolerance 1 % and 0.1 mm)`, 'unusable');
      }
    }
    let worst = 0;
    for (let k = 1; k < nz; k++) {
      const v = sub(slices[k]![0]!.position!, p0);
      const along = dot(v, normal);
      const off = norm([v[0] - along * normal[0], v[1] - along * normal[1], v[2] - along * normal[2]]);
      if (off > 0.02 + 1e-3 * Math.abs(along)) worst = Math.max(worst, Math.atan2(off, Math.abs(along)));
    }
    if (worst > 0) {
      const v = sub(slices[nz - 1]![0]!.position!, p0);
      const along = dot(v, normal);
      const angle = (Math.atan2(norm([v[0] - along * normal[0], v[1] - along * normal[1], v[2] - along * normal[2]]), Math.abs(along)) * 180) / Math.PI;
      const stated = insts[0]!.header.gantryTilt;
      throw new ScanError(where, `gantry tilt in series ${series.key}: the slice positions run ${fmt(angle)} degrees off the slice normal` +
        `${stated !== undefined ? ` (GantryDetectorTilt ${fmt(stated)})` : ''}; tilted series are refused, not resampled (dcm2niix can correct the tilt)`, 'unusable');
    }
    const pl = slices[nz - 1]![0]!.position!;
    sliceVec = [(pl[0] - p0[0]) / (nz - 1), (pl[1] - p0[1]) / (nz - 1), (pl[2] - p0[2]) / (nz - 1)];
  }
  const dx = ps[1];
  const dy = ps[0];
  const affineLps = mat4d.create(
    row[0] * dx, row[1] * dx, row[2] * dx, 0,
    col[0] * dy, col[1] * dy, col[2] * dy, 0,
    sliceVec[0], sliceVec[1], sliceVec[2], 0,
    p0[0], p0[1], p0[2], 1,
  ) as Float64Array;
  return { slices, affineLps, spacing: [dx, dy, norm(sliceVec)], notes };
}

/** LPS -> RAS: x and y negated. */
export function lpsAffineToRas(affineLps: Float64Array): Float64Array {
  return mat4d.multiply(mat4d.scaling([-1, -1, 1]), affineLps) as Float64Array;
}

/** Loads the bytes of one file of the series. */
export type DicomFileSource = Map<string, Uint8Array> | ((path: string) => Promise<Uint8Array>);

async function load(files: DicomFileSource, path: string): Promise<Uint8Array> {
  if (typeof files === 'function') return files(path);
  const b = files.get(path);
  if (!b) throw new ScanError(path, 'file not given to the reader', 'malformed');
  return b;
}

/** Stored values in [lo, hi] are padding (lo > hi when the file declares none). */
function paddingRange(h: DicomHeader): [number, number] {
  const p = h.padding;
  if (!p) return [1, 0];
  if (p.limit === undefined) return [p.value, p.value];
  return [Math.min(p.value, p.limit), Math.max(p.value, p.limit)];
}

/**
 * Decodes a series into a Volume in HU, RAS. Geometry is checked first (see the module comment for the
 * rules and tolerances), then each file is loaded, decoded and released in turn: with a loader function only
 * one file's bytes are held at a time. Duplicated slices are decoded and compared. Throws ScanError naming
 * the file and the problem.
 */
export async function readDicomSeries(scan: DicomScan, series: DicomSeries, files: DicomFileSource): Promise<Volume> {
  const where = scan.root;
  const headers = [...new Set(series.instances.map((i) => i.header))];
  for (const h of headers) checkDecodable(h);
  const geom = seriesGeometry(series, where);
  const nx = series.columns;
  const ny = series.rows;
  const nz = geom.slices.length;
  const plane = nx * ny;
  if (plane * nz > MAX_VOXELS) throw new ScanError(where, `series ${series.key} has ${nx} x ${ny} x ${nz} voxels, beyond the ${MAX_VOXELS} this reader holds`, 'unsupported');
  const integral = series.instances.every((i) => Number.isInteger(i.slope) && Number.isInteger(i.intercept));
  // The volume is allocated when the first slice has decoded, so a header claiming a large image in a small
  // compressed file is refused by its decoder (RLE: 64 x the frame; JPEG: the codestream's size) before it.
  let data!: Int16Array | Float32Array;
  let allocated = false;
  const notes = [...geom.notes];
  // Work file by file: every instance (first at its position or a duplicate) with its slice index.
  const work = new Map<string, { inst: DicomInstance; k: number; dup: boolean }[]>();
  geom.slices.forEach((group, k) => group.forEach((inst, m) => {
    let w = work.get(inst.path);
    if (!w) work.set(inst.path, (w = []));
    w.push({ inst, k, dup: m > 0 });
  }));
  const dropped: string[] = [];
  let hu: Float64Array | undefined; // allocated with the first decoded slice, as the volume below
  // First every slice's first instance, file by file in slice order; then the duplicates, compared with them.
  for (const pass of [false, true]) {
    const paths = [...work.keys()].filter((p) => work.get(p)!.some((w) => w.dup === pass));
    paths.sort((a, b) => Math.min(...work.get(a)!.map((w) => w.k)) - Math.min(...work.get(b)!.map((w) => w.k)));
    for (const path of paths) {
      const bytes = await load(files, path);
      const parsed = await parseDicom(bytes, path, false);
      const h = readHeader(parsed.dataSet, path, parsed.transferSyntax, parsed.dataSet.byteArray.length);
      if (h.rows !== ny || h.columns !== nx) throw new ScanError(path, `image size ${h.columns} x ${h.rows} differs from the series' ${nx} x ${ny}`, 'unusable');
      checkDecodable(h);
      for (const { inst, k } of work.get(path)!.filter((w) => w.dup === pass)) {
        if (inst.frame >= h.frames) throw new ScanError(path, `frame ${inst.frame + 1} is gone: the file now holds ${h.frames} frame(s)`, 'malformed');
        const stored = await decodeFrame(parsed.dataSet, h, inst.frame);
        hu ??= new Float64Array(plane);
        const { slope, intercept } = h.frameInfo[inst.frame]!;
        const [padLo, padHi] = paddingRange(h);
        let lo = Infinity;
        let hi = -Infinity;
        for (let p = 0; p < plane; p++) {
          const v = stored[p]!;
          const x = v >= padLo && v <= padHi ? PADDING_HU : v * slope + intercept;
          hu[p] = x;
          if (x < lo) lo = x;
          if (x > hi) hi = x;
        }
        const off = k * plane;
        if (pass) {
          const first = geom.slices[k]![0]!;
          for (let p = 0; p < plane; p++) {
            if (Math.fround(hu[p]!) !== data[off + p]) {
              throw new ScanError(where, `two different slices at one position in series ${series.key}: ${nameOf(first)} and ${nameOf(inst)} ` +
                `(voxel ${p % nx}, ${Math.floor(p / nx)}: ${data[off + p]} vs ${hu[p]} HU)`, 'unusable');
            }
          }
          dropped.push(`${nameOf(inst)} (same position and voxels as ${nameOf(first)})`);
          continue;
        }
        // Integral slopes and intercepts give integral values: only the range decides int16.
        if (!allocated) [data, allocated] = [integral ? new Int16Array(plane * nz) : new Float32Array(plane * nz), true];
        if (data instanceof Int16Array && (lo < -32768 || hi > 32767)) data = Float32Array.from(data);
        data.set(hu, off);
      }
    }
  }
  if (dropped.length) notes.push(`duplicate slice(s) dropped: ${dropped.join('; ')}`);
  const splitNote = series.splitReason ? [`series split by orientation/size: ${series.splitReason}`] : [];
  const first = series.instances[0]!.header;
  const skippedNote = scan.skipped.length ? [`${scan.skipped.length} file(s) skipped in the folder (not images of a series)`] : [];
  const filesUsed = new Set(series.instances.map((i) => i.path)).size;
  return {
    data,
    dims: [nx, ny, nz],
    spacing: geom.spacing,
    affine: lpsAffineToRas(geom.affineLps),
    space: 'RAS',
    source: {
      format: 'dicom',
      path: where,
      description: `${series.modality || 'DICOM'} series ${series.key}${series.description ? ` "${series.description}"` : ''} (${nz} slice(s) from ${filesUsed} file(s))` +
        `${first.manufacturer ? `, ${first.manufacturer}` : ''}${first.studyDate ? `, ${first.studyDate}` : ''}`,
      seriesUID: series.uid,
      transferSyntax: series.transferSyntaxes,
      notes: [...splitNote, ...notes, ...skippedNote],
    },
  };
}

/** What `inspect` shows of one DICOM file (any modality), pixels decoded. */
export interface DicomFileDescription {
  path: string;
  transferSyntax: string;
  /** 'UID (name)'. */
  transferSyntaxName: string;
  sopClassUID: string;
  modality: string;
  seriesUID: string;
  seriesDescription: string;
  imageType: string[];
  rows: number;
  columns: number;
  frames: number;
  bitsAllocated: number;
  bitsStored: number;
  pixelRepresentation: number;
  photometric: string;
  orientation?: number[];
  /** ImagePositionPatient of the first frame. */
  position?: number[];
  pixelSpacing?: number[];
  /** Rescaled value range over all frames, padding excluded (absent without pixel data). */
  valueRange?: [number, number];
  paddingVoxels: number;
  notes: string[];
}

/** Describes one DICOM file and decodes all its frames (so a codec failure shows). Throws ScanError. */
export async function describeDicomFile(bytes: Uint8Array, path: string): Promise<DicomFileDescription> {
  const parsed = await parseDicom(bytes, path, false);
  const h = readHeader(parsed.dataSet, path, parsed.transferSyntax, parsed.dataSet.byteArray.length);
  const f0 = h.frameInfo[0];
  const d: DicomFileDescription = {
    path,
    transferSyntax: h.transferSyntax,
    transferSyntaxName: describeTransferSyntax(h.transferSyntax),
    sopClassUID: h.sopClassUID,
    modality: h.modality,
    seriesUID: h.seriesUID,
    seriesDescription: h.seriesDescription,
    imageType: h.imageType,
    rows: h.rows,
    columns: h.columns,
    frames: h.hasPixelData ? h.frames : 0,
    bitsAllocated: h.bitsAllocated,
    bitsStored: h.bitsStored,
    pixelRepresentation: h.pixelRepresentation,
    photometric: h.photometric,
    paddingVoxels: 0,
    notes: [],
  };
  if (f0?.orientation) d.orientation = f0.orientation;
  if (f0?.position) d.position = f0.position;
  if (f0?.pixelSpacing) d.pixelSpacing = f0.pixelSpacing;
  if (!h.hasPixelData) {
    d.notes.push('no pixel data');
    return d;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (let f = 0; f < h.frames; f++) {
    const stored = await decodeFrame(parsed.dataSet, h, f);
    const { slope, intercept } = h.frameInfo[f]!;
    const [padLo, padHi] = paddingRange(h);
    for (let p = 0; p < stored.length; p++) {
      if (stored[p]! >= padLo && stored[p]! <= padHi) { d.paddingVoxels++; continue; }
      const v = stored[p]! * slope + intercept;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo <= hi) d.valueRange = [lo, hi];
  return d;
}
