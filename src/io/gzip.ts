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
import { copyBytes } from './bytes.js';
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
 * are `ScanError`s naming `path`. gzip data of several members (`cat a.gz b.gz`, bgzip) reads the same on every
 * platform: where the platform's DecompressionStream reads one member only and refuses what follows (Chromium:
 * "Junk found after end of compressed data"), the members are read one by one ({@link gunzipMembers}).
 */
export async function inflateBounded(bytes: Uint8Array, path: string, opts: InflateOptions): Promise<Uint8Array> {
  const what = opts.format === 'gzip' ? 'gzip' : 'deflate';
  const out = new Output(bytes.length, opts.maxOutput ?? DEFAULT_MAX_INFLATE_BYTES, opts.stopAt ?? Infinity, (max) => new ScanError(path, `${what} data decompresses to more than ${max} bytes, the most expected here`, 'malformed'));
  const reader = byteStream(bytes).pipeThrough(new DecompressionStream(opts.format) as unknown as TransformStream<Uint8Array, Uint8Array>).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      out.add(value);
      if (out.full) break;
    }
  } catch (e) {
    await reader.cancel().catch(() => undefined);
    if (e instanceof ScanError) throw e;
    if (opts.format === 'gzip') {
      out.reset();
      await readMembers(bytes, path, out);
      return out.bytes();
    }
    throw new ScanError(path, `${what} data is corrupt or truncated (${messageOf(e)}) after ${out.total} decompressed bytes`, 'malformed');
  }
  if (out.full) await reader.cancel().catch(() => undefined);
  return out.bytes();
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
        controller.enqueue(copyBytes(bytes, fed, end));
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

/**
 * The output of one decompression: enforces the bound (`maxOutput`, a ScanError from `bound`) and the prefix
 * (`stopAt`: bytes past it are dropped, `full` says when it is reached). When the caller names the size it
 * wants and the input could really hold that much (deflate expands at most MAX_DEFLATE_RATIO times), the
 * output goes straight into one buffer of that size: the peak is the output once, not twice. Otherwise chunks
 * are collected and joined at the end.
 */
