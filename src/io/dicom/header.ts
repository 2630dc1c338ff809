/**
 * The header of one DICOM file as this package uses it: identity (SOP class, modality, series), the image
 * pixel module (rows, columns, bits, sign), and per frame the geometry and rescale, taken from the Per-Frame
 * Functional Groups, then the Shared Functional Groups, then the top level (classic single-frame objects).
 * @module
 */
import type { DataSet } from 'dicom-parser';
import { ScanError } from '../errors.js';
import { firstItem, guarded, integer, items, numbers, str, strs } from './parse.js';

/** Geometry and rescale of one frame. */
export interface DicomFrameInfo {
  /** ImagePositionPatient: the centre of the first voxel, LPS mm (undefined when the file has none). */
  position?: [number, number, number];
  /** ImageOrientationPatient: row direction (along a row, increasing column) then column direction, LPS. */
  orientation?: [number, number, number, number, number, number];
  /** PixelSpacing: [between rows, between columns] in mm. */
  pixelSpacing?: [number, number];
  slope: number;
  intercept: number;
}

/** What one file says about itself (no pixel values). */
export interface DicomHeader {
  path: string;
  transferSyntax: string;
  sopClassUID: string;
  /** SOPInstanceUID ('' when absent): derived objects (DICOM SEG, SR) reference the source slices by it. */
  sopInstanceUID: string;
  /** FrameOfReferenceUID ('' when absent). */
  frameOfReferenceUID: string;
  modality: string;
  seriesUID: string;
  studyUID: string;
  seriesNumber?: number;
  seriesDescription: string;
  instanceNumber?: number;
  imageType: string[];
  manufacturer: string;
  studyDate: string;
  rows: number;
  columns: number;
  frames: number;
  samplesPerPixel: number;
  photometric: string;
  bitsAllocated: number;
  bitsStored: number;
  highBit: number;
  /** 0 unsigned, 1 two's complement. */
  pixelRepresentation: number;
  /** PixelPaddingValue (and PixelPaddingRangeLimit) as stored values, read per PixelRepresentation. */
  padding?: { value: number; limit?: number };
  gantryTilt?: number;
  /** SpacingBetweenSlices, else SliceThickness (only used for a single slice's third axis). */
  sliceThickness?: number;
  hasPixelData: boolean;
  /** Why the pixel data cannot be read whole (a file cut short), found without decoding. */
  pixelProblem?: string;
  frameInfo: DicomFrameInfo[];
}

/** Largest Rows or Columns accepted (CT images are 512 to 2048): bounds every per-frame allocation. */
export const MAX_SIDE = 16384;
/** Largest NumberOfFrames accepted. */
export const MAX_FRAMES = 100_000;

/** SOP classes that are never images to stack (checked before PixelData). */
const NON_IMAGE_SOP: [RegExp, string][] = [
  [/^1\.2\.840\.10008\.1\.3\.10$/, 'DICOMDIR (media directory)'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\./, 'structured report'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.66\.4$/, 'segmentation object'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.66(\.|$)/, 'raw data or spatial registration object'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.11\./, 'presentation state'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.481\./, 'radiotherapy object'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.104\./, 'encapsulated document'],
  [/^1\.2\.840\.10008\.5\.1\.4\.1\.1\.9\./, 'waveform'],
];

/** Why a SOP class or modality is not an image object ('' when it may be one). */
export function nonImageReason(sopClassUID: string, modality: string): string {
  for (const [re, what] of NON_IMAGE_SOP) if (re.test(sopClassUID)) return `${what}, not an image`;
  if (['SR', 'SEG', 'PR', 'KO', 'RTSTRUCT', 'RTPLAN', 'RTDOSE', 'REG', 'DOC'].includes(modality)) return `${modality} object, not an image`;
  return '';
}

function signed16(v: number): number {
  return v >= 0x8000 ? v - 0x10000 : v;
}

function frameInfo(top: DataSet, shared: DataSet | undefined, frame: DataSet | undefined): DicomFrameInfo {
  const pick = (seq: string): DataSet | undefined => firstItem(frame, seq) ?? firstItem(shared, seq);
  const posSrc = pick('x00209113') ?? top;
  const oriSrc = pick('x00209116') ?? top;
  const pmSrc = pick('x00289110') ?? top;
  const pvSrc = pick('x00289145') ?? top;
  const pos = numbers(posSrc, 'x00200032') ?? numbers(top, 'x00200032');
  const ori = numbers(oriSrc, 'x00200037') ?? numbers(top, 'x00200037');
  const ps = numbers(pmSrc, 'x00280030') ?? numbers(top, 'x00280030');
  const slope = numbers(pvSrc, 'x00281053')?.[0] ?? numbers(top, 'x00281053')?.[0] ?? 1;
  const intercept = numbers(pvSrc, 'x00281052')?.[0] ?? numbers(top, 'x00281052')?.[0] ?? 0;
  const info: DicomFrameInfo = { slope, intercept };
  if (pos && pos.length >= 3) info.position = [pos[0]!, pos[1]!, pos[2]!];
  if (ori && ori.length >= 6) info.orientation = [ori[0]!, ori[1]!, ori[2]!, ori[3]!, ori[4]!, ori[5]!];
  if (ps && ps.length >= 2) info.pixelSpacing = [ps[0]!, ps[1]!];
  return info;
}

/**
 * Extracts the header of a parsed file. Throws ScanError for impossible image attributes.
 * @internal (takes dicom-parser's DataSet: kept out of the published declarations, which need no dicom-parser types)
 */
export function readHeader(ds: DataSet, path: string, transferSyntax: string, fileLength: number): DicomHeader {
  return guarded(path, 'damaged DICOM header', () => readHeaderUnguarded(ds, path, transferSyntax, fileLength));
}

