/**
 * The analysis's masks as a DICOM Segmentation (PS3.3 A.51, Segmentation Storage 1.2.840.10008.5.1.4.1.1.66.4):
 * binary, two segments coded with SNOMED CT as CID 7150 / 7151 expect ("Lung": Anatomical Structure / Lung;
 * "Infection": Morphologically Altered Structure / Inflammation, anatomic region Lung), in the source series'
 * Frame of Reference. One frame per source slice and segment (empty frames included, so every slice of the
 * series has its frame): frames 1..n are the lung mask on slices 1..n of the analysed volume, frames n+1..2n
 * the infection mask. Each frame states its Plane Position (the source slice's own ImagePositionPatient) and,
 * in the Derivation Image Sequence, the source instance (and frame) it was computed from; the shared groups
 * hold the source's orientation and pixel spacing. The Common Instance Reference module lists the source
 * series; patient, study and clinical-trial attributes are the source's, series and instance UIDs new.
 *
 * The infection segment is the stored infection map above the threshold: `infection[v] > level` with the
 * map's levels (probability x 255, src/analysis/analyze.ts); with the default threshold 0.5 that is exactly the
 * voxels the report counts as infected (p > 0.5).
 * @module
 */
import { writePart10, type NaturalDataset } from './dcmjs.js';
import { codeItem, commonAttributes, dicomDateTime, newUid, referencedSeriesItem, type Code, type DicomSource, type Software } from './derived.js';

export const SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';

/** CID 7150 / 7151 codes of the two segments (SNOMED CT), and the anatomic region of the infection. */
export const SEGMENT_CODES = {
  anatomicalStructure: { value: '123037004', scheme: 'SCT', meaning: 'Anatomical Structure' },
  lung: { value: '39607008', scheme: 'SCT', meaning: 'Lung' },
  morphologicallyAltered: { value: '49755003', scheme: 'SCT', meaning: 'Morphologically Altered Structure' },
  inflammation: { value: '23583003', scheme: 'SCT', meaning: 'Inflammation' },
} as const satisfies Record<string, Code>;

/** Segment numbers. */
export const LUNG_SEGMENT = 1;
export const INFECTION_SEGMENT = 2;

/** What {@link makeSegmentation} takes. */
export interface SegmentationInput {
  source: DicomSource;
  /** [columns, rows, slices] of the masks: the source series' grid. */
  dims: readonly [number, number, number];
  /** Lung labels (1 lung), the volume's layout (column fastest, then row, then slice). */
  lungMask: Uint8Array;
  /** The infection map's levels (probability x levels), same layout. */
  infection: Uint8Array;
  /** A voxel is infected when its level is above this (0.5 x 255 = 127.5 for the default threshold). */
  infectionLevel: number;
  /** The threshold as a probability, for the segment's description. */
  infectionThreshold: number;
  software: Software;
  now?: Date;
  seriesInstanceUID?: string;
  sopInstanceUID?: string;
}

/** A written derived object: its bytes and identity. */
export interface DerivedObject {
  bytes: Uint8Array;
  sopClassUID: string;
  sopInstanceUID: string;
  seriesInstanceUID: string;
}

/** sRGB (0..255) to the PS3.3 C.10.7.1.1 CIELab encoding (L 0..100, a and b -128..127, each scaled to 0..65535). */
export function cielab(rgb: readonly [number, number, number]): [number, number, number] {
  const lin = rgb.map((c) => {
    const v = c / 255;
    return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
  });
  const [r, g, b] = lin as [number, number, number];
  // sRGB -> XYZ relative to D50 (the Bradford-adapted matrix), since DICOM's PCS values are D50 CIELab.
  const x = 0.4360747 * r + 0.3850649 * g + 0.1430804 * b;
  const y = 0.2225045 * r + 0.7168786 * g + 0.0606169 * b;
  const z = 0.0139322 * r + 0.0971045 * g + 0.7141733 * b;
  const f = (t: number) => (t > 216 / 24389 ? Math.cbrt(t) : (24389 / 27 * t + 16) / 116);
  const fx = f(x / 0.9642);
  const fy = f(y / 1.0);
  const fz = f(z / 0.8249);
  const L = 116 * fy - 16;
  const A = 500 * (fx - fy);
  const B = 200 * (fy - fz);
  const enc = (v: number, lo: number, hi: number) => Math.max(0, Math.min(65535, Math.round(((v - lo) / (hi - lo)) * 65535)));
  return [enc(L, 0, 100), enc(A, -128, 127), enc(B, -128, 127)];
}