class Output {
  private chunks: Uint8Array[] = [];
  private readonly direct: Uint8Array | null;
  total = 0;
  constructor(
    inputLength: number,
    readonly maxOutput: number,
    readonly stopAt: number,
    private readonly bound: (max: number) => ScanError,
  ) {
    this.direct = Number.isFinite(stopAt) && stopAt <= maxOutput && stopAt <= inputLength * MAX_DEFLATE_RATIO ? new Uint8Array(stopAt) : null;
  }
  get full(): boolean {
    return this.total >= this.stopAt;
  }
  /** Bytes that may still come before the bound. */
  get room(): number {
    return this.maxOutput - this.total;
  }
  /** The bound's error. */
  tooLong(): ScanError {
    return this.bound(this.maxOutput);
  }
  add(value: Uint8Array): void {
    const take = Math.min(value.length, this.stopAt - this.total);
    if (this.total + take > this.maxOutput) throw this.tooLong();
    const v = take < value.length ? value.subarray(0, take) : value;
    if (this.direct) this.direct.set(v, this.total);
    else this.chunks.push(v);
    this.total += take;
  }
  reset(): void {
    this.chunks = [];
    this.total = 0;
  }
  bytes(): Uint8Array {
    if (this.direct) return this.total === this.direct.length ? this.direct : this.direct.subarray(0, this.total);
    return concat(this.chunks, this.total);
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

// ---------------------------------------------------------------------------------------------------------------
// gzip members one by one, on DecompressionStream('deflate-raw').
//
// A member (RFC 1952) is a header (1f 8b 08, flags, mtime, xfl, os, then FEXTRA / FNAME / FCOMMENT / FHCRC as the
// flags say), a raw deflate stream, and a trailer: CRC-32 and length (mod 2^32) of the member's data, little
// endian. The header and trailer are read here; the deflate stream is the platform's. The one thing the
// platform does not say is where the deflate stream ended, i.e. where the trailer is. It is found with the
// decompressor as the judge, in one of two ways depending on how the platform treats bytes after the end:
// - platforms that refuse them (Chromium; the Compression Streams standard): the stream and what follows are
//   written in pieces; the first refused write holds the end. A position p in that piece is the end exactly when
//   bytes [start, p) decompress to a clean end (any shorter prefix is truncated, any longer one has bytes after
//   the end), so the positions that could be a trailer followed by the next member (1f 8b 08) or the end of the
//   data are tried in order; failing those, the piece is narrowed by writing it in smaller pieces, then byte by
//   byte, which gives the end exactly.
// - platforms that ignore them (Node's): a prefix [start, p) decompresses to a clean end exactly when p is at or
//   past the end; the member's data (complete, since nothing failed) gives its CRC-32 and length, and the first
//   position holding that trailer whose prefix ends cleanly is the end. Prefixes grow 4 times at a time, so the
//   work stays proportional to the member, not to the rest of the file.
// After each member, as zlib's gunzip (Node) does: the end of the data, or a 0x00 byte (padding: the rest is
// ignored), ends the file; anything else must be the next member's header.
// ---------------------------------------------------------------------------------------------------------------

/** What one decompression of a byte range gave. */
interface RawPass {
  /** The output read (a prefix of the stream's output when the pass failed). */
  chunks: Uint8Array[];
  total: number;
  /** Offset of the first refused piece (-1: none refused). */
  refusedAt: number;
  /** End (exclusive) of the refused piece. */
  refusedEnd: number;
  /** Every piece was accepted and the stream closed without error: the bytes hold a complete deflate stream. */
  clean: boolean;
  /** The pass stopped reading because the output reached `stop`. */
  stopped: boolean;
  /** The error of the refused piece or of the close. */
  error: unknown;
}

/**
 * Writes `bytes[from, to)` into DecompressionStream('deflate-raw') in pieces of `piece` bytes, except that
 * `[from, fine)` (when given) goes in pieces of PIECE bytes first, and reads the output as it comes. Stops when
 * the output reaches `stop` bytes; throws `tooLong()` past `limit`.
 */
async function rawPass(bytes: Uint8Array, from: number, to: number, piece: number, opts: { limit: number; stop: number; tooLong: () => ScanError; fine?: number }): Promise<RawPass> {
  const ds = new DecompressionStream('deflate-raw') as unknown as TransformStream<Uint8Array, Uint8Array>;
  const writer = ds.writable.getWriter();
  const reader = ds.readable.getReader();
  const pass: RawPass = { chunks: [], total: 0, refusedAt: -1, refusedEnd: -1, clean: false, stopped: false, error: undefined };
  let over = false;
  let halted = false;
  const reading = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        pass.chunks.push(value);
        pass.total += value.length;
        if (pass.total > opts.limit) over = true;
        else if (pass.total >= opts.stop) pass.stopped = true;
        else continue;
        halted = true;
        await reader.cancel().catch(() => undefined);
        return;
      }
    } catch {
      // The stream failed: the write or close that made it fail says why.
    }
  })();
  const fine = opts.fine ?? from;
  for (let at = from; at < to && !halted; ) {
    const end = Math.min(to, at + (at < fine ? Math.min(PIECE, fine - at) : piece));
    try {
      await writer.write(copyBytes(bytes, at, end));
    } catch (e) {
      if (!halted) [pass.refusedAt, pass.refusedEnd, pass.error] = [at, end, e];
      break;
    }
    at = end;
  }
  if (!halted && pass.refusedAt < 0) {
    try {
      await writer.close();
      pass.clean = true;
    } catch (e) {
      if (!halted) pass.error = e;
    }
  }
  await reading;
  if (over) throw opts.tooLong();
  if (pass.stopped) pass.clean = false;
  return pass;
}

