/**
 * The fuzz targets: every reader (safetensors, NIfTI, DICOM) and each pixel decoder (RLE, JPEG Lossless, JPEG-LS,
 * JPEG 2000, the bounded raw inflate of deflated DICOM data sets, the bounded gzip of .nii.gz), each with its seeds (from the
 * committed fixtures), its mutations (generic and structure-aware) and the call that must end in a value or the
 * reader's typed error. {@link runCase} runs one case with the time and the allocations measured.
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ScanError } from '../../src/io/errors.js';
import { inflateBounded, inflateRaw } from '../../src/io/gzip.js';
import { readNifti, readNiftiHeader } from '../../src/io/nifti.js';
import { isF32Convertible, parseSafetensors, SafetensorsError } from '../../src/io/safetensors.js';
import { describeDicomFile, readDicomSeries, scanDicomFiles } from '../../src/io/dicom/index.js';
import { decodeJpeg2000, decodeJpegLossless, decodeJpegLs, MAX_CODEC_HEAP } from '../../src/io/dicom/codecs.js';
import { dicomParser, MAX_DEFLATED_DATASET_BYTES } from '../../src/io/dicom/parse.js';
import { decodeRleFrame } from '../../src/io/dicom/rle.js';
import { tracked, type Allocations } from './alloc.js';
import { DICOM_KINDS, layout, mutateDicom } from './dicom-structure.js';
import { mutateGeneric, Rng } from './mutate.js';
import { CODEC_KINDS, mutateCodec, mutateNifti, mutateSafetensors, NIFTI_KINDS, SAFETENSORS_KINDS, type CodecKind } from './structure.js';

const FIX = join(import.meta.dirname, '..', 'fixtures');
const SCANS = join(FIX, 'scans');

/** One seed input: the bytes, and for decoders the parameters the header gave. */
export interface Seed {
  name: string;
  bytes: Uint8Array;
  /** For NIfTI: the uncompressed file when the seed is a .nii.gz. */
  plain?: Uint8Array;
  /** For decoders: pixels (and the image size the DICOM header gives) and bytes per sample. */
  pixels?: number;
  width?: number;
  height?: number;
  bytesPerSample?: number;
  /** For DICOM: the other files of the seed's folder. */
  companions?: { name: string; bytes: Uint8Array }[];
}

/** One generated case. */
export interface Case {
  bytes: Uint8Array;
  kinds: string[];
  pixels?: number;
  width?: number;
  height?: number;
  bytesPerSample?: number;
  companions?: { name: string; bytes: Uint8Array }[];
}

/** A reader or decoder under fuzz. */
export interface Target {
  name: string;
  /** What it reads, for reports. */
  what: string;
  /** The typed error its bad input must give. */
  errorName: string;
  /** Allocation bound: the bytes allocated in one case must stay under `factor` x the input's size + 1 MiB. */
  allocFactor: number;
  /**
   * For targets that run the JPEG-LS / JPEG 2000 codecs: their heap (a JavaScript ArrayBuffer in these builds)
   * grows in a case and is replaced by a fresh 50 MiB one once past MAX_CODEC_HEAP, so one case may add up to
   * that much on top of the bound.
   */
  codecHeap?: boolean;
  seeds: () => Seed[];
  mutate: (rng: Rng, seed: Seed, seeds: Seed[]) => Case;
  run: (c: Case, name: string) => Promise<unknown>;
  isTyped: (e: unknown) => boolean;
}

/**
 * Bytes of codec heap growth allowed per case: a codec whose heap passed MAX_CODEC_HEAP is replaced after the frame
 * (finding 5 in docs/reliability.md), so a case can see the heap grow up to that, plus the first 50 MiB.
 */
const CODEC_HEAP_ALLOWANCE = MAX_CODEC_HEAP + 50 * 2 ** 20;

const warmed = new Set<string>();
/**
 * Runs every seed once, untracked, before the first case: one-time costs (a codec's module and its 50 MiB
 * initial heap, the f16 lookup table) are not the case's doing.
 */
