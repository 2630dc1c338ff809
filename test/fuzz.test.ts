// Hostile bytes (issue 15): a short seeded fuzz run of every reader and pixel decoder (test/fuzz/), the
// allocation bound on headers that claim huge sizes, the regressions the fuzzer found, and the stated behaviour
// for NaN and infinite values in float scans and weights files. Long runs: `npm run fuzz -- --cases N`
// (test/fuzz/run.ts); docs/reliability.md has the figures.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ScanError } from '../src/io/errors.js';
import { readNifti } from '../src/io/nifti.js';
import { parseSafetensors, SafetensorsError, serializeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { describeDicomFile, readDicomSeries, scanDicomFiles } from '../src/io/dicom/index.js';
import { decodeJpegLossless, decodeJpegLs } from '../src/io/dicom/codecs.js';
import { loadPipeline, openWeights, WeightsError } from '../src/models/load.js';
import { PADDING_HU } from '../src/volume/volume.js';
import { tracked } from './fuzz/alloc.js';
import { element, layout, walk } from './fuzz/dicom-structure.js';
import { caseSeed } from './fuzz/mutate.js';
import { runCase, TARGETS, type CaseResult } from './fuzz/targets.js';
import { FIX, loadFixture, recipeTensors, type WeightsRecipe } from './fixtures.js';

const SCANS = join(FIX, 'scans');
const read = (...p: string[]) => new Uint8Array(readFileSync(join(SCANS, ...p)));

/** Cases per reader in the suite (the DICOM reader, the slowest, runs fewer). */
const CASES: Record<string, number> = { safetensors: 150, nifti: 300, dicom: 100, rle: 300, 'jpeg-lossless': 200, 'jpeg-ls': 300, j2k: 120, inflate: 300, gzip: 200 };
/** Per-case time bound in the suite (a loaded 2-core CI machine; the long runs use 5 s and see well under 1 s). */
const TIME_BOUND_MS = 10_000;
const SEED = 20261130;

describe('fuzz: every case ends in a value or the typed error, in time, within the allocation bound', () => {
  it.each(Object.keys(TARGETS))('%s', async (name) => {
    const t = TARGETS[name]!;
    const results: CaseResult[] = [];
    for (let i = 0; i < CASES[name]!; i++) results.push(await runCase(t, caseSeed(SEED, name, i), TIME_BOUND_MS));
    const findings = results.map((r, i) => (r.outcome === 'finding' ? `case ${i} (${r.seed}; ${r.kinds.join(', ')}): ${r.problem}` : '')).filter(Boolean);
    expect(findings).toEqual([]);
    // The mutations reach both ends: some cases are refused, and (except for codecs that almost never survive
    // a change) some still read.
    expect(results.filter((r) => r.outcome === 'typed-error').length).toBeGreaterThan(CASES[name]! / 10);
    if (name !== 'jpeg-ls' && name !== 'gzip') expect(results.filter((r) => r.outcome === 'value').length).toBeGreaterThan(0);
  });
});

describe('headers that claim huge sizes are refused before any allocation', () => {
  const small = 64 * 1024;

  it('NIfTI-1 32767^3 and NIfTI-2 2^40 voxels, plain and gzipped', async () => {
    const n1 = read('nifti', 'int16.nii').slice();
    const v1 = new DataView(n1.buffer);
    [3, 32767, 32767, 32767].forEach((d, k) => v1.setInt16(40 + 2 * k, d, true));
    const n2 = read('nifti', 'nifti2.nii').slice();
    const v2 = new DataView(n2.buffer);
    const le = v2.getInt32(0, true) === 540;
    [3, 2 ** 20, 2 ** 20, 1].forEach((d, k) => v2.setBigInt64(16 + 8 * k, BigInt(d), le));
    for (const [name, bytes] of [['n1.nii', n1], ['n1.nii.gz', gzipSync(n1)], ['n2.nii', n2], ['n2.nii.gz', gzipSync(n2)]] as const) {
      const { error, alloc } = await tracked(() => readNifti(new Uint8Array(bytes), name));
      expect(error, name).toBeInstanceOf(ScanError);
      expect((error as Error).message, name).toMatch(new RegExp(`^${name.replace(/\./g, '\\.')}: .*(voxels|bytes)`));
      expect(alloc.largest, name).toBeLessThan(small);
    }
  });

  it('safetensors: a shape of 2^60 elements with a lying offset', async () => {
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [2 ** 20, 2 ** 20, 2 ** 20], data_offsets: [0, 4] } });
    const h = new TextEncoder().encode(header);
    const bytes = new Uint8Array(8 + h.length + 4);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(h.length), true);
    bytes.set(h, 8);
    const { error, alloc } = await tracked(async () => parseSafetensors(bytes, 'huge.safetensors'));
    expect(error).toBeInstanceOf(SafetensorsError);
    expect((error as Error).message).toMatch(/^huge\.safetensors: tensor "w": /);
    expect(alloc.largest).toBeLessThan(small);
  });

  /** A fixture file with Rows and Columns set to 16384 (the largest side the reader accepts). */
  function claim16k(folder: string): Uint8Array {
    const b = read('dicom', folder, 'slice000.dcm').slice();
    const lay = layout(b)!;
    const elems = walk(b.subarray(lay.dataStart), 0, lay.explicit, lay.littleEndian);
    for (const tag of [0x00280010, 0x00280011]) {
      const e = elems.find((x) => x.tag === tag)!;
      new DataView(b.buffer).setUint16(lay.dataStart + e.valuePos, 16384, lay.littleEndian);
    }
    return b;
  }

  it.each(['rle', 'jpeg_lossless', 'jpegls', 'j2k'])('DICOM %s: 16384 x 16384 claimed in a few KB (the volume is allocated after the first slice decodes)', async (folder) => {
    const bytes = claim16k(folder);
    const { error, alloc } = await tracked(async () => {
      const scan = await scanDicomFiles([{ path: 'big.dcm', bytes }]);
      return readDicomSeries(scan, scan.series[0]!, new Map([['big.dcm', bytes]]));
    });
    expect(error).toBeInstanceOf(ScanError);
    expect((error as Error).message).toMatch(/^big\.dcm: (RLE frame is corrupt \(\d+ bytes cannot hold 268435456 pixels\)|compressed frame is \d+ x \d+ x 1 components, the header says 16384 x 16384 x 1)$/);
    expect(alloc.largest).toBeLessThan(bytes.length * 1100);
  });

  it('JPEG Lossless: a frame stating more samples than 8 x its bytes is refused before decoding', async () => {
    const b = TARGETS['jpeg-lossless']!.seeds()[0]!.bytes.slice();
    const sof = b.findIndex((x, i) => x === 0xff && b[i + 1] === 0xc3);
    new DataView(b.buffer).setUint16(sof + 5, 16384);
    new DataView(b.buffer).setUint16(sof + 7, 16384);
    const { error, alloc } = await tracked(() => decodeJpegLossless(b, 'jl.dcm', { width: 16384, height: 16384 }));
    expect((error as Error).message).toMatch(/^jl\.dcm: JPEG Lossless frame of \d+ bytes cannot hold the 16384 x 16384 x 1 samples it states$/);
    expect(alloc.largest).toBeLessThan(small);
  });
});

