/**
 * safetensors reader and writer, zero runtime dependencies, for Node and browsers.
 *
 * The format, in one paragraph: a safetensors file is an 8-byte little-endian unsigned 64-bit
 * integer N, then N bytes of UTF-8 JSON (the header), then the byte buffer holding the tensor
 * data. The header is a JSON object mapping each tensor name to
 * `{"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}`, where the offsets are
 * byte positions relative to the start of the byte buffer (not the file), `end` is exclusive and
 * the data is little-endian, row-major (C order). An optional `"__metadata__"` entry maps strings to
 * strings and is not a tensor. The header may be padded with trailing spaces (writers pad it so the
 * byte buffer starts 8-aligned). The reference library rejects a file unless: N <= 100,000,000 and
 * 8 + N <= file size; the header is valid UTF-8 and a JSON object; every dtype is known; every
 * shape is a list of non-negative integers; `end - begin` equals product(shape) × dtype size (a
 * scalar has shape `[]` and one element); and the tensors, sorted by offset, tile the byte buffer
 * exactly: the first starts at 0, each starts where the previous ended (no gaps, no overlaps), and
 * the last ends at the end of the file (no trailing bytes).
 *
 * The core ({@link parseSafetensors}, {@link serializeSafetensors}) works on in-memory bytes and
 * runs anywhere; {@link readSafetensorsFile} and {@link writeSafetensorsFile} are Node-only and
 * import `node:fs/promises` dynamically, so a browser bundle never pulls in `fs`.
 */

// ---------------------------------------------------------------------------------------------
// dtypes

/** Every dtype name the safetensors format defines, with its size in bits. */
const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

/** A dtype name recognised by the safetensors format (`F32`, `F16`, `BF16`, `I64`, `F8_E4M3`, ...). */
export type SafetensorsDtype = keyof typeof DTYPE_BITS;

/** The dtypes {@link serializeSafetensors} can write. */
export type WritableDtype = 'F32' | 'F16' | 'BF16' | 'I32' | 'U8';

/** All dtype names the format defines, in the reference library's order. */
export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = Object.freeze(
  Object.keys(DTYPE_BITS) as SafetensorsDtype[],
);

/** The largest header the reference library accepts, in bytes. */
export const MAX_HEADER_SIZE = 100_000_000;

/**
 * Size of one element of `dtype` in bits (4 for F4, 6 for the F6 types, 8 × bytes otherwise).
 * @throws {TypeError} if `dtype` is not a safetensors dtype name.
 */
export function dtypeBits(dtype: SafetensorsDtype): number {
  if (!isDtype(dtype)) throw new TypeError(`unknown safetensors dtype ${JSON.stringify(dtype)}`);
  return DTYPE_BITS[dtype];
}

/** Whether `s` is one of the safetensors dtype names. */
export function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BITS, s);
}

/** The dtypes {@link SafetensorsFile.getF32} can convert to float32. */
const F32_CONVERTIBLE: ReadonlySet<SafetensorsDtype> = new Set<SafetensorsDtype>([
  'F32', 'F16', 'BF16', 'F64',
  'I8', 'I16', 'I32', 'I64', 'U8', 'U16', 'U32', 'U64', 'BOOL',
  'F8_E5M2', 'F8_E4M3', 'F8_E8M0',
]);

/** Whether {@link SafetensorsFile.getF32} can convert tensors of `dtype` to float32. */
export function isF32Convertible(dtype: SafetensorsDtype): boolean {
  return F32_CONVERTIBLE.has(dtype);
}

// ---------------------------------------------------------------------------------------------
// errors

/**
 * Raised for any malformed safetensors input or invalid request. The message names the file
 * (the `name` given to the parser, or the path), the tensor when there is one, and what is wrong,
 * e.g. `model.safetensors: tensor "fc.weight": byte size 12 ... does not match ...`.
 */
export class SafetensorsError extends Error {
  /** The file name or path the error is about. */
  readonly file: string;
  /** The tensor the error is about, if any. */
  readonly tensor: string | undefined;
  /** What is wrong, without the file and tensor prefix. */
  readonly detail: string;

  /**
   * @param file the file name or path.
   * @param detail what is wrong.
   * @param tensor the tensor concerned, if any.
   */
  constructor(file: string, detail: string, tensor?: string) {
    super(`${file}: ${tensor === undefined ? '' : `tensor ${JSON.stringify(tensor)}: `}${detail}`);
    this.name = 'SafetensorsError';
    this.file = file;
    this.tensor = tensor;
    this.detail = detail;
  }
}

