/**
 * gzip (RFC 1952) and raw deflate (RFC 1951) on the web-standard CompressionStream / DecompressionStream, which
 * Node (>= 20) and browsers both provide, so the NIfTI and DICOM readers run unchanged in either.
 *
 * Decompression is bounded: output is taken chunk by chunk (the compressed input is fed in 64 KiB pieces as the
 * decompressor asks for them), and once it would exceed `maxOutput` the stream is cancelled and a
 * `ScanError('malformed')` names the file and the bound, so a small "zip bomb" never becomes a huge allocation.
 * Callers that know how much they need (a NIfTI reader knows it from the header) pass that as the bound, or ask
 * for a prefix only (`stopAt`), in which case decompression stops as soon as the prefix is there. Without a
 * bound from the caller the limit is {@link DEFAULT_MAX_INFLATE_BYTES} (4 GiB).
 *
 * Memory: when the caller names the size it wants (`stopAt`) and the compressed input is large
 * enough to hold that much (deflate expands at most about 1032 times), the output goes straight into one buffer
 * of that size, so the peak is the output itself; otherwise chunks are collected and joined once at the end
 * (peak about twice the output).
 * @module
 */
import { ScanError } from './errors.js';

/** The limit on decompressed bytes when the caller gives none: 4 GiB. */
export const DEFAULT_MAX_INFLATE_BYTES = 4 * 1024 ** 3;

/** Deflate's largest expansion (a 258-byte match in about 2 bits, plus block overhead): about 1032:1. */
const MAX_DEFLATE_RATIO = 1032;

/** Size of the pieces the compressed input is fed in. */
const INPUT_PIECE = 64 * 1024;

/** Whether the bytes start with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Options of {@link inflateBounded}. */
export interface InflateOptions {
  /** 'gzip' (RFC 1952, members may be concatenated where the platform allows) or 'deflate-raw' (RFC 1951). */
  format: 'gzip' | 'deflate-raw';
  /** Error when the whole output would be longer than this (default {@link DEFAULT_MAX_INFLATE_BYTES}). */
  maxOutput?: number;
  /**
   * Return the first `stopAt` bytes only and stop decompressing once they are there (the result is shorter when
   * the stream ends first). The rest of the stream is neither decompressed nor checked.
   */
  stopAt?: number;
}

/**
 * Decompresses `bytes` with a bound on the output. Errors (corrupt or truncated data, output beyond the bound)
 * are `ScanError`s naming `path`.
 */
export async function inflateBounded(bytes: Uint8Array, path: string, opts: InflateOptions): Promise<Uint8Array> {
  const maxOutput = opts.maxOutput ?? DEFAULT_MAX_INFLATE_BYTES;
  const stopAt = opts.stopAt ?? Infinity;
  const what = opts.format === 'gzip' ? 'gzip' : 'deflate';
  const reader = byteStream(bytes).pipeThrough(new DecompressionStream(opts.format) as unknown as TransformStream<Uint8Array, Uint8Array>).getReader();
  // When the caller asks for a prefix (stopAt) that the input could really hold (deflate expands at most
  // MAX_DEFLATE_RATIO times), it is written straight into one buffer of that size: the peak is the output once,
  // not twice. Otherwise chunks are collected and joined.
  const direct = Number.isFinite(stopAt) && stopAt <= maxOutput && stopAt <= bytes.length * MAX_DEFLATE_RATIO ? new Uint8Array(stopAt) : null;
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = Math.min(value.length, stopAt - total);
      if (total + take > maxOutput) throw new ScanError(path, `${what} data decompresses to more than ${maxOutput} bytes, the most expected here`, 'malformed');
      if (direct) direct.set(take < value.length ? value.subarray(0, take) : value, total);
      else chunks.push(take < value.length ? value.subarray(0, take) : value);
      total += take;
      if (total >= stopAt) break;
    }
  } catch (e) {
    await reader.cancel().catch(() => undefined);
    if (e instanceof ScanError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw new ScanError(path, `${what} data is corrupt or truncated (${msg}) after ${total} decompressed bytes`, 'malformed');
  }
  if (total >= stopAt) await reader.cancel().catch(() => undefined);
  if (direct) return total === direct.length ? direct : direct.subarray(0, total);
  return concat(chunks, total);
}

/**
 * Decompresses gzip data (the `.nii.gz` of NIfTI). Output longer than `maxOutput` bytes (default
 * {@link DEFAULT_MAX_INFLATE_BYTES}) is refused with `ScanError('malformed')` before it is all held.
 */
export function gunzip(bytes: Uint8Array, path: string, maxOutput?: number): Promise<Uint8Array> {
  return inflateBounded(bytes, path, { format: 'gzip', ...(maxOutput !== undefined ? { maxOutput } : {}) });
}

/** Decompresses raw deflate data (DICOM's Deflated Explicit VR Little Endian), bounded as {@link gunzip}. */
export function inflateRaw(bytes: Uint8Array, path: string, maxOutput?: number): Promise<Uint8Array> {
  return inflateBounded(bytes, path, { format: 'deflate-raw', ...(maxOutput !== undefined ? { maxOutput } : {}) });
}

/**
 * The bytes as a pull stream of INPUT_PIECE-sized copies (a copy, so the stream never transfers or holds on to the
 * caller's buffer), read only as fast as the (de)compressor consumes them.
 */
function byteStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let fed = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (fed >= bytes.length) {
          controller.close();
          return;
        }
        const end = Math.min(bytes.length, fed + INPUT_PIECE);
        controller.enqueue(bytes.slice(fed, end));
        fed = end;
      },
    },
    { highWaterMark: 0 },
  );
}

/** Compresses to gzip (one member, the platform's default level). */
export function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return collect(byteStream(bytes).pipeThrough(new CompressionStream('gzip') as unknown as TransformStream<Uint8Array, Uint8Array>));
}

/**
 * Compresses the concatenation of `pieces` to gzip (one member, as {@link gzip}) without ever joining them: each
 * piece is taken from the iterator only when the compressor asks for more input, so the uncompressed whole never
 * exists and the peak is the compressed output plus a piece or two. The iterator may reuse nothing it has
 * handed out (a piece is held until the compressor has read it).
 */
export function gzipPieces(pieces: Iterable<Uint8Array>): Promise<Uint8Array> {
  const it = pieces[Symbol.iterator]();
  const source = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        for (;;) {
          const next = it.next();
          if (next.done) {
            controller.close();
            return;
          }
          if (next.value.length) {
            controller.enqueue(next.value);
            return;
          }
        }
      },
    },
    { highWaterMark: 0 },
  );
  return collect(source.pipeThrough(new CompressionStream('gzip') as unknown as TransformStream<Uint8Array, Uint8Array>));
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
  }
  return concat(chunks, total);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1 && chunks[0]!.length === total && chunks[0]!.byteOffset === 0 && chunks[0]!.buffer.byteLength === total) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