async function warm(t: Target): Promise<void> {
  if (warmed.has(t.name)) return;
  warmed.add(t.name);
  for (const s of t.seeds()) {
    const c: Case = { bytes: s.bytes, kinds: [] };
    if (s.pixels !== undefined) c.pixels = s.pixels;
    if (s.bytesPerSample !== undefined) c.bytesPerSample = s.bytesPerSample;
    if (s.width !== undefined) [c.width, c.height] = [s.width, s.height!];
    await t.run(c, s.name).catch(() => undefined);
  }
}

const cache = new Map<string, Seed[]>();
function cached(key: string, make: () => Seed[]): () => Seed[] {
  return () => {
    let s = cache.get(key);
    if (!s) cache.set(key, (s = make()));
    return s;
  };
}

const read = (p: string) => new Uint8Array(readFileSync(p));
const isScan = (e: unknown) => e instanceof ScanError;

/** A small safetensors file with a tensor of every dtype (hand-built header, so dtypes the writer does not write are there too). */
export function allDtypesFile(): Uint8Array {
  const spec: [string, string, number[], number][] = [
    ['f32', 'F32', [3, 4], 4], ['f16', 'F16', [5], 2], ['bf16', 'BF16', [2, 2], 2], ['f64', 'F64', [3], 8], ['i64', 'I64', [2], 8],
    ['u64', 'U64', [1], 8], ['i8', 'I8', [3], 1], ['u8', 'U8', [4], 1], ['bool', 'BOOL', [2], 1], ['i16', 'I16', [2], 2], ['u16', 'U16', [2], 2],
    ['i32', 'I32', [2], 4], ['u32', 'U32', [1], 4], ['e5m2', 'F8_E5M2', [3], 1], ['e4m3', 'F8_E4M3', [3], 1], ['e8m0', 'F8_E8M0', [2], 1],
    ['c64', 'C64', [1], 8], ['f4', 'F4', [4], 0.5], ['scalar', 'F32', [], 4],
  ];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'fuzz seed' } };
  let off = 0;
  for (const [name, dtype, shape, size] of spec) {
    const len = shape.reduce((a, b) => a * b, 1) * size;
    header[name] = { dtype, shape, data_offsets: [off, off + len] };
    off += len;
  }
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - ((8 + text.length) % 8)) % 8);
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  const rng = new Rng(7);
  for (let i = 8 + h.length; i < out.length; i++) out[i] = rng.int(256);
  return out;
}

const safetensors: Target = {
  name: 'safetensors',
  what: 'parseSafetensors, then getRaw and getF32 of every tensor',
  errorName: 'SafetensorsError',
  allocFactor: 8,
  seeds: cached('safetensors', () => [
    { name: 'all_dtypes.safetensors', bytes: allDtypesFile() },
    ...['efficientnet_b1.fixture.safetensors', 'efficientnet_b2.fixture.safetensors'].map((n) => ({ name: n, bytes: read(join(FIX, n)) })),
  ]),
  mutate(rng, seed, seeds) {
    if (rng.chance(0.55)) {
      const kind = rng.pick(SAFETENSORS_KINDS);
      const b = mutateSafetensors(rng, seed.bytes, kind);
      if (b) return { bytes: b, kinds: [kind] };
    }
    const { bytes, kinds } = mutateGeneric(rng, seed.bytes, rng.pick(seeds).bytes, rng.chance(0.5) ? 8 : 0);
    return { bytes, kinds };
  },
  async run(c, name) {
    const f = parseSafetensors(c.bytes, name);
    let n = 0;
    for (const t of f.tensors) {
      n += f.getRaw(t.name).length;
      if (isF32Convertible(t.dtype)) n += f.getF32(t.name).length;
    }
    return n;
  },
  isTyped: (e) => e instanceof SafetensorsError,
};

