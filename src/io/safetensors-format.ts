/**
 * The safetensors format: its dtypes, its error, and the validation of the 8-byte prefix and the JSON header
 * (the reader, src/io/safetensors.ts, and the writer, src/io/safetensors-write.ts, share it).
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
 */

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
export interface ParsedHeader {
  headerSize: number;
  metadata: Record<string, string>;
  tensors: TensorInfo[]; // sorted by offset
}

export const IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Validates the 8-byte prefix; returns the header size N.
 * @param fileSize total size of the file in bytes.
 */
export function readHeaderSize(prefix: Uint8Array, fileSize: number, file: string): number {
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

/** What kind of JSON value `v` is, for messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/** `v` as short JSON, for messages. */
export function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return String(v);
  }
}

/** The deepest nesting of JSON arrays and objects the header may have (serde_json's recursion limit). */
const MAX_HEADER_NESTING = 128;

/** How deep `{` and `[` nest in `text`, strings skipped (stops at the first level beyond MAX_HEADER_NESTING). */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > deepest) deepest = depth;
      if (depth > MAX_HEADER_NESTING) break;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/**
 * Decodes and validates the header JSON against a byte buffer of `dataLength` bytes.
 * @param header the N header bytes.
 */
export function parseHeader(header: Uint8Array, dataLength: number, file: string): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(header);
  } catch {
    throw new SafetensorsError(file, 'header is not valid UTF-8');
  }
  if (!text.startsWith('{')) {
    throw new SafetensorsError(file, `header must be a JSON object starting with '{', got ${show(text.slice(0, 20))}`);
  }
  // A valid header nests three deep; the reference library (serde_json) stops at 128. Checked before JSON.parse,
  // which would otherwise build every level of a 100 MB header of '[' (the fuzzer found 1,000,000 levels taking
  // over 5 s).
  const depth = nestingDepth(text);
  if (depth > MAX_HEADER_NESTING) throw new SafetensorsError(file, `header is not valid JSON (nested more than ${MAX_HEADER_NESTING} deep)`);
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
