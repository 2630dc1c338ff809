/**
 * The contact sheet (src/analysis/outputs.ts: the most involved slices, the patient result and the weights'
 * notice burned in) as a DICOM Secondary Capture Image (Secondary Capture Image Storage 1.2.840.10008.5.1.4.1.1.7):
 * 8-bit RGB, in the source study (patient and study attributes copied), a new series. A PACS viewer shows it as
 * one more image of the study, so the notice travels with the result. Burned In Annotation is NO: the sheet
 * carries no patient identifiers.
 * @module
 */
import { writePart10 } from './dcmjs.js';
import { commonAttributes, dicomDateTime, newUid, type DicomSource, type Software } from './derived.js';
import type { DerivedObject } from './write-seg.js';

export const SECONDARY_CAPTURE_STORAGE = '1.2.840.10008.5.1.4.1.1.7';

/** What {@link makeSecondaryCapture} takes: an RGBA picture (4 bytes a pixel, row by row). */
export interface ScInput {
  source: DicomSource;
  width: number;
  height: number;
  rgba: Uint8Array;
  description: string;
  software: Software;
  now?: Date;
  seriesInstanceUID?: string;
  sopInstanceUID?: string;
}

/** Builds contact_sheet.dcm (see the module comment). */
export async function makeSecondaryCapture(inp: ScInput): Promise<DerivedObject> {
  const { width, height } = inp;
  if (inp.rgba.length !== width * height * 4) throw new Error(`RGBA data of ${inp.rgba.length} bytes for ${width} x ${height}`);
  const now = inp.now ?? new Date();
  const { date, time } = dicomDateTime(now);
  const sopInstanceUID = inp.sopInstanceUID ?? newUid();
  const seriesInstanceUID = inp.seriesInstanceUID ?? newUid();
  const n = width * height;
  const rgb = new Uint8Array(n * 3 + ((n * 3) % 2));
  for (let i = 0; i < n; i++) {
    rgb[i * 3] = inp.rgba[i * 4]!;
    rgb[i * 3 + 1] = inp.rgba[i * 4 + 1]!;
    rgb[i * 3 + 2] = inp.rgba[i * 4 + 2]!;
  }
  const dataset = {
    ...commonAttributes(inp.source, { sopClassUID: SECONDARY_CAPTURE_STORAGE, sopInstanceUID, seriesInstanceUID, seriesNumber: 903, seriesDescription: `${inp.software.name} contact sheet`, modality: 'OT', software: inp.software, now }),
    ConversionType: 'WSD',
    ImageType: ['DERIVED', 'SECONDARY'],
    InstanceNumber: 1,
    PatientOrientation: '',
    ContentDate: date,
    ContentTime: time,
    DerivationDescription: inp.description.slice(0, 1024),
    BurnedInAnnotation: 'NO',
    // Both lungs (and with it the General Series module's Laterality condition answered).
    ImageLaterality: 'B',
    SamplesPerPixel: 3,
    PhotometricInterpretation: 'RGB',
    PlanarConfiguration: 0,
    Rows: height,
    Columns: width,
    BitsAllocated: 8,
    BitsStored: 8,
    HighBit: 7,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    PixelData: rgb.buffer,
    _vrMap: { PixelData: 'OB' },
  };
  return { bytes: await writePart10(dataset), sopClassUID: SECONDARY_CAPTURE_STORAGE, sopInstanceUID, seriesInstanceUID };
}
