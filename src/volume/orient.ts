/**
 * The axial view of a volume: its voxels permuted and flipped, never resampled, so that the model sees axial
 * slices the way a radiologist reads them, and the inverse map that brings masks and maps back to the source
 * grid voxel for voxel.
 *
 * The axial view's voxel axes are LPS (orientation code 'LPS', the letters of nibabel's `aff2axcodes`):
 * - i (columns, fastest in memory) runs from the patient's right to the patient's left,
 * - j (rows) runs from anterior to posterior,
 * - k (slices) runs from inferior to superior.
 * This is the layout of a standard axial DICOM slice (ImageOrientationPatient 1\0\0\0\1\0: rows increase
 * towards L, columns towards P), shown as radiologists do: the patient's right on the left of the image,
 * anterior at the top, seen from the feet. The model's synthetic training slices (src/analysis/phantom.ts) and
 * a typical DICOM series are in this layout; a NIfTI from nibabel or dcm2niix is usually stored 'LAS' or 'RAS'
 * (rows flipped or both axes flipped), and a sagittal or coronal acquisition has its axes permuted, so every
 * volume goes through `toAxial` before its slices are fed to the model.
 *
 * Which voxel axis becomes which follows nibabel's `io_orientation` (the nearest world axis of each voxel axis,
 * see affine.ts), so an oblique volume is taken along the axes it is closest to, still without resampling.
 * The view's affine maps each view voxel to the same point in mm as the source voxel it came from.
 * @module
 */
import type { Volume } from './volume.js';
import { VolumeError, voxelCount } from './volume.js';
import { axcodes, ioOrientation, spacingOf, type Affine } from './affine.js';

/** Any typed array of voxels on a grid (x fastest), e.g. a mask, a probability map or the HU data. */
export type VoxelArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

/** Orientation code of every axial view. */
export const AXIAL_AXCODES = 'LPS';

/** A volume as the model sees it (axial, LPS voxel axes) and the maps between its grid and the source's. */
export interface AxialView {
  /**
   * The volume permuted/flipped (no resampling) so that k runs along the patient's S-I axis (inferior to
   * superior), i from right to left and j from anterior to posterior (see the module doc). Its affine maps each
   * voxel to the same mm point as the source voxel it holds. When the source is already in that layout this is
   * the source Volume itself (same object, same data array: no copy).
   */
  volume: Volume;
  /** For each view axis (i, j, k), the source axis (0, 1, 2) it comes from. */
  axes: [number, number, number];
  /** For each view axis, whether it runs opposite to its source axis. */
  flips: [boolean, boolean, boolean];
  /** Whether the view is the source unchanged (axes 0, 1, 2, no flips). */
  identity: boolean;
  /** The source's orientation code (nibabel's aff2axcodes), e.g. 'LAS', 'RAS', 'PIR' for a sagittal volume. */
  sourceAxcodes: string;
  /**
   * Maps an array on the axial grid back to the source grid, voxel for voxel (the exact inverse of the view's
   * permutation and flips). Returns a new array of the same type, or `data` itself when `identity`.
   */
  toSource<T extends VoxelArray>(data: T): T;
  /** Maps an array on the source grid to the axial grid (what `volume.data` is to the source data). */
  fromSource<T extends VoxelArray>(data: T): T;
}

