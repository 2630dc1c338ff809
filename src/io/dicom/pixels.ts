/**
 * Pixel data to stored values, one frame at a time: native data (8, 16 or 32 bits allocated, either byte order)
 * or encapsulated frames (RLE Lossless, JPEG Lossless, JPEG-LS, JPEG 2000) decoded to the same little-endian
 * sample bytes, then the stored bits taken out of each sample: shifted down from HighBit, masked to
 * BitsStored (anything above, such as overlay bits, is dropped) and sign-extended from BitsStored when
 * PixelRepresentation is 1. Rescale and padding are the volume builder's.
 * @module
 */
import type { DataSet, Element } from 'dicom-parser';
import { copyBytes } from '../bytes.js';
import { ScanError } from '../errors.js';
import { decodeJpeg2000, decodeJpegLossless, decodeJpegLs, type DecodedFrame } from './codecs.js';
import type { DicomHeader } from './header.js';
import { dicomParser, guarded } from './parse.js';
import { decodeRleFrame } from './rle.js';
import { BIG_ENDIAN_TS, describeTransferSyntax, pixelEncoding } from './transfer.js';

/** Checks that the header describes pixels this reader decodes (before any decoding). */
export function checkDecodable(h: DicomHeader): void {
  const enc = pixelEncoding(h.transferSyntax);
  if (enc === 'unsupported') {
    throw new ScanError(h.path, `unsupported transfer syntax ${describeTransferSyntax(h.transferSyntax)}`, 'unsupported');
  }
  if (!h.hasPixelData) throw new ScanError(h.path, 'no pixel data (7FE0,0010)', 'unusable');
  if (h.samplesPerPixel !== 1 || !h.photometric.startsWith('MONOCHROME')) {
    throw new ScanError(h.path, `colour image (PhotometricInterpretation ${h.photometric}, ${h.samplesPerPixel} samples per pixel): only greyscale is read`, 'unsupported');
  }
  if (h.bitsAllocated === 1) throw new ScanError(h.path, 'BitsAllocated 1 (a bitmap, not CT values)', 'unsupported');
  if (h.pixelProblem) throw new ScanError(h.path, h.pixelProblem, 'malformed');
}

function encapsulatedFrame(ds: DataSet, el: Element, frame: number, frames: number, path: string): Uint8Array {
  const fragments = el.fragments ?? [];
  if (!fragments.length) throw new ScanError(path, 'encapsulated pixel data without fragments', 'malformed');
  try {
    if (frames === 1) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, fragments.length) as Uint8Array;
    if (el.basicOffsetTable?.length) return dicomParser.readEncapsulatedImageFrame(ds, el, frame) as Uint8Array;
    if (fragments.length === frames) return dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, frame, 1) as Uint8Array;
    const table = dicomParser.createJPEGBasicOffsetTable(ds, el);
    return dicomParser.readEncapsulatedImageFrame(ds, el, frame, table) as Uint8Array;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ScanError(path, `frame ${frame + 1} of the encapsulated pixel data cannot be found (${msg.replace(/^dicomParser\.[A-Za-z]+: ?/, '')})`, 'malformed');
  }
}

/**
 * Decodes frame `frame` of a parsed file into stored values (Int32Array, rows x columns, row by row), after
 * HighBit/BitsStored masking and sign extension.
 */
