// Types for dcmjs (it ships none): only the part of its data API that src/io/dicom/dcmjs.ts uses is declared.
// A "naturalized" data set is a plain object keyed by DICOM keywords (PatientName, SegmentSequence, ...): strings,
// numbers, arrays of them, arrays of objects for sequences, ArrayBuffers for bulk data; `_vrMap` names the VR of
// elements whose VR the dictionary leaves open (PixelData: OB or OW).
declare module 'dcmjs' {
  type Naturalized = Record<string, unknown>;
  interface DicomDictInstance {
    meta: Record<string, unknown>;
    dict: Record<string, unknown>;
    write(options?: { allowInvalidVRLength?: boolean; fragmentMultiframe?: boolean }): ArrayBuffer;
  }
  const dcmjs: {
    data: {
      DicomDict: new (meta: Record<string, unknown>) => DicomDictInstance;
      DicomMessage: { readFile(buffer: ArrayBuffer, options?: { untilTag?: string; includeUntilTagValue?: boolean; ignoreErrors?: boolean }): DicomDictInstance };
      DicomMetaDictionary: {
        naturalizeDataset(dict: Record<string, unknown>): Naturalized;
        denaturalizeDataset(ds: Naturalized): Record<string, unknown>;
      };
    };
    log: { setLevel(level: string): void; getLevel(): number; getLogger(name: string): { setLevel(level: string): void } };
  };
  export default dcmjs;
}
