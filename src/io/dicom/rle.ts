/**
 * DICOM RLE Lossless (PS3.5 Annex G). Each frame is one encapsulated fragment: a 64-byte header of 16
 * little-endian uint32 (the number of segments, then each segment's byte offset from the start of the frame),
 * then the segments. A segment is one byte plane, PackBits-coded: a control byte n in 0..127 copies the next
 * n + 1 bytes, n in -127..-1 repeats the next byte 1 - n times, -128 is a no-op. Segments come most
 * significant byte plane first, per sample (for 16-bit monochrome: segment 0 the high bytes, 1 the low).
 * @module
 */
import { ScanError } from '../errors.js';

/**
 * Decodes one RLE frame into little-endian sample bytes (`pixels * bytesPerSample` bytes, sample by sample),
 * the layout of native pixel data. Throws ScanError naming `path` for a corrupt or short frame.
 */
export function decodeRleFrame(frame: Uint8Array, pixels: number, bytesPerSample: number, samplesPerPixel: number, path: string): Uint8Array {
  const bad = (what: string): never => {
    throw new ScanError(path, `RLE frame is corrupt (${what})`, 'malformed');
  };
  if (frame.length < 64) bad('shorter than its 64-byte header');
  // PackBits expands at most 128 bytes from 2: a frame too short for the image is refused before allocating.
  if (pixels * bytesPerSample * samplesPerPixel > 64 * frame.length) bad(`${frame.length} bytes cannot hold ${pixels} pixels`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const nSeg = view.getUint32(0, true);
  const expected = bytesPerSample * samplesPerPixel;
  if (nSeg !== expected) bad(`${nSeg} segments where ${expected} are expected`);
  const out = new Uint8Array(pixels * expected);
  const stride = expected;
  for (let s = 0; s < nSeg; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < nSeg ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || start > frame.length || end < start || end > frame.length) bad(`segment ${s + 1} offset ${start} outside the frame`);
    // Segment s is byte plane s of each sample: plane 0 the most significant byte; samples are interleaved.
    const sample = Math.floor(s / bytesPerSample);
    const plane = s % bytesPerSample;
    let o = sample * bytesPerSample + (bytesPerSample - 1 - plane);
    let written = 0;
    let p = start;
    while (written < pixels && p < end) {
      const n = frame[p++]!;
      if (n < 128) {
        const count = n + 1;
        if (p + count > end) bad(`segment ${s + 1} literal run past its end`);
        const take = Math.min(count, pixels - written);
        for (let i = 0; i < take; i++, o += stride) out[o] = frame[p + i]!;
        written += take;
        p += count;
      } else if (n > 128) {
        const count = 257 - n;
        if (p >= end) bad(`segment ${s + 1} repeat run past its end`);
        const v = frame[p++]!;
        const take = Math.min(count, pixels - written);
        for (let i = 0; i < take; i++, o += stride) out[o] = v;
        written += take;
      }
    }
    if (written < pixels) bad(`segment ${s + 1} holds ${written} of ${pixels} bytes`);
  }
  return out;
}
