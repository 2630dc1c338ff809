/**
 * 4x4 voxel-to-patient affines, float64, in wgpu-matrix's layout (column-major: element `4 * col + row`,
 * translation in elements 12..14), built on its `mat4d` functions. These are the helpers every reader and writer
 * shares: RAS <-> LPS, voxel sizes, nibabel's orientation codes ("LPS", "RAS", ...), and conversions to and from
 * the row-major 4x4 arrays that nibabel and JSON use.
 * @module
 */
import { mat4d } from 'wgpu-matrix';

/** A 4x4 affine in wgpu-matrix's column-major layout, 16 float64 values. */
export type Affine = Float64Array;

/** Builds an affine from a row-major 4x4 (or 3x4, the last row then 0 0 0 1) array of rows, as nibabel prints it. */
export function affineFromRows(rows: readonly (readonly number[])[]): Affine {
  if ((rows.length !== 3 && rows.length !== 4) || rows.some((r) => r.length !== 4)) throw new Error('affineFromRows: need 3 or 4 rows of 4 numbers');
  const r3 = rows[3] ?? [0, 0, 0, 1];
  const m = new Float64Array(16);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) m[4 * c + r] = (r < 3 ? rows[r]! : r3)[c]!;
  return m;
}

/** The affine as 4 row-major rows (nibabel's `img.affine.tolist()` layout). */
export function affineRows(a: Affine): number[][] {
  return [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => a[4 * c + r]!));
}

/** Element at (row, col) of the 4x4 matrix. */
export function affineAt(a: Affine, row: number, col: number): number {
  return a[4 * col + row]!;
}

/** The point in mm of voxel (i, j, k) (indices may be fractional). */
export function voxelToWorld(a: Affine, i: number, j: number, k: number): [number, number, number] {
  return [0, 1, 2].map((r) => a[r]! * i + a[4 + r]! * j + a[8 + r]! * k + a[12 + r]!) as [number, number, number];
}

/** Product a * b (apply b first), float64. */
export function multiplyAffines(a: Affine, b: Affine): Affine {
  return mat4d.multiply(a, b, new Float64Array(16));
}

/** Inverse, float64 (the world-to-voxel map). Throws for a singular matrix. */
export function invertAffine(a: Affine): Affine {
  if (mat4d.determinant(a) === 0) throw new Error('affine is singular');
  return mat4d.inverse(a, new Float64Array(16));
}

/**
 * RAS+ <-> LPS+: negates the x and y rows (the same operation converts either way). DICOM patient coordinates
 * are LPS+, NIfTI's and this package's Volumes are RAS+.
 */
export function lpsToRas(a: Affine): Affine {
  return mat4d.multiply(mat4d.scaling([-1, -1, 1], new Float64Array(16)), a, new Float64Array(16));
}

/** The same as {@link lpsToRas}, named for the other direction. */
export const rasToLps = lpsToRas;

/** Voxel size in mm along i, j, k: the norms of the 3x3 part's columns. */
export function spacingOf(a: Affine): [number, number, number] {
  return [0, 1, 2].map((c) => Math.hypot(a[4 * c]!, a[4 * c + 1]!, a[4 * c + 2]!)) as [number, number, number];
}

/** One voxel axis's nearest world axis: `axis` 0, 1, 2 (x, y, z of the space) and `sign` +1 / -1, or null. */
export type AxisOrientation = { axis: 0 | 1 | 2; sign: 1 | -1 } | null;

/**
 * For each voxel axis i, j, k, the world axis it runs closest to and in which direction: nibabel's
 * `io_orientation`. The 3x3 part's columns are normalised, the nearest orthogonal matrix is taken (polar
 * decomposition), then each voxel axis in turn takes the world axis of its largest remaining component, which
 * is then removed from the others (so ties resolve as nibabel's do). A zero column gives null.
 */
