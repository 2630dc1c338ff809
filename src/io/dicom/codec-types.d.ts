// Types for the packages that ship none: cornerstone's Emscripten codec builds (WASM inlined in the JS) and
// the JPEG Lossless decoder's release bundle. Only what src/io/dicom/codecs.ts uses is declared.

/** An Emscripten decoder object of cornerstone's codecs (JpegLSDecoder, J2KDecoder). */
interface CornerstoneDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number; isSigned?: boolean };
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
/** Emscripten module options; the factory keeps the object as its Module and writes the instance's state into it. */
interface EmscriptenOptions {
  print?: (text: string) => void;
  printErr?: (text: string) => void;
}

declare module '@cornerstonejs/codec-charls/decode' {
  const factory: (options?: EmscriptenOptions) => Promise<{ JpegLSDecoder: new () => CornerstoneDecoder; HEAP8?: Int8Array }>;
  export default factory;
}

declare module '@cornerstonejs/codec-openjpeg/decode' {
  const factory: (options?: EmscriptenOptions) => Promise<{ J2KDecoder: new () => CornerstoneDecoder; HEAP8?: Int8Array }>;
  export default factory;
}

declare module 'jpeg-lossless-decoder-js' {
  export class Decoder {
    /** Decodes one JPEG Lossless frame: the buffer of a Uint8Array or (precision above 8) Uint16Array. */
    decompress(buffer: ArrayBuffer, offset?: number, length?: number): ArrayBuffer;
    /** Bytes per sample of the last frame decoded. */
    numBytes: number;
    /** Sample precision of the last frame decoded (bits). */
    precision?: number;
    xDim: number;
    yDim: number;
    numComp: number;
  }
}