/** Whether this platform's raw inflate refuses bytes after the end of the stream (probed once). */
let refusesTrailing: Promise<boolean> | undefined;
function platformRefusesTrailing(): Promise<boolean> {
  return (refusesTrailing ??= (async () => {
    // An empty final fixed-Huffman block (03 00), then one byte more.
    const reader = new Blob([new Uint8Array([3, 0, 0])]).stream().pipeThrough(new DecompressionStream('deflate-raw') as unknown as TransformStream<Uint8Array, Uint8Array>).getReader();
    try {
      while (!(await reader.read()).done);
      return false;
    } catch {
      return true;
    }
  })());
}

/** Size of the pieces a member's deflate stream is written in when its end is looked for. */
const PIECE = 64 * 1024;

/** Offset of a member's deflate stream, after the header at `o`; a problem string when the header is not one. */
function memberPayload(b: Uint8Array, o: number): number | string {
  if ((o < b.length && b[o] !== 0x1f) || (o + 1 < b.length && b[o + 1] !== 0x8b)) return 'not a gzip member (no 1f 8b)';
  if (o + 2 < b.length && b[o + 2] !== 8) return `compression method ${b[o + 2]}, not deflate (8)`;
  if (b.length - o < 10) return 'member header cut short';
  const flags = b[o + 3]!;
  if (flags & 0xe0) return `reserved header flags set (${flags})`;
  let p = o + 10;
  if (flags & 4) {
    if (p + 2 > b.length) return 'member header cut short';
    p += 2 + (b[p]! | (b[p + 1]! << 8));
  }
  for (const bit of [8, 16]) {
    if (!(flags & bit)) continue;
    while (p < b.length && b[p] !== 0) p++;
    p++;
  }
  if (flags & 2) {
    if (p + 2 > b.length) return 'member header cut short';
    const want = b[p]! | (b[p + 1]! << 8);
    if ((crc32Update(0, b.subarray(o, p)) & 0xffff) !== want) return 'header CRC mismatch';
    p += 2;
  }
  return p > b.length ? 'member header cut short' : p;
}

/**
 * Whether a member's trailer at `p` would be followed by the end of the data or by another member (1f 8b 08):
 * the places tried first (a 0x00 byte, the padding zlib allows, is too common in deflate data to try them all).
 */
function endsMemberAt(b: Uint8Array, p: number): boolean {
  const next = p + 8;
  if (next > b.length) return false;
  return next === b.length || (b[next] === 0x1f && b[next + 1] === 0x8b && b[next + 2] === 8);
}

