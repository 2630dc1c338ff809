/**
 * safetensors reader and writer, zero runtime dependencies, for Node and browsers. This module is the entry:
 * the reader (a parsed file and its tensors, from bytes or from disk) is here; the format's rules and header
 * validation are in safetensors-format.ts, the writer in safetensors-write.ts, the f16/bf16 conversions in
 * float16.ts.
 *
 * The core ({@link parseSafetensors}, {@link serializeSafetensors}) works on in-memory bytes and
 * runs anywhere; {@link readSafetensorsFile} and {@link writeSafetensorsFile} are Node-only: they get the file
 * system from src/host/node.ts, which the browser builds replace, so a browser bundle never imports `fs`.
 */
import { fsPromises } from '../host/node.js';
import { f16LookupTable } from './float16.js';
import { IS_LITTLE_ENDIAN, parseHeader, readHeaderSize, SafetensorsError, type ParsedHeader, type TensorInfo } from './safetensors-format.js';

export { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from './float16.js';
export { dtypeBits, isDtype, isF32Convertible, MAX_HEADER_SIZE, SafetensorsError, type SafetensorsDtype, type TensorInfo, type WritableDtype } from './safetensors-format.js';
export { serializeSafetensors, writeSafetensorsFile, type TensorToWrite, type TensorsToWrite } from './safetensors-write.js';

/** F8_E4M3 (the "fn" variant: no Inf, NaN = S.1111.111) bits to a number. */
/** F8_E4M3 (the "fn" variant: no Inf, NaN = S.1111.111) bits to a number. */
function f8e4m3ToF32(b: number): number {
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >>> 3) & 0xf;
  const mant = b & 7;
  if (exp === 0xf && mant === 7) return NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (8 + mant) * 2 ** (exp - 10);
}

/** F8_E8M0 (an unsigned power of two, 0xff = NaN) bits to a number. */
function f8e8m0ToF32(b: number): number {
  return b === 0xff ? NaN : 2 ** (b - 127);
}


/**
 * A parsed, validated safetensors file. Tensor data is not copied at parse time: the object
 * keeps the byte buffer and hands out views or converted copies on request.
 */
export class SafetensorsFile {
  /** The file name or path given when parsing (used in error messages). */
  readonly name: string;
  /** The `__metadata__` map (empty if the file has none). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Header size N in bytes (excluding the 8-byte prefix). */
  readonly headerSize: number;
  /** The byte buffer after the header; `data_offsets` index into it. Aliases the input bytes. */
  readonly data: Uint8Array;
  /** All tensors, in storage (offset) order. */
  readonly tensors: readonly TensorInfo[];
  readonly #byName: Map<string, TensorInfo>;

