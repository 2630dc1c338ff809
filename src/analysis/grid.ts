/**
 * The axial grid of a Volume, without copying it: which source axis and direction each axis of the axial view
 * takes, so the analysis reads axial slices straight out of the source data and writes its masks straight into
 * arrays on the source grid (voxel for voxel, no resampling, no second copy of the volume).
 *
 * The axial view is exactly `toAxial`'s (src/volume/orient.ts, the same `axialPlan`): k runs along the
 * patient's inferior-to-superior axis, i from the patient's right to left and j from anterior to posterior, as
 * a radiological display shows an axial slice (orientation code 'LPS'); oblique volumes keep their obliquity
 * (no resampling). `toAxial` copies a volume that is not already in that layout; reading through the grid does
 * not, and test/analysis.test.ts checks that both give the same slices and the same source positions.
 * @module
 */
import { axcodes } from '../volume/affine.js';
import { axialPlan } from '../volume/orient.js';
import { VolumeError, type Volume } from '../volume/volume.js';

/** The axial view of a volume as index arithmetic on the source. */
export interface AxialGrid {
  /** Axial dims [nx, ny, nz]. */
  dims: [number, number, number];
  /** Voxel size along the axial i, j, k, mm. */
  spacing: [number, number, number];
  /** Axial voxel -> mm in the source's space (column-major 4x4, float64). */
  affine: Float64Array;
  /** For each axial axis, the source axis it reads. */
  srcAxis: [number, number, number];
  /** For each axial axis, whether it runs against its source axis. */
  flip: [boolean, boolean, boolean];
  /** Source index of axial voxel (0, 0, 0) and the source index step per axial step along i, j, k. */
  origin: number;
  step: [number, number, number];
}

/** The {@link AxialGrid} of `vol` (RAS or LPS affines both handled): `axialPlan` of src/volume/orient.ts. */
export function axialGrid(vol: Pick<Volume, 'dims' | 'affine' | 'space'>): AxialGrid {
  const a = vol.affine;
  if (a.length !== 16) throw new VolumeError(`affine must have 16 values, got ${a.length}`);
  const norms = [0, 1, 2].map((c) => Math.hypot(a[c * 4]!, a[c * 4 + 1]!, a[c * 4 + 2]!));
  if (norms.some((n) => !(n > 0) || !Number.isFinite(n))) throw new VolumeError(`affine has a zero or non-finite voxel axis: [${Array.from(a).join(', ')}]`);
  const { axes: srcAxis, flips: flip } = axialPlan(a, vol.space);
  const sdims = vol.dims;
  const sstride = [1, sdims[0], sdims[0] * sdims[1]];
  const dims = srcAxis.map((c) => sdims[c]!) as [number, number, number];
  const spacing = srcAxis.map((c) => norms[c]!) as [number, number, number];
  let origin = 0;
  const step = [0, 0, 0] as [number, number, number];
  const affine = new Float64Array(16);
  affine[15] = 1;
  const t = [a[12]!, a[13]!, a[14]!];
  for (let o = 0; o < 3; o++) {
    const c = srcAxis[o]!;
    const s = flip[o] ? -1 : 1;
    step[o] = s * sstride[c]!;
    if (flip[o]) origin += (sdims[c]! - 1) * sstride[c]!;
    for (let r = 0; r < 3; r++) {
      affine[o * 4 + r] = s * a[c * 4 + r]!;
      if (flip[o]) t[r]! += (sdims[c]! - 1) * a[c * 4 + r]!;
    }
  }
  affine.set(t, 12);
  return { dims, spacing, affine, srcAxis, flip, origin, step };
}

/** Source index of axial voxel (i, j, k). */
export function sourceIndex(g: AxialGrid, i: number, j: number, k: number): number {
  return g.origin + i * g.step[0] + j * g.step[1] + k * g.step[2];
}

/** Whether the axial view is the source itself (no permutation, no flip). */
export function isIdentity(g: AxialGrid): boolean {
  return g.srcAxis.every((c, o) => c === o) && g.flip.every((f) => !f);
}

/**
 * Copies axial slice k of `src` (source layout) into `out` (nx * ny, row-major: i fastest), converting with
 * `map` (e.g. nothing, or HU -> float).
 */
export function readAxialSlice(g: AxialGrid, src: ArrayLike<number>, k: number, out: { [i: number]: number; length: number }): void {
  const [nx, ny] = g.dims;
  const [si, sj, sk] = g.step;
  let o = 0;
  for (let j = 0; j < ny; j++) {
    let s = g.origin + j * sj + k * sk;
    for (let i = 0; i < nx; i++, s += si) out[o++] = src[s]!;
  }
}

/** Writes axial slice k (nx * ny values, i fastest) into `dst` on the source grid. */
export function writeAxialSlice(g: AxialGrid, slice: ArrayLike<number>, k: number, dst: { [i: number]: number; length: number }): void {
  const [nx, ny] = g.dims;
  const [si, sj, sk] = g.step;
  let o = 0;
  for (let j = 0; j < ny; j++) {
    let s = g.origin + j * sj + k * sk;
    for (let i = 0; i < nx; i++, s += si) dst[s] = slice[o++]!;
  }
}

/** Orientation code of an affine (nibabel's aff2axcodes, src/volume/affine.ts `axcodes`), e.g. 'LPS'. */
export function axisCodes(affine: Float64Array, space: 'RAS' | 'LPS' = 'RAS'): string {
  return axcodes(affine, space);
}

/**
 * Position of axial slice k along its normal, mm: the k column's unit vector dotted with the centre of slice
 * k (the world point of voxel (0, 0, k) projected on the normal; the same for every voxel of a slice that is
 * perpendicular to k), in the volume's space.
 */
export function slicePositionMm(g: AxialGrid, k: number): number {
  const a = g.affine;
  // Normal: cross product of the i and j columns (the slice plane), oriented like the k column.
  const ci = [a[0]!, a[1]!, a[2]!];
  const cj = [a[4]!, a[5]!, a[6]!];
  const ck = [a[8]!, a[9]!, a[10]!];
  let n = [ci[1]! * cj[2]! - ci[2]! * cj[1]!, ci[2]! * cj[0]! - ci[0]! * cj[2]!, ci[0]! * cj[1]! - ci[1]! * cj[0]!];
  const len = Math.hypot(...n);
  n = n.map((v) => v / len);
  if (n[0]! * ck[0]! + n[1]! * ck[1]! + n[2]! * ck[2]! < 0) n = n.map((v) => -v);
  let p = 0;
  for (let r = 0; r < 3; r++) p += n[r]! * (a[12 + r]! + k * ck[r]!);
  return p;
}