const nifti: Target = {
  name: 'nifti',
  what: 'readNifti and readNiftiHeader, .nii and .nii.gz',
  errorName: 'ScanError',
  // A .nii.gz may inflate 1032 times; its voxels as float32 double that again for 16-bit data.
  allocFactor: 4200,
  seeds: cached('nifti', () => {
    const dir = join(SCANS, 'nifti');
    return readdirSync(dir).filter((f) => f.endsWith('.nii') || f.endsWith('.nii.gz')).sort().map((f) => {
      const bytes = read(join(dir, f));
      let plain: Uint8Array | undefined;
      if (f.endsWith('.gz')) try {
        plain = new Uint8Array(gunzipSync(bytes));
      } catch {
        plain = undefined;
      }
      return { name: f, bytes, ...(plain ? { plain } : {}) };
    });
  }),
  mutate(rng, seed, seeds) {
    const gz = seed.name.endsWith('.gz');
    if (gz && rng.chance(0.15)) {
      const { bytes, kinds } = mutateGeneric(rng, seed.bytes, rng.pick(seeds).bytes, rng.chance(0.5) ? 10 : 0);
      return { bytes, kinds: ['gzip-bytes', ...kinds] };
    }
    const plain = seed.plain ?? seed.bytes;
    let out: Uint8Array | undefined;
    let kinds: string[] = [];
    if (rng.chance(0.6)) {
      const kind = rng.pick(NIFTI_KINDS);
      out = mutateNifti(rng, plain, kind);
      kinds = [kind];
      if (out && rng.chance(0.3)) {
        const kind2 = rng.pick(NIFTI_KINDS);
        out = mutateNifti(rng, out, kind2) ?? out;
        kinds.push(kind2);
      }
    }
    if (!out) {
      const other = rng.pick(seeds);
      const m = mutateGeneric(rng, plain, other.plain ?? other.bytes, rng.chance(0.5) ? 4 : 0);
      out = m.bytes;
      kinds = m.kinds;
    }
    if (rng.chance(gz ? 0.8 : 0.15)) {
      out = new Uint8Array(gzipSync(out));
      kinds.push('gzipped');
    }
    return { bytes: out, kinds };
  },
  async run(c, name) {
    await readNiftiHeader(c.bytes, name);
    return readNifti(c.bytes, name);
  },
  isTyped: isScan,
};

/** The first file of each fixture folder of DICOM, with the rest of its folder as companions. */
const dicomSeeds = cached('dicom', () => {
  const dir = join(SCANS, 'dicom');
  const out: Seed[] = [];
  for (const d of readdirSync(dir).sort()) {
    const files = readdirSync(join(dir, d)).sort().filter((f) => !f.startsWith('.'));
    if (!files.length) continue;
    const all = files.map((f) => ({ name: `${d}/${f}`, bytes: read(join(dir, d, f)) }));
    out.push({ ...all[0]!, companions: all.slice(1, 4) });
  }
  return out;
});

const dicom: Target = {
  name: 'dicom',
  what: 'scanDicomFiles, readDicomSeries of every series found, describeDicomFile',
  errorName: 'ScanError',
  // Encapsulated frames: RLE expands 64 times, stored values are 4 bytes and the per-slice HU 8 per pixel.
  allocFactor: 1100,
  codecHeap: true,
  seeds: dicomSeeds,
  mutate(rng, seed, seeds) {
    let bytes: Uint8Array | undefined;
    let kinds: string[] = [];
    if (rng.chance(0.6)) {
      const kind = rng.pick(DICOM_KINDS);
      bytes = mutateDicom(rng, seed.bytes, kind);
      kinds = [kind];
      if (bytes && rng.chance(0.25)) {
        const kind2 = rng.pick(DICOM_KINDS);
        bytes = mutateDicom(rng, bytes, kind2) ?? bytes;
        kinds.push(kind2);
      }
    }
    if (!bytes) {
      const m = mutateGeneric(rng, seed.bytes, rng.pick(seeds).bytes, rng.chance(0.6) ? 132 : 0);
      bytes = m.bytes;
      kinds = m.kinds;
    }
    const c: Case = { bytes, kinds };
    if (seed.companions?.length && rng.chance(0.3)) c.companions = seed.companions;
    return c;
  },
  async run(c, name) {
    const files = [{ path: name, bytes: c.bytes }, ...(c.companions ?? []).map((f) => ({ path: f.name, bytes: f.bytes }))];
    const scan = await scanDicomFiles(files, 'fuzzdir');
    const map = new Map(files.map((f) => [f.path, f.bytes]));
    for (const s of scan.series) {
      try {
        await readDicomSeries(scan, s, map);
      } catch (e) {
        // Series-level refusals name the folder or a companion; the test checks the class and the one line.
        if (!(e instanceof ScanError)) throw e;
      }
    }
    return describeDicomFile(c.bytes, name);
  },
  isTyped: isScan,
};

