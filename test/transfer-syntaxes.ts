/**
 * One DICOM fixture folder per transfer syntax the README lists (weights/make_dicom_fixtures.py wrote them), with
 * the syntax's UID: what the tests of the built artefacts (test/dist.test.ts, the page's worker in
 * test/web.test.ts) read through the bundles.
 */
export const TRANSFER_SYNTAX_FIXTURES: ReadonlyArray<readonly [string, string]> = [
  ['padding_unsigned', '1.2.840.10008.1.2'], // implicit VR little endian
  ['ordered', '1.2.840.10008.1.2.1'], // explicit VR little endian
  ['big_endian', '1.2.840.10008.1.2.2'],
  ['deflate', '1.2.840.10008.1.2.1.99'],
  ['rle', '1.2.840.10008.1.2.5'],
  ['jpeg_lossless_p14', '1.2.840.10008.1.2.4.57'],
  ['jpeg_lossless', '1.2.840.10008.1.2.4.70'],
  ['jpegls', '1.2.840.10008.1.2.4.80'],
  ['j2k', '1.2.840.10008.1.2.4.90'],
  ['enhanced', '1.2.840.10008.1.2.1'], // one multi-frame file (Enhanced CT)
];
