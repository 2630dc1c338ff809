/**
 * dcmjs, the DICOM library of OHIF and Slicer's web tools, for writing Part 10 files (and reading the source
 * series' patient and study attributes, character set and sequences included, for the objects derived from it).
 * Loaded with dynamic import() the first time a DICOM output is made, so esbuild keeps its 1.3 MB in a chunk of
 * its own in the Node and the browser bundles alike, and an analysis without DICOM outputs never loads it. Its
 * loggers are silenced: its notes (such as a vendor's private element with an odd VR, met while reading the source's
 * attributes) would land on the CLI's stderr; what fails throws.
 * @module
 */

/**
 * The part of dcmjs's API this package uses (declared here, not imported from dcmjs's types, so that the published
 * type declarations do not name a package that is bundled rather than installed).
 */
export interface DcmjsApi {
  data: {
    DicomDict: new (meta: Record<string, unknown>) => { dict: Record<string, unknown>; write(): ArrayBuffer };
    DicomMessage: { readFile(buffer: ArrayBuffer, options?: { untilTag?: string; includeUntilTagValue?: boolean }): { dict: Record<string, unknown> } };
    DicomMetaDictionary: { naturalizeDataset(dict: Record<string, unknown>): NaturalDataset; denaturalizeDataset(ds: NaturalDataset): Record<string, unknown> };
  };
  log: { setLevel(level: string): void; getLogger(name: string): { setLevel(level: string): void } };
}

let loading: Promise<DcmjsApi> | undefined;

/** dcmjs, loaded once. */
export function loadDcmjs(): Promise<DcmjsApi> {
  loading ??= import('dcmjs').then((m) => {
    const lib = ((m as unknown as { default?: DcmjsApi }).default ?? (m as unknown as DcmjsApi));
    lib.log.setLevel('silent');
    lib.log.getLogger('validation.dcmjs').setLevel('silent');
    return lib;
  });
  return loading;
}

/** A data set as dcmjs's naturalized form: keyword -> value (see dcmjs-types.d.ts). */
export type NaturalDataset = Record<string, unknown>;

/** Explicit VR Little Endian, the transfer syntax every file this package writes uses. */
export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
/** This package's implementation class UID (PS3.7 D.3.3.2: identifies the writer of a Part 10 file), under 2.25. */
export const IMPLEMENTATION_CLASS_UID = '2.25.160512474936301455357497413541367052711';
/** Implementation Version Name (at most 16 characters). */
export const IMPLEMENTATION_VERSION_NAME = 'COVIDCT';

/**
 * A Part 10 file (preamble, DICM, file meta information, the data set in explicit VR little endian) of `ds`,
 * whose SOPClassUID and SOPInstanceUID go into the meta information.
 */
export async function writePart10(ds: NaturalDataset): Promise<Uint8Array> {
  const { data } = await loadDcmjs();
  // dcmjs writes text as UTF-8: say so when there is text beyond ASCII, and say nothing (the default repertoire)
  // otherwise, which every reader takes.
  ds = { ...ds };
  if (hasNonAscii(ds)) ds.SpecificCharacterSet = 'ISO_IR 192';
  else delete ds.SpecificCharacterSet;
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: ds.SOPClassUID,
    MediaStorageSOPInstanceUID: ds.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_VR_LE,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
  };
  const dict = new data.DicomDict(data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = data.DicomMetaDictionary.denaturalizeDataset(ds);
  return new Uint8Array(dict.write());
}

/** Whether any string in a naturalized data set (sequences and person names included) has a non-ASCII character. */
export function hasNonAscii(v: unknown): boolean {
  if (typeof v === 'string') return /[^\x00-\x7f]/.test(v);
  if (Array.isArray(v)) return v.some(hasNonAscii);
  if (v && typeof v === 'object' && !(v instanceof ArrayBuffer) && !ArrayBuffer.isView(v)) return Object.entries(v).some(([k, x]) => k !== '_vrMap' && hasNonAscii(x));
  return false;
}

/**
 * The naturalized data set of a Part 10 file (or a raw implicit VR little endian data set) up to its pixel data:
 * the attributes the derived objects copy, decoded from the file's character set.
 */
export async function readAttributes(bytes: Uint8Array): Promise<NaturalDataset> {
  const { data } = await loadDcmjs();
  const part10 = bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d;
  if (!part10) {
    // A data set without preamble and meta information (implicit VR little endian, as old archives hold, and as
    // this package's reader takes it): given a meta header so that dcmjs reads it.
    const meta = new data.DicomDict(data.DicomMetaDictionary.denaturalizeDataset({ FileMetaInformationVersion: new Uint8Array([0, 1]).buffer, TransferSyntaxUID: '1.2.840.10008.1.2', ImplementationClassUID: IMPLEMENTATION_CLASS_UID }));
    meta.dict = {};
    const head = new Uint8Array(meta.write());
    const joined = new Uint8Array(head.length + bytes.length);
    joined.set(head);
    joined.set(bytes, head.length);
    bytes = joined;
  }
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const msg = data.DicomMessage.readFile(buf, { untilTag: '7FE00010', includeUntilTagValue: false });
  return data.DicomMetaDictionary.naturalizeDataset(msg.dict);
}