export async function decodeFrame(ds: DataSet, h: DicomHeader, frame: number): Promise<Int32Array> {
  checkDecodable(h);
  const path = h.path;
  const pixels = h.rows * h.columns;
  const el = ds.elements['x7fe00010']!;
  const enc = pixelEncoding(h.transferSyntax);
  let bytes: Uint8Array;
  let bytesPerSample = h.bitsAllocated / 8;
  let littleEndian = true;
  if (enc === 'native') {
    if (el.encapsulatedPixelData) throw new ScanError(path, `encapsulated pixel data in a native transfer syntax ${describeTransferSyntax(h.transferSyntax)}`, 'malformed');
    const frameBytes = pixels * bytesPerSample;
    const start = el.dataOffset + frame * frameBytes;
    if (start + frameBytes > ds.byteArray.length || (frame + 1) * frameBytes > el.length) {
      throw new ScanError(path, `truncated: pixel data of frame ${frame + 1} ends beyond the file`, 'malformed');
    }
    bytes = (ds.byteArray as Uint8Array).subarray(start, start + frameBytes);
    littleEndian = h.transferSyntax !== BIG_ENDIAN_TS;
  } else {
    if (!el.encapsulatedPixelData) throw new ScanError(path, `native pixel data in an encapsulated transfer syntax ${describeTransferSyntax(h.transferSyntax)}`, 'malformed');
    const data = encapsulatedFrame(ds, el, frame, h.frames, path);
    if (enc === 'rle') {
      bytes = decodeRleFrame(data, pixels, bytesPerSample, 1, path);
    } else {
      const expect = { width: h.columns, height: h.rows };
      const decoded: DecodedFrame =
        // The codestream's stated size is checked against the header before a codec allocates for it.
        enc === 'jpeg-lossless' ? await decodeJpegLossless(data, path, expect) : enc === 'jpeg-ls' ? await decodeJpegLs(data, path, expect) : await decodeJpeg2000(data, path, expect);
      if (decoded.width !== h.columns || decoded.height !== h.rows || decoded.components !== 1) {
        throw new ScanError(path, `compressed frame is ${decoded.width} x ${decoded.height} x ${decoded.components} components, the header says ${h.columns} x ${h.rows} x 1`, 'malformed');
      }
      if (decoded.bytes.length < pixels * decoded.bytesPerSample) throw new ScanError(path, 'compressed frame decoded to too few samples', 'malformed');
      bytes = decoded.bytes;
      bytesPerSample = decoded.bytesPerSample;
    }
  }
  return guarded(path, 'damaged pixel data', () => storedValues(bytes, pixels, bytesPerSample, littleEndian, h));
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Sample bytes to stored values: shift by HighBit + 1 - BitsStored, mask to BitsStored, sign-extend. */
export function storedValues(bytes: Uint8Array, pixels: number, bytesPerSample: number, littleEndian: boolean, h: Pick<DicomHeader, 'path' | 'bitsStored' | 'highBit' | 'pixelRepresentation'>): Int32Array {
  const out = new Int32Array(pixels);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bits = Math.min(h.bitsStored, bytesPerSample * 8);
  const shift = Math.max(0, h.highBit + 1 - h.bitsStored);
  const signed = h.pixelRepresentation === 1;
  if (bytesPerSample === 1) out.set(bytes.subarray(0, pixels));
  else if (bytesPerSample === 2 && littleEndian && LITTLE_ENDIAN_HOST) {
    const aligned = bytes.byteOffset % 2 === 0 ? bytes : copyBytes(bytes, 0, 2 * pixels);
    out.set(new Uint16Array(aligned.buffer, aligned.byteOffset, pixels));
  } else if (bytesPerSample === 2) for (let i = 0; i < pixels; i++) out[i] = view.getUint16(2 * i, littleEndian);
  else for (let i = 0; i < pixels; i++) out[i] = view.getUint32(4 * i, littleEndian) | 0;
  if (bits === 32 && shift === 0) {
    if (!signed) for (let i = 0; i < pixels; i++) if (out[i]! < 0) throw new ScanError(h.path, 'unsigned 32-bit stored values of 2^31 or more are not supported', 'unsupported');
    return out;
  }
  const mask = bits >= 32 ? -1 : (1 << bits) - 1;
  const sign = bits >= 32 ? 0 : 1 << (bits - 1);
  if (!signed && shift === 0 && bits === bytesPerSample * 8) return out;
  for (let i = 0; i < pixels; i++) {
    let v = (out[i]! >>> shift) & mask;
    if (signed && v & sign) v -= 2 * sign;
    out[i] = v;
  }
  return out;
}