describe('what the fuzzer found (regressions)', () => {
  it('a JPEG-LS frame cut short is refused at once (CharLS spun for 120 s on one cut to 187 of 330 bytes)', async () => {
    const seed = TARGETS['jpeg-ls']!.seeds().find((s) => s.name === 'jpegls/slice001.dcm#frame1')!;
    const t0 = performance.now();
    await expect(decodeJpegLs(seed.bytes.slice(0, 187), 'cut.dcm', { width: seed.width!, height: seed.height! })).rejects.toThrow(/^cut\.dcm: JPEG-LS frame is truncated/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('a safetensors header nested a million deep is refused before JSON.parse (it took over 5 s); 128 levels still parse', () => {
    const file = (json: string) => {
      const h = new TextEncoder().encode(json);
      const b = new Uint8Array(8 + h.length);
      new DataView(b.buffer).setBigUint64(0, BigInt(h.length), true);
      b.set(h, 8);
      return b;
    };
    const t0 = performance.now();
    expect(() => parseSafetensors(file(`{"x":${'['.repeat(1_000_000)}}`), 'deep.safetensors')).toThrow(/^deep\.safetensors: header is not valid JSON \(nested more than 128 deep\)$/);
    expect(performance.now() - t0).toBeLessThan(1000);
    // 128 levels (the object itself is one): past the nesting check, refused only for what the entry is.
    expect(() => parseSafetensors(file(`{"x":${'['.repeat(127)}${']'.repeat(127)}}`), 'deep.safetensors')).toThrow(/entry must be an object/);
    expect(() => parseSafetensors(file(`{"x":${'['.repeat(128)}${']'.repeat(128)}}`), 'deep.safetensors')).toThrow(/nested more than 128 deep/);
    // Brackets inside strings do not count.
    expect(parseSafetensors(file(`{"__metadata__":{"k":"${'[{'.repeat(500)}\\"["}}`), 'str.safetensors').metadata.k).toBe(`${'[{'.repeat(500)}"[`);
  });

  it('DICOM: NumberOfFrames 99999 in a 1 KB file is refused at once (building 99,999 frames took 10 s per read)', async () => {
    const b = read('dicom', 'single', 'slice000.dcm');
    const lay = layout(b)!;
    const after = walk(b.subarray(lay.dataStart), 0, lay.explicit, lay.littleEndian).find((e) => e.tag > 0x00280008)!;
    const el = element(0x00280008, 'IS', new TextEncoder().encode('99999 '), lay.explicit, lay.littleEndian);
    const at = lay.dataStart + after.pos;
    const bytes = new Uint8Array(b.length + el.length);
    bytes.set(b.subarray(0, at), 0);
    bytes.set(el, at);
    bytes.set(b.subarray(at), at + el.length);
    const t0 = performance.now();
    const scan = await scanDicomFiles([{ path: 'frames.dcm', bytes }]);
    expect(scan.skipped).toEqual([{ path: 'frames.dcm', reason: expect.stringMatching(/^NumberOfFrames 99999, but the pixel data holds 1 whole frame\(s\) \(truncated: /) }]);
    await expect(describeDicomFile(bytes, 'frames.dcm')).rejects.toThrow(/^frames\.dcm: NumberOfFrames 99999/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it('a NIfTI magic with a newline gives a one-line error', async () => {
    const b = read('nifti', 'ras.nii').slice();
    b.set([0x05, 0x3a, 0x0a, 0x00], 344);
    await expect(readNifti(b, 'm.nii')).rejects.toThrow(/^m\.nii: not a NIfTI-1 file: magic is '\\x05:\\x0a', expected 'n\+1'/);
  });
});

describe('NaN and infinite values', () => {
  it('NIfTI float32 and float64: NaN and +-Inf voxels become PADDING_HU, counted in a note', async () => {
    for (const [file, size] of [['float32.nii', 4], ['float64.nii', 8]] as const) {
      const b = read('nifti', file).slice();
      const v = new DataView(b.buffer);
      const off = v.getFloat32(108, true);
      const le = v.getInt32(0, true) === 348;
      const clean = await readNifti(read('nifti', file), file);
      const at = [0, 5, 17];
      [NaN, Infinity, -Infinity].forEach((x, i) => (size === 4 ? v.setFloat32(off + 4 * at[i]!, x, le) : v.setFloat64(off + 8 * at[i]!, x, le)));
      const vol = await readNifti(b, file);
      for (const i of at) expect(vol.data[i], `${file} voxel ${i}`).toBe(PADDING_HU);
      expect(Array.from(vol.data).every(Number.isFinite)).toBe(true);
      expect(vol.source.notes.join('\n')).toMatch(/^3 voxels NaN or infinite: set to -3024 \(padding, outside the body\)$/m);
      expect(clean.source.notes.join('\n')).not.toMatch(/NaN or infinite/);
    }
  });

  it('DICOM: float pixel data (7FE0,0008) is not read; the file is skipped as having no pixel data', async () => {
    const b = read('dicom', 'ordered', readdirSync(join(SCANS, 'dicom', 'ordered')).sort()[0]!).slice();
    const lay = layout(b)!;
    const pix = walk(b.subarray(lay.dataStart), 0, lay.explicit, lay.littleEndian).find((e) => e.tag === 0x7fe00010)!;
    // (7FE0,0010) OW -> (7FE0,0008) OF: FloatPixelData.
    b.set(element(0x7fe00008, 'OF', null, lay.explicit, lay.littleEndian, pix.length).subarray(0, 12), lay.dataStart + pix.pos);
    const scan = await scanDicomFiles([{ path: 'float.dcm', bytes: b }]);
    expect(scan.series).toEqual([]);
    expect(scan.skipped).toEqual([{ path: 'float.dcm', reason: expect.stringMatching(/^no pixel data/) }]);
  });

  it('weights: a tensor holding NaN or Inf is refused, naming the tensor and the count', async () => {
    const tiny = await loadFixture('tiny.fixture.safetensors');
    const recipe = tiny.meta<WeightsRecipe>('fixture.weights');
    const ts = recipeTensors(recipe).map((t) => ({ ...t })) as TensorToWrite[];
    const f32 = ts.filter((t) => t.dtype === 'F32' || t.dtype === 'F16');
    const [a, b] = [f32[3]!, f32[10]!];
    const poison = (t: TensorToWrite, values: number[]) => {
      const d = t.data.slice() as Float32Array | Uint16Array;
      values.forEach((x, i) => (d[2 * i] = d instanceof Uint16Array ? (Number.isNaN(x) ? 0x7e00 : x > 0 ? 0x7c00 : 0xfc00) : x));
      t.data = d;
    };
    poison(a, [NaN]);
    poison(b, [Infinity, -Infinity]);
    const file = openWeights(serializeSafetensors(ts, recipe.metadata!), 'nan.safetensors');
    let err: unknown;
    try {
      loadPipeline(file, { batch: 1, height: 64, width: 64 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WeightsError);
    const e = err as WeightsError;
    expect(e.issues).toEqual([
      { kind: 'nonfinite', tensor: a.name, message: `${a.name}: 1 NaN or infinite value (first at element 0)` },
      { kind: 'nonfinite', tensor: b.name, message: `${b.name}: 2 NaN or infinite values (first at element 0)` },
    ]);
    expect(e.message).toMatch(/^nan\.safetensors: cannot load weights \(2 with NaN or infinite values\):/);
  });
});