/** Encapsulated frames of the files of fixture folders, with rows x columns and bytes per sample. */
function framesOf(folders: string[]): Seed[] {
  const out: Seed[] = [];
  for (const d of folders) {
    const dir = join(SCANS, 'dicom', d);
    for (const f of readdirSync(dir).sort()) {
      const bytes = read(join(dir, f));
      const ds = dicomParser.parseDicom(bytes); // the codec fixtures are not deflated: dicom-parser alone reads them
      const el = ds.elements['x7fe00010'];
      if (!el?.fragments?.length) continue;
      const frame = dicomParser.readEncapsulatedPixelDataFromFragments(ds, el, 0, el.fragments.length) as Uint8Array;
      const rows = ds.uint16('x00280010')!;
      const cols = ds.uint16('x00280011')!;
      out.push({ name: `${d}/${f}#frame1`, bytes: frame.slice(), pixels: rows * cols, width: cols, height: rows, bytesPerSample: ds.uint16('x00280100')! / 8 });
    }
  }
  return out;
}

function decoderTarget(name: string, what: string, folders: string[], kinds: CodecKind[], decode: (c: Case, path: string) => Promise<unknown>, allocFactor: number, codecHeap = false): Target {
  return {
    name,
    what,
    errorName: 'ScanError',
    allocFactor,
    codecHeap,
    seeds: cached(name, () => framesOf(folders)),
    mutate(rng, seed, seeds) {
      const c: Case = { bytes: seed.bytes, kinds: [], pixels: seed.pixels!, width: seed.width!, height: seed.height!, bytesPerSample: seed.bytesPerSample! };
      if (rng.chance(0.45)) {
        const kind = rng.pick(kinds);
        const b = mutateCodec(rng, seed.bytes, kind);
        if (b) return { ...c, bytes: b, kinds: [kind] };
      }
      const m: { bytes: Uint8Array; kinds: string[] } = mutateGeneric(rng, seed.bytes, rng.pick(seeds).bytes, rng.chance(0.3) ? 2 : 0);
      if (name === 'rle' && rng.chance(0.1)) {
        // The header's image size lying to the decoder (the DICOM target covers where it comes from).
        c.pixels = rng.pick([0, 1, c.pixels! + 1, c.pixels! * 2, 16384 * 16384, 2 ** 31]);
        m.kinds.push('pixels-lie');
      }
      return { ...c, bytes: m.bytes, kinds: m.kinds };
    },
    run: decode,
    isTyped: isScan,
  };
}

const rle = decoderTarget('rle', 'decodeRleFrame (ours)', ['rle'], ['rle-header'], async (c, p) => decodeRleFrame(c.bytes, c.pixels!, c.bytesPerSample!, 1, p), 130);
// The codecs are called as the DICOM reader calls them: with the image size its header gives.
const size = (c: Case) => ({ width: c.width!, height: c.height! });
const jpegLossless = decoderTarget('jpeg-lossless', 'decodeJpegLossless (jpeg-lossless-decoder-js)', ['jpeg_lossless', 'jpeg_lossless_p14'], ['sof', 'sos', 'marker-length'], (c, p) => decodeJpegLossless(c.bytes, p, size(c)), 1100);
const jpegLs = decoderTarget('jpeg-ls', 'decodeJpegLs (CharLS, its JavaScript build)', ['jpegls'], ['sof', 'sos', 'marker-length'], (c, p) => decodeJpegLs(c.bytes, p, size(c)), 1100, true);
const j2k = decoderTarget('j2k', 'decodeJpeg2000 (OpenJPEG, its JavaScript build)', ['j2k'], ['j2k-siz', 'j2k-cod', 'j2k-sot', 'marker-length'], (c, p) => decodeJpeg2000(c.bytes, p, size(c)), 1100, true);