function u32(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/**
 * Decompresses gzip data member by member (see the comment above) with the bound and prefix of
 * {@link inflateBounded}, which falls back to this when the platform's DecompressionStream('gzip') fails; exported
 * so that either way of finding a member's end can be tested on any platform. Each member's header and trailer
 * are checked (header CRC, CRC-32, length); errors are ScanError 'malformed' naming the file, the member and its
 * offset.
 */
export async function gunzipMembers(bytes: Uint8Array, path: string, opts: Omit<InflateOptions, 'format'> = {}): Promise<Uint8Array> {
  const out = new Output(bytes.length, opts.maxOutput ?? DEFAULT_MAX_INFLATE_BYTES, opts.stopAt ?? Infinity, (max) => new ScanError(path, `gzip data decompresses to more than ${max} bytes, the most expected here`, 'malformed'));
  await readMembers(bytes, path, out);
  return out.bytes();
}

async function readMembers(bytes: Uint8Array, path: string, out: Output): Promise<void> {
  const strict = await platformRefusesTrailing();
  for (let o = 0, n = 1; ; n++) {
    const fail = (problem: string) => new ScanError(path, `gzip data is corrupt or truncated (member ${n} at byte ${o}: ${problem})`, 'malformed');
    const start = memberPayload(bytes, o);
    if (typeof start === 'string') throw fail(start);
    const limits = { limit: out.room, stop: out.stopAt - out.total, tooLong: () => out.tooLong() };
    const m = strict ? await memberStrict(bytes, start, limits) : await memberLenient(bytes, start, limits);
    if (typeof m === 'string') throw fail(m);
    for (const c of m.chunks) out.add(c);
    if (m.end < 0 || out.full) return;
    const crc = crc32Update(0, ...m.chunks);
    if (u32(bytes, m.end) !== crc) throw fail(`CRC-32 ${u32(bytes, m.end).toString(16)} in the trailer, ${crc.toString(16)} computed`);
    if (u32(bytes, m.end + 4) !== m.total >>> 0) throw fail(`length ${u32(bytes, m.end + 4)} in the trailer, ${m.total} decompressed`);
    o = m.end + 8;
    if (o >= bytes.length || bytes[o] === 0) return;
  }
}

/** A member's output and where its deflate stream ends (-1: the output reached what was asked, end not known). */
type Member = { chunks: Uint8Array[]; total: number; end: number } | string;
type Limits = { limit: number; stop: number; tooLong: () => ScanError };

async function memberStrict(b: Uint8Array, start: number, lim: Limits): Promise<Member> {
  const first = await rawPass(b, start, b.length, PIECE, lim);
  if (first.stopped) return { chunks: first.chunks, total: first.total, end: -1 };
  if (first.refusedAt < 0) return first.clean ? 'no trailer after the deflate data' : `deflate data truncated or corrupt (${messageOf(first.error)})`;
  // The end is in [refusedAt, refusedEnd): try the places a trailer would be followed by a member or the end.
  const ends = (p: number) => rawPass(b, start, p, PIECE, { ...lim, stop: Infinity });
  for (let p = first.refusedAt; p < first.refusedEnd; p++) {
    if (!endsMemberAt(b, p)) continue;
    const v = await ends(p);
    if (v.clean) return { chunks: v.chunks, total: v.total, end: p };
  }
  // Otherwise narrow the piece: 256-byte pieces, then single bytes; the refused byte is the first after the end.
  let [lo, hi] = [first.refusedAt, first.refusedEnd];
  for (const piece of [256, 1]) {
    const r = await rawPass(b, start, hi, piece, { ...lim, stop: Infinity, fine: lo });
    if (r.refusedAt < 0) return `deflate data truncated or corrupt (${messageOf(first.error)})`;
    [lo, hi] = [r.refusedAt, r.refusedEnd];
  }
  const v = await ends(lo);
  if (!v.clean) return `deflate data truncated or corrupt (${messageOf(first.error)})`;
  return lo + 8 <= b.length ? { chunks: v.chunks, total: v.total, end: lo } : 'trailer cut short';
}

async function memberLenient(b: Uint8Array, start: number, lim: Limits): Promise<Member> {
  for (let len = 4 * PIECE; ; len *= 4) {
    const to = Math.min(b.length, start + len);
    const r = await rawPass(b, start, to, PIECE, lim);
    if (r.stopped) return { chunks: r.chunks, total: r.total, end: -1 };
    if (!r.clean) {
      if (r.refusedAt < 0 && to < b.length) continue; // truncated here: the stream goes on past `to`
      return `deflate data truncated or corrupt (${messageOf(r.error)})`;
    }
    const crc = crc32Update(0, ...r.chunks);
    const isize = r.total >>> 0;
    for (let p = start; p + 8 <= b.length && p <= to; p++) {
      if (u32(b, p) !== crc || u32(b, p + 4) !== isize) continue;
      if ((await rawPass(b, start, p, PIECE, { ...lim, stop: Infinity })).clean) return { chunks: r.chunks, total: r.total, end: p };
    }
    return 'no trailer with the CRC-32 and length of the member\'s data';
  }
}

/** CRC-32 (ISO 3309, the gzip trailer's) of the concatenated arrays, continuing from `crc`. */
export function crc32Update(crc: number, ...parts: Uint8Array[]): number {
  const t = (CRC_TABLE ??= makeCrcTable());
  let c = ~crc >>> 0;
  for (const part of parts) for (let i = 0; i < part.length; i++) c = t[(c ^ part[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
let CRC_TABLE: Uint32Array | undefined;
function makeCrcTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
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
