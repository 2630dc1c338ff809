/**
 * The compressed pixel codecs that are not ours, loaded with dynamic import() the first time a series needs
 * one (so a plain uncompressed series never pays for them): JPEG Lossless (`jpeg-lossless-decoder-js`),
 * JPEG-LS (`@cornerstonejs/codec-charls`, CharLS) and JPEG 2000 (`@cornerstonejs/codec-openjpeg`, OpenJPEG),
 * cornerstone's Emscripten builds whose `decode` entry carries its WASM inlined, so they work from
 * node_modules in Node, from the esbuild bundle, and in a browser alike. Each returns the decoded samples as
 * little-endian bytes (one or two bytes per sample) with the sample precision the codestream states.
 * @module
 */
import { copyBytes } from '../bytes.js';
import { ScanError } from '../errors.js';

/** The image size a frame must decode to (from the DICOM header), checked against the codestream before decoding. */
export interface ExpectedSize {
  width: number;
  height: number;
}

/**
 * The width, height and number of components a codestream states: the first SOF segment of a JPEG or JPEG-LS
 * stream, or the SIZ segment of a JPEG 2000 codestream (image area less its offset). Undefined when neither is
 * found (the codec's own checks then apply). Read before decoding, so a header lying about its size is refused
 * before a codec allocates for it.
 */
export function codestreamSize(data: Uint8Array): { width: number; height: number; components: number } | undefined {
  const u16 = (o: number) => (data[o]! << 8) | data[o + 1]!;
  const u32 = (o: number) => ((data[o]! << 24) | (data[o + 1]! << 16) | (data[o + 2]! << 8) | data[o + 3]!) >>> 0;
  if (data.length >= 42 && data[0] === 0xff && data[1] === 0x4f && data[2] === 0xff && data[3] === 0x51) {
    return { width: u32(8) - u32(16), height: u32(12) - u32(20), components: u16(40) };
  }
  if (data.length < 4 || data[0] !== 0xff || data[1] !== 0xd8) return undefined;
  for (let o = 2; o + 4 <= data.length;) {
    if (data[o] !== 0xff) return undefined;
    const m = data[o + 1]!;
    if (m === 0xff) { o++; continue; }
    const sof = (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) || m === 0xf7;
    if (sof) return o + 10 <= data.length ? { height: u16(o + 5), width: u16(o + 7), components: data[o + 9]! } : undefined;
    if (m === 0xda || m === 0xd9) return undefined;
    o += 2 + u16(o + 2);
  }
  return undefined;
}

/** Refuses a codestream whose stated size is not the expected one, before any decoding. */
function checkSize(data: Uint8Array, expect: ExpectedSize | undefined, path: string): void {
  if (!expect) return;
  const s = codestreamSize(data);
  if (s && (s.width !== expect.width || s.height !== expect.height || s.components !== 1)) {
    throw new ScanError(path, `compressed frame is ${s.width} x ${s.height} x ${s.components} components, the header says ${expect.width} x ${expect.height} x 1`, 'malformed');
  }
}

/** Decoded samples of one frame. */
export interface DecodedFrame {
  bytes: Uint8Array;
  width: number;
  height: number;
  bytesPerSample: number;
  components: number;
}

let charls: Promise<{ JpegLSDecoder: new () => CornerstoneDecoder; HEAP8?: Int8Array }> | undefined;
let openjpeg: Promise<{ J2KDecoder: new () => CornerstoneDecoder; HEAP8?: Int8Array }> | undefined;

/**
 * A codec whose WASM heap has grown beyond this is dropped after the frame, and the next frame gets a fresh
 * instance (its heap starts at 50 MiB). The heap never shrinks, and OpenJPEG leaks into it on damaged frames (its
 * error path does not free what it allocated): without this it grew from 50 to 270 MiB over a few thousand damaged
 * frames (docs/reliability.md, finding 5).
 */
export const MAX_CODEC_HEAP = 128 * 2 ** 20;

/** How many times each codec was instantiated, and its heap now (bytes; 0 when not loaded). For tests and figures. */
export const codecStats = { instances: { jpegLs: 0, jpeg2000: 0 }, heap: { jpegLs: 0, jpeg2000: 0 } };

/**
 * The Emscripten module options: a NEW object for every instance. The factory keeps the object it is given as its
 * `Module` and writes the instance's state into it (its memory, heap views, runtime flags); a second instance made
 * from the same object picks that state up and decodes on the first instance's memory (why the earlier reset
 * failed every frame after it).
 */
const quiet = () => ({ print: () => {}, printErr: () => {} });

function failure(path: string, codec: string, e: unknown): ScanError {
  if (e instanceof ScanError) return e;
  const msg = e instanceof Error ? e.message : typeof e === 'number' ? `codec error code ${e}` : String(e);
  return new ScanError(path, `${codec} decoding failed (${msg})`, 'malformed');
}

async function runCornerstone(decoder: CornerstoneDecoder, data: Uint8Array, path: string, codec: string, after: () => void): Promise<DecodedFrame> {
  try {
    decoder.getEncodedBuffer(data.length).set(data);
    decoder.decode();
    const info = decoder.getFrameInfo();
    const bytes = decoder.getDecodedBuffer().slice();
    const bytesPerSample = info.bitsPerSample > 8 ? 2 : 1;
    return { bytes, width: info.width, height: info.height, bytesPerSample, components: info.componentCount };
  } catch (e) {
    throw failure(path, codec, e);
  } finally {
    decoder.delete();
    after();
  }
}

