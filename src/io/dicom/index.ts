/**
 * DICOM in: a folder's files grouped into series (`scanDicomFiles`, headers only), the series to analyse
 * (`chooseSeries`), and that series decoded into a Volume in HU with its RAS affine (`readDicomSeries`);
 * `describeDicomFile` for `inspect` of a single file of any modality. Byte readers only: the file system is the
 * caller's (pass a Map of bytes, or a loader so files are read one at a time).
 *
 * Transfer syntaxes: implicit VR little endian, explicit VR little and big endian, deflated explicit VR little
 * endian; pixel data native (8/16/32 bits, signed or unsigned, any BitsStored/HighBit), RLE Lossless (ours),
 * JPEG Lossless process 14 and SV1, JPEG-LS, JPEG 2000 (codecs loaded on first use). Any other: ScanError
 * 'unsupported' naming the UID and its name. Enhanced (multi-frame) CT through its functional groups.
 *
 * @example
 * const scan = scanDicomFiles(files.map((f) => ({ path: f.name, bytes: f.bytes })), 'study/');
 * const series = chooseSeries(scan);                // or chooseSeries(scan, '1.2.840....')
 * const volume = await readDicomSeries(scan, series, (path) => readFile(path));
 * @module
 */
export { chooseSeries, scanDicomFiles, transferSyntaxName, type DicomFileInput, type DicomInstance, type DicomScan, type DicomSeries } from './series.js';
export {
  describeDicomFile,
  readDicomSeries,
  seriesGeometry,
  DUPLICATE_TOLERANCE_MM,
  GAP_FACTOR,
  SPACING_ABSOLUTE_TOLERANCE_MM,
  SPACING_RELATIVE_TOLERANCE,
  type DicomFileDescription,
  type DicomFileSource,
  type DicomGeometry,
} from './read.js';
export type { DicomFrameInfo, DicomHeader } from './header.js';
export { TRANSFER_SYNTAX_NAMES, describeTransferSyntax } from './transfer.js';