/** A decimal string (DS) of at most 16 characters. */
export function ds(v: number): string {
  if (!Number.isFinite(v)) throw new RangeError(`not a finite number: ${v}`);
  for (let p = 15; p >= 1; p--) {
    const s = String(Number(v.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return v.toExponential(8);
}

/** The display colours (sRGB) of the segments: the lung outline's cyan, the heat map's red. */
export const SEGMENT_COLOURS: Record<number, [number, number, number]> = { [LUNG_SEGMENT]: [64, 192, 255], [INFECTION_SEGMENT]: [255, 48, 32] };

/** Builds seg.dcm (see the module comment). */
export async function makeSegmentation(inp: SegmentationInput): Promise<DerivedObject> {
  const src = inp.source;
  const [nx, ny, nz] = inp.dims;
  if (nx !== src.columns || ny !== src.rows || nz !== src.slices.length) {
    throw new Error(`masks of ${nx} x ${ny} x ${nz} do not match the source series' ${src.columns} x ${src.rows} x ${src.slices.length}`);
  }
  const plane = nx * ny;
  if (inp.lungMask.length !== plane * nz || inp.infection.length !== plane * nz) throw new Error('mask length does not match the dimensions');
  const now = inp.now ?? new Date();
  const { date, time } = dicomDateTime(now);
  const sopInstanceUID = inp.sopInstanceUID ?? newUid();
  const seriesInstanceUID = inp.seriesInstanceUID ?? newUid();
  const dimensionOrganizationUID = newUid();
  const segments = [LUNG_SEGMENT, INFECTION_SEGMENT];
  const frames = segments.length * nz;
  // Bits packed frame after frame with no padding between frames, least significant bit first (PS3.5 8.1.1).
  const totalBits = frames * plane;
  const pixels = new Uint8Array(Math.ceil(totalBits / 8) + (Math.ceil(totalBits / 8) % 2));
  const level = inp.infectionLevel;
  for (let k = 0; k < nz; k++) {
    for (let p = 0; p < plane; p++) {
      const v = k * plane + p;
      if (inp.lungMask[v]) {
        const bit = k * plane + p;
        pixels[bit >> 3]! |= 1 << (bit & 7);
      }
      if (inp.infection[v]! > level) {
        const bit = (nz + k) * plane + p;
        pixels[bit >> 3]! |= 1 << (bit & 7);
      }
    }
  }
  const algorithm = { SegmentAlgorithmType: 'AUTOMATIC', SegmentAlgorithmName: `${inp.software.name} ${inp.software.version}`.slice(0, 64) };
  const segmentSequence: NaturalDataset[] = [
    {
      SegmentNumber: LUNG_SEGMENT,
      SegmentLabel: 'Lung',
      SegmentDescription: 'lung mask of the two-stage model (stage 1)',
      SegmentedPropertyCategoryCodeSequence: [codeItem(SEGMENT_CODES.anatomicalStructure)],
      SegmentedPropertyTypeCodeSequence: [codeItem(SEGMENT_CODES.lung)],
      ...algorithm,
      RecommendedDisplayCIELabValue: cielab(SEGMENT_COLOURS[LUNG_SEGMENT]!),
    },
    {
      SegmentNumber: INFECTION_SEGMENT,
      SegmentLabel: 'Infection',
      SegmentDescription: `infection probability above ${inp.infectionThreshold} inside the lung mask`.slice(0, 64),
      SegmentedPropertyCategoryCodeSequence: [codeItem(SEGMENT_CODES.morphologicallyAltered)],
      SegmentedPropertyTypeCodeSequence: [codeItem(SEGMENT_CODES.inflammation)],
      AnatomicRegionSequence: [codeItem(SEGMENT_CODES.lung)],
      ...algorithm,
      RecommendedDisplayCIELabValue: cielab(SEGMENT_COLOURS[INFECTION_SEGMENT]!),
    },
  ];
  const perFrame: NaturalDataset[] = [];
  for (const seg of segments) {
    for (let k = 0; k < nz; k++) {
      const s = src.slices[k]!;
      const sourceImage: NaturalDataset = {
        ReferencedSOPClassUID: s.sopClassUID,
        ReferencedSOPInstanceUID: s.sopInstanceUID,
        ...(s.frameNumber !== undefined ? { ReferencedFrameNumber: s.frameNumber } : {}),
        PurposeOfReferenceCodeSequence: [codeItem({ value: '121322', scheme: 'DCM', meaning: 'Source image for image processing operation' })],
      };
      perFrame.push({
        DerivationImageSequence: [{ SourceImageSequence: [sourceImage], DerivationCodeSequence: [codeItem({ value: '113076', scheme: 'DCM', meaning: 'Segmentation' })] }],
        FrameContentSequence: [{ DimensionIndexValues: [seg, k + 1] }],
        PlanePositionSequence: [{ ImagePositionPatient: s.position.map(ds) }],
        SegmentIdentificationSequence: [{ ReferencedSegmentNumber: seg }],
      });
    }
  }
  const dataset: NaturalDataset = {
    ...commonAttributes(src, { sopClassUID: SEGMENTATION_STORAGE, sopInstanceUID, seriesInstanceUID, seriesNumber: 901, seriesDescription: `${inp.software.name} lung and infection`, modality: 'SEG', software: inp.software, now }),
    ImageType: ['DERIVED', 'PRIMARY'],
    InstanceNumber: 1,
    ContentDate: date,
    ContentTime: time,
    ContentLabel: 'COVIDCT',
    ContentDescription: 'lung and infection masks',
    ContentCreatorName: '',
    FrameOfReferenceUID: src.frameOfReferenceUID,
    PositionReferenceIndicator: src.positionReferenceIndicator,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: ny,
    Columns: nx,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: 'BINARY',
    SegmentsOverlap: 'YES',
    SegmentSequence: segmentSequence,
    NumberOfFrames: frames,
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUID }],
    DimensionIndexSequence: [
      { DimensionOrganizationUID: dimensionOrganizationUID, DimensionIndexPointer: 0x0062000b, FunctionalGroupPointer: 0x0062000a, DimensionDescriptionLabel: 'Segment Number' },
      { DimensionOrganizationUID: dimensionOrganizationUID, DimensionIndexPointer: 0x00200032, FunctionalGroupPointer: 0x00209113, DimensionDescriptionLabel: 'Image Position Patient' },
    ],
    SharedFunctionalGroupsSequence: [
      {
        PixelMeasuresSequence: [{ PixelSpacing: src.pixelSpacing.map(ds), SliceThickness: ds(src.sliceThickness ?? src.spacingBetweenSlices), SpacingBetweenSlices: ds(src.spacingBetweenSlices) }],
        PlaneOrientationSequence: [{ ImageOrientationPatient: src.orientation.map(ds) }],
      },
    ],
    PerFrameFunctionalGroupsSequence: perFrame,
    ReferencedSeriesSequence: [referencedSeriesItem(src)],
    PixelData: pixels.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  return { bytes: await writePart10(dataset), sopClassUID: SEGMENTATION_STORAGE, sopInstanceUID, seriesInstanceUID };
}
