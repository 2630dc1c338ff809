/**
 * The one type every scan reader produces and everything downstream takes: a 3-D grid of Hounsfield units with
 * its geometry. No GPU, no file system: readers turn bytes into a Volume, the analysis turns a Volume into slices.
 *
 * Conventions (fixed; every reader and writer follows them):
 * - `data[x + nx * (y + ny * z)]`: x (column index i) fastest, then y (row index j), then z (slice index k),
 *   the on-disk order of NIfTI and of a stack of DICOM frames.
 * - `affine` maps a voxel index (i, j, k, 1) to a point in millimetres in the space `space` names. It is a 4x4
 *   matrix in wgpu-matrix's layout: column-major, 16 float64 values, translation in elements 12..14.
 *   Readers produce RAS+ (NIfTI's and nibabel's convention: +x right, +y anterior, +z superior); DICOM's
 *   patient coordinates are LPS+ and the DICOM reader converts (x and y negated). `space` says which.
 * - Values are HU after any rescale. Voxels that the source marks as padding (DICOM PixelPaddingValue, outside
 *   the scanned field of view) hold `PADDING_HU`, below any real HU, so windowing treats them as outside the body.
 * @module
 */

/** Where a Volume came from, for reports and `inspect`. */
export interface VolumeSource {
  /** 'dicom', 'nifti', 'safetensors' or 'array' (built in code). */
  format: 'dicom' | 'nifti' | 'safetensors' | 'array';
  /** The path or file name the bytes came from ('' when none). */
  path: string;
  /** One line describing the source, e.g. 'CT series 1.2.3 (120 of 121 files), Siemens, 2019-03-02'. */
  description: string;
  /** DICOM SeriesInstanceUID, where there is one. */
  seriesUID?: string;
  /** DICOM transfer syntax UID(s) met, where there are any. */
  transferSyntax?: string[];
  /** What the reader handled or noticed (split series, gantry tilt corrected, slices dropped, NaN voxels, ...). */
  notes: string[];
  /**
   * A NIfTI input's transforms as its header states them: qform_code and sform_code, and the qform's and the
   * sform's voxel -> RAS matrices (wgpu-matrix layout) where their code is above 0 (else null). Files written on
   * this grid (the masks) keep them, so viewers place them exactly as they place the input. Absent for other
   * formats (their outputs say scanner coordinates, code 1).
   */
  niftiXform?: NiftiXform;
}

/** See {@link VolumeSource.niftiXform}. */
export interface NiftiXform {
  qformCode: number;
  sformCode: number;
  qform: Float64Array | null;
  sform: Float64Array | null;
}

/** A 3-D CT volume in HU with its geometry. */
export interface Volume {
  /** HU, x fastest; Int16Array where every value fits, else Float32Array. Length nx * ny * nz. */
  data: Int16Array | Float32Array;
  /** [nx, ny, nz]: columns, rows, slices (voxel counts along i, j, k). */
  dims: [number, number, number];
  /** Voxel size in mm along i, j, k (the column norms of the affine's 3x3 part). */
  spacing: [number, number, number];
  /** Voxel index -> mm in `space`; wgpu-matrix layout (column-major), float64. */
  affine: Float64Array;
  /** The patient coordinate system of `affine`. Readers in this package produce 'RAS'. */
  space: 'RAS' | 'LPS';
  source: VolumeSource;
}

/** HU value of padding voxels (outside the scanned field of view); below any real tissue or air (-1024). */
export const PADDING_HU = -3024;

/** Error raised for a volume that is not usable (wrong shape, geometry, values), naming the source. */
export class VolumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VolumeError';
  }
}

/** Number of voxels, checked: dims must be positive integers. */
export function voxelCount(dims: readonly [number, number, number]): number {
  for (const d of dims) if (!Number.isInteger(d) || d < 1) throw new VolumeError(`volume dimensions must be positive integers, got ${dims.join(' x ')}`);
  return dims[0] * dims[1] * dims[2];
}