export function ioOrientation(a: Affine): [AxisOrientation, AxisOrientation, AxisOrientation] {
  const rs: number[][] = [0, 1, 2].map((r) => [0, 1, 2].map((c) => a[4 * c + r]!));
  for (let c = 0; c < 3; c++) {
    const n = Math.hypot(rs[0]![c]!, rs[1]![c]!, rs[2]![c]!) || 1;
    for (let r = 0; r < 3; r++) rs[r]![c]! /= n;
  }
  const r = polarOrthogonal(rs);
  const out: AxisOrientation[] = [];
  for (let c = 0; c < 3; c++) {
    const col = [r[0]![c]!, r[1]![c]!, r[2]![c]!];
    if (col.every((v) => Math.abs(v) <= 1e-8)) {
      out.push(null);
      continue;
    }
    let best = 0;
    for (let k = 1; k < 3; k++) if (Math.abs(col[k]!) > Math.abs(col[best]!)) best = k;
    out.push({ axis: best as 0 | 1 | 2, sign: col[best]! < 0 ? -1 : 1 });
    for (let k = 0; k < 3; k++) r[best]![k] = 0;
  }
  return out as [AxisOrientation, AxisOrientation, AxisOrientation];
}

const POSITIVE: Record<'RAS' | 'LPS', string> = { RAS: 'RAS', LPS: 'LPS' };
const NEGATIVE: Record<'RAS' | 'LPS', string> = { RAS: 'LPI', LPS: 'RAI' };

/**
 * Orientation code of an affine, nibabel's `aff2axcodes`: for each voxel axis i, j, k, the anatomical direction
 * it increases towards (R/L, A/P, S/I), e.g. 'RAS' or 'LPS'; '?' for an axis the affine does not move along.
 * `space` says what the affine maps to; the letters describe the patient either way (an axial DICOM series
 * gives 'LPS' from its LPS affine and from the RAS one).
 */
export function axcodes(a: Affine, space: 'RAS' | 'LPS' = 'RAS'): string {
  return ioOrientation(a)
    .map((o) => (o === null ? '?' : (o.sign > 0 ? POSITIVE : NEGATIVE)[space][o.axis]!))
    .join('');
}

/** The nearest orthogonal matrix (polar decomposition), by Newton's iteration X <- (X + X^-T) / 2. */
export function polarOrthogonal(m: readonly (readonly number[])[]): number[][] {
  let x = m.map((row) => row.slice());
  const det = det3(x);
  // Singular (a zero column): keep the columns as they are; ioOrientation reports such an axis as null.
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return x;
  for (let it = 0; it < 100; it++) {
    const inv = inverse3(x);
    const next = x.map((row, r) => row.map((v, c) => 0.5 * (v + inv[c]![r]!)));
    let d = 0;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) d = Math.max(d, Math.abs(next[r]![c]! - x[r]![c]!));
    x = next;
    if (d < 1e-15) break;
  }
  return x;
}

/** Determinant of a 3x3 matrix given as rows. */
export function det3(m: readonly (readonly number[])[]): number {
  const [a, b, c] = m as number[][];
  return a![0]! * (b![1]! * c![2]! - b![2]! * c![1]!) - a![1]! * (b![0]! * c![2]! - b![2]! * c![0]!) + a![2]! * (b![0]! * c![1]! - b![1]! * c![0]!);
}

function inverse3(m: readonly (readonly number[])[]): number[][] {
  const d = det3(m);
  const [a, b, c] = m as number[][];
  const cof = [
    [b![1]! * c![2]! - b![2]! * c![1]!, a![2]! * c![1]! - a![1]! * c![2]!, a![1]! * b![2]! - a![2]! * b![1]!],
    [b![2]! * c![0]! - b![0]! * c![2]!, a![0]! * c![2]! - a![2]! * c![0]!, a![2]! * b![0]! - a![0]! * b![2]!],
    [b![0]! * c![1]! - b![1]! * c![0]!, a![1]! * c![0]! - a![0]! * c![1]!, a![0]! * b![1]! - a![1]! * b![0]!],
  ];
  return cof.map((row) => row.map((v) => v / d));
}