/** The axial view of a volume; see {@link AxialView} and the module doc. */
export function toAxial(vol: Volume): AxialView {
  const dims = vol.dims;
  const n = voxelCount(dims);
  if (vol.data.length !== n) throw new VolumeError(`volume data has ${vol.data.length} values for ${dims.join(' x ')} voxels`);
  const { axes, flips } = axialPlan(vol.affine, vol.space);
  const identity = axes[0] === 0 && axes[1] === 1 && axes[2] === 2 && !flips.some((f) => f);
  const sourceAxcodes = axcodes(vol.affine, vol.space);
  const viewDims = axes.map((s) => dims[s]!) as [number, number, number];
  const srcStride = [1, dims[0], dims[0] * dims[1]];
  const step = [0, 1, 2].map((a) => (flips[a] ? -1 : 1) * srcStride[axes[a]!]!) as [number, number, number];
  let start = 0;
  for (let a = 0; a < 3; a++) if (flips[a]) start += (viewDims[a]! - 1) * srcStride[axes[a]!]!;

  const remap = <T extends VoxelArray>(data: T, toView: boolean): T => {
    if (data.length !== n) throw new VolumeError(`array of ${data.length} values does not fit the ${dims.join(' x ')} grid`);
    if (identity) return data;
    const out = new (data.constructor as new (len: number) => T)(n);
    const [nu, nv, nw] = viewDims;
    if (step[0] !== 1 && Math.abs(step[1]) < Math.abs(step[0])) {
      // The view's columns are the source's nearer axis (a sagittal or coronal source): walk each slice of the
      // view column by column, so the source is read (or written) along its rows, not across them.
      for (let w = 0; w < nw; w++) {
        const plane = w * nu * nv;
        const base = start + w * step[2];
        for (let u = 0; u < nu; u++) {
          if (toView) copyStrided(out, plane + u, nu, data, base + u * step[0], step[1], nv);
          else copyStrided(out, base + u * step[0], step[1], data, plane + u, nu, nv);
        }
      }
      return out;
    }
    let idx = 0;
    for (let w = 0; w < nw; w++) {
      for (let v = 0; v < nv; v++, idx += nu) {
        const off = start + v * step[1] + w * step[2];
        // Rows that keep their direction (the usual case: only rows or slices flipped) move as whole rows.
        if (step[0] === 1) {
          if (toView) out.set(data.subarray(off, off + nu) as never, idx);
          else out.set(data.subarray(idx, idx + nu) as never, off);
        } else if (toView) copyStrided(out, idx, 1, data, off, step[0], nu);
        else copyStrided(out, off, step[0], data, idx, 1, nu);
      }
    }
    return out;
  };

  let volume = vol;
  if (!identity) {
    const a = vol.affine;
    const affine = new Float64Array(16);
    affine[15] = 1;
    for (let r = 0; r < 3; r++) affine[12 + r] = a[12 + r]!;
    for (let v = 0; v < 3; v++) {
      const s = axes[v]!;
      const sign = flips[v] ? -1 : 1;
      for (let r = 0; r < 3; r++) {
        affine[4 * v + r] = sign * a[4 * s + r]!;
        if (flips[v]) affine[12 + r]! += (viewDims[v]! - 1) * a[4 * s + r]!;
      }
    }
    volume = {
      data: remap(vol.data, true),
      dims: viewDims,
      spacing: spacingOf(affine),
      affine,
      space: vol.space,
      source: vol.source,
    };
  }
  return {
    volume,
    axes: [...axes] as [number, number, number],
    flips: [...flips] as [boolean, boolean, boolean],
    identity,
    sourceAxcodes,
    toSource: (data) => remap(data, false),
    fromSource: (data) => remap(data, true),
  };
}

/** dst[d + t * dStep] = src[s + t * sStep] for t < n. */
function copyStrided(dst: VoxelArray, d: number, dStep: number, src: VoxelArray, s: number, sStep: number, n: number): void {
  for (let t = 0; t < n; t++, d += dStep, s += sStep) dst[d] = src[s]!;
}

/**
 * Which source axis each axial view axis takes and whether it is flipped, from the affine (in `space`): view
 * axis 0 is the source axis nearest the patient's x axis, pointing left; 1 nearest y, pointing posterior; 2
 * nearest z, pointing superior. A source axis the affine does not move along (a zero column) takes the view
 * axis left over, unflipped.
 */
export function axialPlan(affine: Affine, space: 'RAS' | 'LPS'): { axes: [number, number, number]; flips: [boolean, boolean, boolean] } {
  const ornt = ioOrientation(affine);
  // The sign along each world axis that means L, P, S in this space.
  const want = space === 'RAS' ? [-1, -1, 1] : [1, 1, 1];
  const axes: (number | undefined)[] = [undefined, undefined, undefined];
  const flips = [false, false, false];
  ornt.forEach((o, s) => {
    if (o === null) return;
    axes[o.axis] = s;
    flips[o.axis] = o.sign !== want[o.axis];
  });
  const unused = [0, 1, 2].filter((s) => !axes.includes(s));
  for (let v = 0; v < 3; v++) if (axes[v] === undefined) axes[v] = unused.shift()!;
  return { axes: axes as [number, number, number], flips: flips as [boolean, boolean, boolean] };
}