function readHeaderUnguarded(ds: DataSet, path: string, transferSyntax: string, fileLength: number): DicomHeader {
  const rows = integer(ds, 'x00280010', 'US') ?? 0;
  const columns = integer(ds, 'x00280011', 'US') ?? 0;
  const pixelRepresentation = integer(ds, 'x00280103', 'US') ?? 0;
  const bitsAllocated = integer(ds, 'x00280100', 'US') ?? 0;
  const bitsStored = integer(ds, 'x00280101', 'US') ?? bitsAllocated;
  const highBit = integer(ds, 'x00280102', 'US') ?? bitsStored - 1;
  const pixel = ds.elements['x7fe00010'];
  const framesRaw = integer(ds, 'x00280008', 'IS');
  const frames = framesRaw ?? 1;
  const h: DicomHeader = {
    path,
    transferSyntax,
    sopClassUID: str(ds, 'x00080016') || str(ds, 'x00020002'),
    sopInstanceUID: str(ds, 'x00080018') || str(ds, 'x00020003'),
    frameOfReferenceUID: str(ds, 'x00200052'),
    modality: str(ds, 'x00080060').toUpperCase(),
    seriesUID: str(ds, 'x0020000e'),
    studyUID: str(ds, 'x0020000d'),
    seriesDescription: str(ds, 'x0008103e'),
    imageType: strs(ds, 'x00080008').map((s) => s.toUpperCase()),
    manufacturer: str(ds, 'x00080070'),
    studyDate: str(ds, 'x00080020'),
    rows,
    columns,
    frames,
    samplesPerPixel: integer(ds, 'x00280002', 'US') ?? 1,
    photometric: str(ds, 'x00280004').toUpperCase() || 'MONOCHROME2',
    bitsAllocated,
    bitsStored,
    highBit,
    pixelRepresentation,
    hasPixelData: pixel !== undefined,
    frameInfo: [],
  };
  const sn = integer(ds, 'x00200011', 'IS');
  if (sn !== undefined) h.seriesNumber = sn;
  const inum = integer(ds, 'x00200013', 'IS');
  if (inum !== undefined) h.instanceNumber = inum;
  const tilt = numbers(ds, 'x00181120')?.[0];
  if (tilt !== undefined) h.gantryTilt = tilt;
  const pm = firstItem(firstItem(ds, 'x52009229'), 'x00289110');
  const thick = numbers(ds, 'x00180088')?.[0] ?? numbers(pm, 'x00180050')?.[0] ?? numbers(ds, 'x00180050')?.[0];
  if (thick !== undefined && thick > 0) h.sliceThickness = thick;
  const padEl = ds.elements['x00280120'];
  if (padEl && padEl.length >= 2) {
    const raw = ds.uint16('x00280120')!;
    const value = pixelRepresentation === 1 ? signed16(raw) : raw;
    h.padding = { value };
    const limEl = ds.elements['x00280121'];
    if (limEl && limEl.length >= 2) {
      const lraw = ds.uint16('x00280121')!;
      h.padding.limit = pixelRepresentation === 1 ? signed16(lraw) : lraw;
    }
  }
  if (!h.hasPixelData) return h;
  if (rows < 1 || columns < 1) throw new ScanError(path, `impossible image size ${columns} x ${rows} (Columns x Rows)`, 'malformed');
  if (!Number.isInteger(frames) || frames < 1 || frames > MAX_FRAMES) throw new ScanError(path, `impossible NumberOfFrames ${framesRaw}`, 'malformed');
  if (rows > MAX_SIDE || columns > MAX_SIDE) throw new ScanError(path, `image size ${columns} x ${rows} beyond the ${MAX_SIDE} x ${MAX_SIDE} this reader accepts`, 'unsupported');
  if (![1, 8, 16, 32].includes(bitsAllocated)) throw new ScanError(path, `BitsAllocated ${bitsAllocated} is not 8, 16 or 32`, 'unsupported');
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit < bitsStored - 1 || highBit >= bitsAllocated) {
    throw new ScanError(path, `impossible BitsStored ${bitsStored} / HighBit ${highBit} for BitsAllocated ${bitsAllocated}`, 'malformed');
  }
  if (pixel && !pixel.encapsulatedPixelData && pixel.length !== 0xffffffff) {
    const need = rows * columns * frames * h.samplesPerPixel * (bitsAllocated / 8);
    const end = pixel.dataOffset + Math.min(pixel.length, need);
    if (end > fileLength || pixel.length < need) {
      const holds = Math.max(0, Math.min(pixel.length, fileLength - pixel.dataOffset));
      h.pixelProblem = `truncated: pixel data needs ${need} bytes, the file holds ${holds}`;
      // A frame count the pixel data cannot hold is refused before each frame's geometry is built (the fuzzer
      // found NumberOfFrames 99999 in a 1 KB file taking 10 s to scan and 10 s again to describe).
      const held = Math.floor(holds / (need / frames));
      if (frames > 1 && held < frames) throw new ScanError(path, `NumberOfFrames ${frames}, but the pixel data holds ${held} whole frame(s) (${h.pixelProblem})`, 'malformed');
    }
  }
  const shared = firstItem(ds, 'x52009229');
  const perFrame = items(ds, 'x52009230');
  if (perFrame.length && perFrame.length !== frames) {
    throw new ScanError(path, `${perFrame.length} per-frame functional groups for ${frames} frames`, 'malformed');
  }
  for (let f = 0; f < frames; f++) h.frameInfo.push(frameInfo(ds, shared, perFrame[f]));
  return h;
}
