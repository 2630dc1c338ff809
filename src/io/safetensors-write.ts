/** The safetensors writer: a file image in memory ({@link serializeSafetensors}) or streamed to disk (Node). */
import { fsPromises } from '../host/node.js';
import { f32ToBf16, f32ToF16 } from './float16.js';
import { describe, IS_LITTLE_ENDIAN, MAX_HEADER_SIZE, SafetensorsError, show, type WritableDtype } from './safetensors-format.js';

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
  const fs = await fsPromises('writeSafetensorsFile');
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