// ---------------------------------------------------------------------------------------------
// f16 / bf16 / f8 conversion

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Decodes IEEE 754 binary16 bits (0..0xffff) to a number; handles subnormals, ±Inf and NaN. */
export function f16ToF32(u16: number): number {
  const h = u16 & 0xffff;
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/**
 * Encodes a number as IEEE 754 binary16 bits, rounding to nearest, ties to even. Values beyond
 * the f16 range become ±Inf, tiny values become subnormals or ±0, NaN stays a (quiet) NaN.
 * A float64 input is first rounded to float32; since float32 has 24 >= 2×11+2 significand bits,
 * that double rounding never changes the result.
 */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00;
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // subnormal half (or zero): half mantissa = m * 2^(e - 14)
    if (e < -10) return sign; // below half the smallest subnormal (2^-25): rounds to ±0
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && half & 1)) half++;
    return sign | half; // a carry into bit 10 yields the smallest normal, as it should
  }
  let half = sign | (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++; // carry may round up to Inf: correct
  return half;
}

/** Decodes bfloat16 bits (0..0xffff) to a number (exact: bf16 is the top half of an f32). */
export function bf16ToF32(u16: number): number {
  scratchU32[0] = (u16 & 0xffff) << 16;
  return scratchF32[0]!;
}

/**
 * Encodes a number as bfloat16 bits, rounding to nearest, ties to even (the float64 input is
 * rounded to float32 first, which cannot change the result). Overflow gives ±Inf; NaN stays NaN.
 */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  return Math.floor((x + 0x7fff + ((x >>> 16) & 1)) / 0x10000) & 0xffff;
}

let f16Table: Float32Array | undefined;
/** All 65536 f16 values as f32 (256 KiB), built on first use. */
function f16LookupTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16ToF32(i);
  }
  return f16Table;
}

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

// ---------------------------------------------------------------------------------------------
// parsing

/** Where one tensor lives, as recorded in the header. */
export interface TensorInfo {
  /** The tensor's name (its key in the header). */
  readonly name: string;
  /** Element type. */
  readonly dtype: SafetensorsDtype;
  /** Dimensions, outermost first; `[]` for a scalar. */
  readonly shape: readonly number[];
  /** Number of elements: product(shape) (1 for a scalar). */
  readonly numel: number;
  /** `[begin, end)` as in the header: relative to the start of the byte buffer after the header. */
  readonly dataOffsets: readonly [number, number];
  /** Offset of the tensor's first byte from the start of the file (8 + N + begin). */
  readonly byteOffset: number;
  /** Size of the tensor's data in bytes (end - begin). */
  readonly byteLength: number;
}

/** The validated contents of a safetensors header. */
interface ParsedHeader {
  headerSize: number;
  metadata: Record<string, string>;
  tensors: TensorInfo[]; // sorted by offset
}

const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Validates the 8-byte prefix; returns the header size N.
 * @param fileSize total size of the file in bytes.
 */
function readHeaderSize(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) {
    throw new SafetensorsError(file, `file is ${fileSize} bytes, shorter than the 8-byte header-size prefix`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_SIZE)) {
    throw new SafetensorsError(file, `header size ${n} exceeds the limit of ${MAX_HEADER_SIZE} bytes`);
  }
  const size = Number(n);
  if (size > fileSize - 8) {
    throw new SafetensorsError(
      file,
      `header size ${size} is larger than the file (${fileSize - 8} bytes after the 8-byte prefix)`,
    );
  }
  return size;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

/**
 * Decodes and validates the header JSON against a byte buffer of `dataLength` bytes.
 * @param header the N header bytes.
 */