  /**
   * Not meant to be called directly: use {@link parseSafetensors} or {@link readSafetensorsFile}.
   */
  constructor(name: string, header: ParsedHeader, data: Uint8Array) {
    this.name = name;
    this.metadata = Object.freeze(header.metadata);
    this.headerSize = header.headerSize;
    this.data = data;
    this.tensors = Object.freeze(header.tensors);
    this.#byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Tensor names, in storage (offset) order. */
  names(): string[] {
    return this.tensors.map((t) => t.name);
  }

  /** Whether the file has a tensor called `name`. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /**
   * The dtype, shape and location of tensor `name`.
   * @throws {SafetensorsError} if there is no such tensor.
   */
  info(name: string): TensorInfo {
    const t = this.#byName.get(name);
    if (!t) throw new SafetensorsError(this.name, 'no such tensor in the file', name);
    return t;
  }

  /**
   * The raw little-endian bytes of tensor `name`, as a view (no copy) that aliases the file bytes:
   * writing to it changes the file's data.
   * @throws {SafetensorsError} if there is no such tensor.
   */
  getRaw(name: string): Uint8Array {
    const t = this.info(name);
    return this.data.subarray(t.dataOffsets[0], t.dataOffsets[1]);
  }

  /**
   * Tensor `name` as float32, row-major, with `info(name).numel` elements.
   *
   * For an F32 tensor whose bytes start at a 4-aligned address (on a little-endian platform), the
   * result is a **view that aliases the file bytes** — no copy; writing to it changes the file's
   * data, so `.slice()` it first if you need to mutate. Otherwise (misaligned F32, or any other
   * dtype) it is a fresh array. F16, BF16, F8_E5M2/F8_E4M3/F8_E8M0 convert exactly; F64, I32/U32
   * and I64/U64 round to the nearest float32; BOOL gives 0 or 1.
   * @throws {SafetensorsError} if there is no such tensor or its dtype (C64, F4, F6_*) has no f32 conversion.
   */
  getF32(name: string): Float32Array {
    const t = this.info(name);
    const raw = this.getRaw(name);
    switch (t.dtype) {
      case 'F32':
        if (IS_LITTLE_ENDIAN && raw.byteOffset % 4 === 0) {
          return new Float32Array(raw.buffer, raw.byteOffset, t.numel);
        }
        return new Float32Array(toAlignedLE(raw, 4).buffer, 0, t.numel);
      case 'F16': {
        const src = new Uint16Array(toAlignedLE(raw, 2).buffer, 0, t.numel);
        const table = f16LookupTable();
        const out = new Float32Array(t.numel);
        for (let i = 0; i < out.length; i++) out[i] = table[src[i]!]!;
        return out;
      }
      case 'BF16': {
        const src = new Uint16Array(toAlignedLE(raw, 2).buffer, 0, t.numel);
        const out = new Float32Array(t.numel);
        const bits = new Uint32Array(out.buffer);
        for (let i = 0; i < bits.length; i++) bits[i] = src[i]! << 16;
        return out;
      }
      case 'F64':
        return Float32Array.from(new Float64Array(toAlignedLE(raw, 8).buffer, 0, t.numel));
      case 'I8':
        return Float32Array.from(new Int8Array(raw.buffer, raw.byteOffset, t.numel));
      case 'U8':
        return Float32Array.from(raw);
      case 'BOOL':
        return Float32Array.from(raw, (b) => (b ? 1 : 0));
      case 'I16':
        return Float32Array.from(new Int16Array(toAlignedLE(raw, 2).buffer, 0, t.numel));
      case 'U16':
        return Float32Array.from(new Uint16Array(toAlignedLE(raw, 2).buffer, 0, t.numel));
      case 'I32':
        return Float32Array.from(new Int32Array(toAlignedLE(raw, 4).buffer, 0, t.numel));
      case 'U32':
        return Float32Array.from(new Uint32Array(toAlignedLE(raw, 4).buffer, 0, t.numel));
      case 'I64':
        return Float32Array.from(new BigInt64Array(toAlignedLE(raw, 8).buffer, 0, t.numel), Number);
      case 'U64':
        return Float32Array.from(new BigUint64Array(toAlignedLE(raw, 8).buffer, 0, t.numel), Number);
      case 'F8_E5M2': {
        const table = f16LookupTable(); // E5M2 is the top byte of an f16
        return Float32Array.from(raw, (b) => table[b << 8]!);
      }
      case 'F8_E4M3':
        return Float32Array.from(raw, f8e4m3ToF32);
      case 'F8_E8M0':
        return Float32Array.from(raw, f8e8m0ToF32);
      default:
        throw new SafetensorsError(this.name, `dtype ${t.dtype} cannot be converted to f32`, name);
    }
  }
}

/**
 * `raw` as a buffer usable by a typed array of `elemBytes`-byte native-endian elements: a copy
 * starting at offset 0 of a fresh ArrayBuffer, byte-swapped on big-endian platforms. (Only the
 * F32 fast path in getF32 returns a view; everything else is converted anyway.)
 */
function toAlignedLE(raw: Uint8Array, elemBytes: number): Uint8Array {
  const copy = new Uint8Array(raw); // a copy at offset 0 of its own buffer (Buffer.prototype.slice would share)
  if (!IS_LITTLE_ENDIAN && elemBytes > 1) {
    for (let i = 0; i + elemBytes <= copy.length; i += elemBytes) copy.subarray(i, i + elemBytes).reverse();
  }
  return copy;
}

/**
 * Parses and validates a whole safetensors file held in memory. Tensor data is not copied: the
 * returned object keeps `bytes` and returns views or converted copies on request.
 * @param bytes the file contents.
 * @param name a name for the file, used in error messages.
 * @throws {SafetensorsError} if the file breaks any rule of the format (see the top of this module).
 */
export function parseSafetensors(bytes: Uint8Array | ArrayBuffer, name = '<buffer>'): SafetensorsFile {
  // A plain Uint8Array view even for a Node Buffer, whose slice() shares memory instead of copying.
  const u8 = bytes instanceof Uint8Array ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) : new Uint8Array(bytes);
  const n = readHeaderSize(u8, u8.length, name);
  const header = parseHeader(u8.subarray(8, 8 + n), u8.length - 8 - n, name);
  return new SafetensorsFile(name, header, u8.subarray(8 + n));
}

/**
 * Reads and validates a safetensors file from disk (Node only). The 8-byte prefix and the header
 * are read and validated first (against the file size from `stat`), so a malformed or truncated
 * file is rejected before its body is read; then the byte buffer is read straight into one fresh
 * buffer (a single copy, no concatenation).
 * @param path the file path; also used in error messages.
 * @throws {SafetensorsError} if the file breaks any rule of the format; fs errors pass through.
 */
export async function readSafetensorsFile(path: string): Promise<SafetensorsFile> {
  const fs = await fsPromises('readSafetensorsFile');
  const fh = await fs.open(path, 'r');
  try {
    const { size } = await fh.stat();
    const prefix = new Uint8Array(8);
    if (size >= 8) await readExactly(fh, prefix, 0, path);
    const n = readHeaderSize(prefix, size, path);
    const headerBytes = new Uint8Array(n);
    await readExactly(fh, headerBytes, 8, path);
    const dataLength = size - 8 - n;
    const header = parseHeader(headerBytes, dataLength, path);
    const data = new Uint8Array(dataLength);
    await readExactly(fh, data, 8 + n, path);
    return new SafetensorsFile(path, header, data);
  } finally {
    await fh.close();
  }
}

type FileHandle = Awaited<ReturnType<typeof import('node:fs/promises').open>>;

/** Fills `into` from `fh` starting at file offset `position`, in chunks of at most 1 GiB. */
async function readExactly(fh: FileHandle, into: Uint8Array, position: number, file: string): Promise<void> {
  const CHUNK = 1 << 30;
  let done = 0;
  while (done < into.length) {
    const len = Math.min(CHUNK, into.length - done);
    const { bytesRead } = await fh.read(into, done, len, position + done);
    if (bytesRead === 0) {
      throw new SafetensorsError(file, `unexpected end of file at byte ${position + done} (file shrank while reading?)`);
    }
    done += bytesRead;
  }
}