/** After a frame: the codec's heap size, and the codec dropped when the heap has grown past {@link MAX_CODEC_HEAP}. */
function heapCheck(kind: 'jpegLs' | 'jpeg2000', module: { HEAP8?: Int8Array }, maxHeap: number, drop: () => void): () => void {
  return () => {
    // Read after decoding: a growth replaces HEAP8 with a view of the new buffer.
    const bytes = module.HEAP8?.buffer.byteLength ?? 0;
    codecStats.heap[kind] = bytes;
    if (bytes > maxHeap) {
      drop();
      codecStats.heap[kind] = 0;
    }
  };
}

/**
 * JPEG-LS (1.2.840.10008.1.2.4.80 and .81) through CharLS. `expect`: refuse another stated size before decoding.
 * `maxHeap`: the codec is re-instantiated after a frame that leaves its heap larger (default {@link MAX_CODEC_HEAP}).
 */
export async function decodeJpegLs(data: Uint8Array, path: string, expect?: ExpectedSize, maxHeap = MAX_CODEC_HEAP): Promise<DecodedFrame> {
  checkSize(data, expect, path);
  // CharLS can spin for minutes on a stream cut short (the fuzzer found a 330-byte frame cut to 187 bytes that
  // took 120 s): a complete JPEG-LS stream ends with EOI (FF D9), then at most one byte of DICOM padding.
  const n = data.length;
  const eoi = (k: number) => n >= k + 2 && data[n - k - 2] === 0xff && data[n - k - 1] === 0xd9;
  if (!eoi(0) && !(eoi(1) && data[n - 1] === 0)) throw new ScanError(path, 'JPEG-LS frame is truncated (it does not end with the end-of-image marker FF D9)', 'malformed');
  const mine = (charls ??= import('@cornerstonejs/codec-charls/decode').then((m) => {
    codecStats.instances.jpegLs++;
    return m.default(quiet());
  }));
  const codec = await mine.catch((e) => {
    if (charls === mine) charls = undefined;
    throw failure(path, 'JPEG-LS codec could not be loaded:', e);
  });
  return runCornerstone(new codec.JpegLSDecoder(), data, path, 'JPEG-LS', heapCheck('jpegLs', codec, maxHeap, () => charls === mine && (charls = undefined)));
}

/**
 * JPEG 2000 (1.2.840.10008.1.2.4.90 and .91) through OpenJPEG. `expect`: refuse another stated size before
 * decoding. `maxHeap`: the codec is re-instantiated after a frame that leaves its heap larger (default
 * {@link MAX_CODEC_HEAP}; OpenJPEG's heap grows over damaged frames).
 */
export async function decodeJpeg2000(data: Uint8Array, path: string, expect?: ExpectedSize, maxHeap = MAX_CODEC_HEAP): Promise<DecodedFrame> {
  checkSize(data, expect, path);
  const mine = (openjpeg ??= import('@cornerstonejs/codec-openjpeg/decode').then((m) => {
    codecStats.instances.jpeg2000++;
    return m.default(quiet());
  }));
  const codec = await mine.catch((e) => {
    if (openjpeg === mine) openjpeg = undefined;
    throw failure(path, 'JPEG 2000 codec could not be loaded:', e);
  });
  return runCornerstone(new codec.J2KDecoder(), data, path, 'JPEG 2000', heapCheck('jpeg2000', codec, maxHeap, () => openjpeg === mine && (openjpeg = undefined)));
}

/**
 * JPEG Lossless, process 14 (1.2.840.10008.1.2.4.57 and .70) through jpeg-lossless-decoder-js. `expect`: refuse
 * another stated size before decoding.
 */
export async function decodeJpegLossless(data: Uint8Array, path: string, expect?: ExpectedSize): Promise<DecodedFrame> {
  checkSize(data, expect, path);
  // Every sample costs at least one bit of Huffman code: a frame stating more samples than 8 x its bytes lies, and
  // is refused before the decoder allocates for them.
  const stated = codestreamSize(data);
  if (stated && stated.width * stated.height * stated.components > 8 * data.length) {
    throw new ScanError(path, `JPEG Lossless frame of ${data.length} bytes cannot hold the ${stated.width} x ${stated.height} x ${stated.components} samples it states`, 'malformed');
  }
  const { Decoder } = await import('jpeg-lossless-decoder-js');
  try {
    // Its own buffer from byte 0: the decoder reads `copy.buffer`, and a Node Buffer's slice() is a view.
    const copy = copyBytes(data);
    const decoder = new Decoder();
    const buffer = decoder.decompress(copy.buffer, 0, copy.length);
    const bytesPerSample = decoder.numBytes;
    let bytes = new Uint8Array(buffer);
    if (bytesPerSample === 2) {
      // The decoder writes a Uint16Array in the platform's byte order; we hand on little endian.
      const samples = new Uint16Array(buffer);
      bytes = new Uint8Array(samples.length * 2);
      const view = new DataView(bytes.buffer);
      for (let i = 0; i < samples.length; i++) view.setUint16(2 * i, samples[i]!, true);
    }
    return { bytes, width: decoder.xDim, height: decoder.yDim, bytesPerSample, components: decoder.numComp };
  } catch (e) {
    throw failure(path, 'JPEG Lossless', e);
  }
}