function parseHeader(header: Uint8Array, dataLength: number, file: string): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsError(file, `header must be a JSON object starting with '{', got ${show(text.slice(0, 20))}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text); // trailing spaces (padding) are JSON whitespace, so they are accepted
  } catch (e) {
    throw new SafetensorsError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new SafetensorsError(file, `header must be a JSON object, got ${describe(json)}`);
  }

  const metadata: Record<string, string> = {};
  const tensors: TensorInfo[] = [];
  const dataStart = 8 + header.length;
  for (const [name, entry] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (entry === null) continue; // the reference library reads it as Option<...>
      if (typeof entry !== 'object' || Array.isArray(entry)) {
        throw new SafetensorsError(file, `__metadata__ must be an object of strings, got ${describe(entry)}`);
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== 'string') {
          throw new SafetensorsError(
            file,
            `__metadata__ value for key ${JSON.stringify(k)} must be a string, got ${describe(v)} ${show(v)}`,
          );
        }
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    tensors.push(parseEntry(name, entry, dataStart, file));
  }

  // Layout: sorted by offset, the tensors must tile [0, dataLength) exactly.
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let expected = 0;
  let prev: TensorInfo | undefined;
  for (const t of tensors) {
    const [begin, end] = t.dataOffsets;
    if (begin < expected) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] overlap tensor ${JSON.stringify(prev!.name)} (data_offsets [${prev!.dataOffsets[0]}, ${prev!.dataOffsets[1]}])`,
        t.name,
      );
    }
    if (begin > expected) {
      throw new SafetensorsError(
        file,
        `gap of ${begin - expected} bytes before data_offsets [${begin}, ${end}] (` +
          (prev ? `previous tensor ${JSON.stringify(prev.name)} ends at ${expected}` : 'the first tensor must start at 0') +
          ')',
        t.name,
      );
    }
    if (end > dataLength) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] extend past the end of the byte buffer (${dataLength} bytes); file truncated?`,
        t.name,
      );
    }
    expected = end;
    prev = t;
  }
  if (expected !== dataLength) {
    throw new SafetensorsError(
      file,
      `${dataLength - expected} trailing bytes after the last tensor (tensor data ends at ${expected}, byte buffer is ${dataLength} bytes)`,
    );
  }
  return { headerSize: header.length, metadata, tensors };
}

/** Validates one header entry. */
function parseEntry(name: string, entry: unknown, dataStart: number, file: string): TensorInfo {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new SafetensorsError(file, `entry must be an object {dtype, shape, data_offsets}, got ${describe(entry)}`, name);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (dtype === undefined) throw new SafetensorsError(file, 'missing dtype', name);
  if (!isDtype(dtype)) throw new SafetensorsError(file, `unknown dtype ${show(dtype)}`, name);
  if (shape === undefined) throw new SafetensorsError(file, 'missing shape', name);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new SafetensorsError(file, `shape must be an array of non-negative integers, got ${show(shape)}`, name);
  }
  if (offsets === undefined) throw new SafetensorsError(file, 'missing data_offsets', name);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)
  ) {
    throw new SafetensorsError(file, `data_offsets must be [begin, end] with non-negative integers, got ${show(offsets)}`, name);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) {
    throw new SafetensorsError(file, `data_offsets [${begin}, ${end}] have begin > end`, name);
  }
  const dims = (shape as number[]).slice();
  const numel = dims.reduce((a, d) => a * d, 1);
  const bits = DTYPE_BITS[dtype];
  const totalBits = numel * bits;
  if (!Number.isSafeInteger(totalBits)) {
    throw new SafetensorsError(file, `shape ${show(dims)} has too many elements`, name);
  }
  const expectedBytes = totalBits / 8;
  if (end - begin !== expectedBytes) {
    const elem = bits % 8 === 0 ? `${bits / 8} bytes` : `${bits} bits`;
    throw new SafetensorsError(
      file,
      `byte size ${end - begin} (data_offsets [${begin}, ${end}]) does not match shape ${show(dims)} × ${dtype} (${elem}) = ` +
        (Number.isInteger(expectedBytes) ? `${expectedBytes} bytes` : `${totalBits} bits, not a whole number of bytes`),
      name,
    );
  }
  return Object.freeze({
    name,
    dtype,
    shape: Object.freeze(dims),
    numel,
    dataOffsets: Object.freeze([begin, end] as [number, number]),
    byteOffset: dataStart + begin,
    byteLength: end - begin,
  });
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
   * @internal
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
  const copy = raw.slice();
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
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
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
  const fs = await import('node:fs/promises');
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

// ---------------------------------------------------------------------------------------------
// writing

/** One tensor to write. */
export interface TensorToWrite {
  /** Tensor name (non-empty, unique, not `__metadata__`). */
  name: string;
  /** Stored dtype. */
  dtype: WritableDtype;
  /** Dimensions, outermost first; `[]` for a scalar. */
  shape: number[];
  /**
   * Row-major data with product(shape) elements: Float32Array for F32; Int32Array for I32;
   * Uint8Array for U8; for F16/BF16 either Uint16Array of raw bits or Float32Array, which is
   * converted (round to nearest even).
   */
  data: Float32Array | Uint16Array | Int32Array | Uint8Array;
}

/** Tensors to write: an ordered array, or a name→tensor record (written in key order). */
export type TensorsToWrite = TensorToWrite[] | Record<string, Omit<TensorToWrite, 'name'>>;

const WRITE_ELEMENT_BYTES: Record<WritableDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4, U8: 1 };

/** Header bytes plus the little-endian data of each tensor, in order (views where possible). */
function planFile(tensors: TensorsToWrite, metadata: Record<string, string> | undefined): { header: Uint8Array; chunks: Uint8Array[]; size: number } {
  const file = '<serialize>';
  const list: TensorToWrite[] = Array.isArray(tensors)
    ? tensors
    : Object.entries(tensors).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: t.data }));
  const seen = new Set<string>();
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new SafetensorsError(file, `__metadata__ value for key ${JSON.stringify(k)} must be a string, got ${describe(v)}`);
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of list) {
    const { name, dtype, shape, data } = t;
    if (typeof name !== 'string' || name === '' || name === '__metadata__') {
      throw new SafetensorsError(file, `invalid tensor name ${show(name)}`);
    }
    if (seen.has(name)) throw new SafetensorsError(file, 'duplicate tensor name', name);
    seen.add(name);
    if (!Object.prototype.hasOwnProperty.call(WRITE_ELEMENT_BYTES, dtype)) {
      throw new SafetensorsError(file, `cannot write dtype ${show(dtype)} (supported: F32, F16, BF16, I32, U8)`, name);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `shape must be an array of non-negative integers, got ${show(shape)}`, name);
    }
    const numel = shape.reduce((a, d) => a * d, 1);
    if (data.length !== numel) {
      throw new SafetensorsError(file, `data has ${data.length} elements but shape ${show(shape)} needs ${numel}`, name);
    }
    let bytes: Uint8Array;
    const ok =
      (dtype === 'F32' && data instanceof Float32Array) ||
      (dtype === 'I32' && data instanceof Int32Array) ||
      (dtype === 'U8' && data instanceof Uint8Array) ||
      ((dtype === 'F16' || dtype === 'BF16') && data instanceof Uint16Array);
    if (ok) {
      bytes = leBytes(data);
    } else if ((dtype === 'F16' || dtype === 'BF16') && data instanceof Float32Array) {
      const enc = dtype === 'F16' ? f32ToF16 : f32ToBf16;
      const u16 = new Uint16Array(numel);
      for (let i = 0; i < numel; i++) u16[i] = enc(data[i]!);
      bytes = leBytes(u16);
    } else {
      throw new SafetensorsError(file, `data is a ${data.constructor.name}, which does not fit dtype ${dtype}`, name);
    }
    const end = offset + bytes.length;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, end] })}`);
    chunks.push(bytes);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_SIZE) {
    throw new SafetensorsError(file, `header would be ${padded} bytes, over the limit of ${MAX_HEADER_SIZE}`);
  }
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, chunks, size: header.length + offset };
}