const inflate: Target = {
  name: 'inflate',
  what: "inflateRaw (DecompressionStream('deflate-raw'), bounded as for deflated DICOM data sets)",
  errorName: 'ScanError',
  allocFactor: 1100,
  seeds: cached('inflate', () => {
    const dir = join(SCANS, 'dicom', 'deflate');
    return readdirSync(dir).sort().map((f) => {
      const b = read(join(dir, f));
      return { name: `deflate/${f}#body`, bytes: b.slice(layout(b)!.dataStart) };
    });
  }),
  mutate(rng, seed, seeds) {
    const { bytes, kinds } = mutateGeneric(rng, seed.bytes, rng.pick(seeds).bytes);
    return { bytes, kinds };
  },
  run: (c, name) => inflateRaw(c.bytes, name, MAX_DEFLATED_DATASET_BYTES),
  isTyped: isScan,
};

const gzip: Target = {
  name: 'gzip',
  what: 'inflateBounded (DecompressionStream), whole and prefix (stopAt)',
  errorName: 'ScanError',
  allocFactor: 1100,
  seeds: cached('gzip', () => nifti.seeds().filter((s) => s.name.endsWith('.gz'))),
  mutate(rng, seed, seeds) {
    const { bytes, kinds } = mutateGeneric(rng, seed.bytes, rng.pick(seeds).bytes, rng.chance(0.5) ? 10 : 0);
    return { bytes, kinds };
  },
  async run(c, name) {
    await inflateBounded(c.bytes, name, { format: 'gzip', stopAt: 544 });
    return inflateBounded(c.bytes, name, { format: 'gzip', maxOutput: 64 << 20 });
  },
  isTyped: isScan,
};

/** Every target, by name. */
export const TARGETS: Record<string, Target> = { safetensors, nifti, dicom, rle, 'jpeg-lossless': jpegLossless, 'jpeg-ls': jpegLs, j2k, inflate, gzip };

/** The outcome of one case. */
export interface CaseResult {
  outcome: 'value' | 'typed-error' | 'finding';
  ms: number;
  alloc: Allocations;
  input: number;
  kinds: string[];
  seed: string;
  /** For a finding: what was wrong. */
  problem?: string;
}

/**
 * Runs case `index` of target `t` from `seed`: generates the input, runs the reader with allocations tracked,
 * and classifies the end. A finding: any error other than the typed one, a typed error whose message is not one
 * line starting with a file name, a case over `timeLimitMs`, or allocations beyond the target's bound.
 */
export async function runCase(t: Target, caseSeedValue: number, timeLimitMs: number): Promise<CaseResult> {
  await warm(t);
  const rng = new Rng(caseSeedValue);
  const seeds = t.seeds();
  const seed = rng.pick(seeds);
  const c = t.mutate(rng, seed, seeds);
  const name = `fuzz/${seed.name}`;
  const t0 = performance.now();
  const { error, alloc } = await tracked(() => t.run(c, name));
  const ms = performance.now() - t0;
  const res: CaseResult = { outcome: error === undefined ? 'value' : 'typed-error', ms, alloc, input: c.bytes.length, kinds: c.kinds, seed: seed.name };
  const bound = t.allocFactor * Math.max(c.bytes.length, 1) + (1 << 20) + (t.codecHeap ? CODEC_HEAP_ALLOWANCE : 0);
  const problems: string[] = [];
  if (error !== undefined) {
    if (!t.isTyped(error)) {
      const e = error as Error;
      problems.push(`${e?.constructor?.name ?? typeof error} instead of ${t.errorName}: ${(e?.stack ?? String(error)).split('\n').slice(0, 4).join(' | ')}`);
    } else {
      const msg = (error as Error).message;
      const names = [name, 'fuzzdir', ...(c.companions ?? []).map((f) => f.name)];
      if (msg.includes('\n')) problems.push(`${t.errorName} message is not one line: ${JSON.stringify(msg.slice(0, 200))}`);
      else if (!names.some((n) => msg.startsWith(`${n}: `))) problems.push(`${t.errorName} message does not start with the file name: ${JSON.stringify(msg.slice(0, 200))}`);
    }
  }
  if (ms > timeLimitMs) problems.push(`took ${ms.toFixed(0)} ms (bound ${timeLimitMs} ms)`);
  if (alloc.total > bound) problems.push(`allocated ${alloc.total} bytes (largest ${alloc.largest}) for ${c.bytes.length} input bytes, beyond ${t.allocFactor} x input + 1 MiB`);
  if (problems.length) {
    res.outcome = 'finding';
    res.problem = problems.join('; ');
  }
  return res;
}