/** The bytes of a typed array in little-endian order (a view on little-endian platforms). */
function leBytes(a: Float32Array | Uint16Array | Int32Array | Uint8Array): Uint8Array {
  const view = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return IS_LITTLE_ENDIAN || a.BYTES_PER_ELEMENT === 1 ? view : toSwapped(view, a.BYTES_PER_ELEMENT);
}

function toSwapped(view: Uint8Array, elemBytes: number): Uint8Array {
  const copy = view.slice();
  for (let i = 0; i < copy.length; i += elemBytes) copy.subarray(i, i + elemBytes).reverse();
  return copy;
}

/**
 * Serializes tensors to a safetensors file image. The header is `__metadata__` (if given) then
 * the tensors in the given order, padded with spaces to a multiple of 8 bytes so the byte buffer
 * starts 8-aligned; tensor data is laid out contiguously in the given order (the format forbids
 * gaps, so a tensor is aligned to its element size when the tensors before it have sizes that are
 * multiples of it — put wider dtypes first to keep every tensor aligned).
 * @param tensors an ordered array of tensors, or a name→tensor record.
 * @param metadata optional string→string `__metadata__` map.
 * @throws {SafetensorsError} on a bad name, duplicate name, dtype/data mismatch or shape/length mismatch.
 */
export function serializeSafetensors(tensors: TensorsToWrite, metadata?: Record<string, string>): Uint8Array {
  const { header, chunks, size } = planFile(tensors, metadata);
  const out = new Uint8Array(size);
  out.set(header, 0);
  let pos = header.length;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return out;
}

/**
 * Writes tensors to a safetensors file (Node only), with the same layout as
 * {@link serializeSafetensors}, streaming each tensor's bytes to the file rather than building
 * the whole image in memory.
 * @param path destination file path (overwritten if it exists).
 * @param tensors an ordered array of tensors, or a name→tensor record.
 * @param metadata optional string→string `__metadata__` map.
 * @throws {SafetensorsError} on invalid input (before the file is created); fs errors pass through.
 */
export async function writeSafetensorsFile(path: string, tensors: TensorsToWrite, metadata?: Record<string, string>): Promise<void> {
  const { header, chunks } = planFile(tensors, metadata);
  const fs = await import('node:fs/promises');
  const fh = await fs.open(path, 'w');
  try {
    for (const c of [header, ...chunks]) {
      let done = 0;
      while (done < c.length) {
        const { bytesWritten } = await fh.write(c, done, Math.min(1 << 30, c.length - done));
        done += bytesWritten;
      }
    }
  } finally {
    await fh.close();
  }
}
