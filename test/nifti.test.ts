/**
 * The NIfTI reader against nibabel (fixtures written by nibabel, and nibabel's own reading of each recorded in
 * expected.json by weights/make_scan_fixtures.py), the bad files, the bounded gzip, and the writer read back by
 * nibabel (Debian's python3-nibabel through /usr/bin/python3).
 *
 * Tolerances: affines to 1e-6 mm (both sides are float64 computations from the same float32 header values);
 * voxel values exact where our volume is Int16Array, 1e-6 relative where it is Float32Array (the float64 result
 * rounded to float32, at most 6e-8 relative); the writer's affines to 1e-4 mm (float32 srow and quaternion).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { build } from 'esbuild';
import { chromium, type BrowserContext } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './chromium.js';
import { mulberry32 } from '../src/ops/random.js';
import { dicomParser, parseDicom } from '../src/io/dicom/parse.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { deflateRawSync, gunzipSync, gzipSync } from 'node:zlib';
import { readNifti, readNiftiHeader, writeNifti, isNiftiBytes, MAX_NIFTI_VOXELS, NIFTI_INTENT_LABEL } from '../src/io/nifti.js';
import { crc32Update, gunzip, gunzipMembers, gzip, gzipPieces, inflateRaw, inflateBounded, isGzip } from '../src/io/gzip.js';
import { ScanError } from '../src/io/errors.js';
import { PADDING_HU } from '../src/volume/volume.js';
import { affineFromRows, affineRows, axcodes, spacingOf } from '../src/volume/affine.js';

const DIR = join(import.meta.dirname, 'fixtures', 'scans', 'nifti');

interface Good {
  shape: number[];
  affine: number[][];
  axcodes: string;
  zooms: number[];
  on_disk_dtype: string;
  byteorder: '<' | '>';
  /** nibabel's get_fdata, x fastest; null for a large file, whose values are given by values_sha256. */
  values: (number | null)[] | null;
  /** SHA-256 of nibabel's values as little-endian float64 (when `values` is null). */
  values_sha256?: string;
  /** Whether those values all fit int16 (when `values` is null). */
  values_int16?: boolean;
}
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  good: Record<string, Good>;
  bad: Record<string, { kind: string; pattern: string }>;
};
const bytesOf = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));

/** Max |a - b| over the 3x4 part of two row-major affines. */
function affineDiff(a: number[][], b: number[][]): number {
  let d = 0;
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) d = Math.max(d, Math.abs(a[r]![c]! - b[r]![c]!));
  return d;
}

/** Checks our voxel values against nibabel's get_fdata (null = NaN/inf there, PADDING_HU here). */
function checkValues(name: string, data: Int16Array | Float32Array, want: (number | null)[]): void {
  expect(data.length, name).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = data[i]!;
    if (w === null) {
      if (g !== PADDING_HU) throw new Error(`${name}: voxel ${i} is ${g}, nibabel has NaN/inf, expected ${PADDING_HU}`);
    } else if (data instanceof Int16Array) {
      if (g !== w) throw new Error(`${name}: voxel ${i} is ${g}, nibabel ${w}`);
    } else {
      worst = Math.max(worst, Math.abs(g - w) / Math.max(Math.abs(w), 1e-30));
    }
  }
  expect(worst, `${name}: worst relative error`).toBeLessThanOrEqual(1e-6);
}

describe('readNifti against nibabel', () => {
  for (const [name, want] of Object.entries(expected.good)) {
    it(name, async () => {
      const vol = await readNifti(bytesOf(name), name);
      const shape3 = [...want.shape.slice(0, 3), 1, 1].slice(0, 3);
      expect(vol.dims).toEqual(shape3);
      expect(vol.space).toBe('RAS');
      expect(affineDiff(affineRows(vol.affine), want.affine), `${name} affine`).toBeLessThanOrEqual(1e-6);
      expect(axcodes(vol.affine)).toBe(want.axcodes);
      const wantSpacing = spacingOf(affineFromRows(want.affine));
      vol.spacing.forEach((s, k) => expect(Math.abs(s - wantSpacing[k]!)).toBeLessThanOrEqual(1e-6));
      // The stated type rule: Int16Array exactly when every value (NaN/inf aside) is an integer in int16 range.
      const fitsInt16 = want.values ? want.values.every((v) => v === null || (Number.isInteger(v) && v >= -32768 && v <= 32767)) : want.values_int16;
      expect(vol.data instanceof Int16Array, `${name}: Int16Array iff the values fit`).toBe(fitsInt16);
      if (want.values) checkValues(name, vol.data, want.values);
      else expect(createHash('sha256').update(new Uint8Array(Float64Array.from(vol.data).buffer)).digest('hex'), `${name}: values`).toBe(want.values_sha256);
      expect(vol.source.format).toBe('nifti');
      expect(vol.source.path).toBe(name);
    });
  }

  it('states what it did in notes: NaN voxels counted, scaling, 4-D, affine source', async () => {
    const nan = await readNifti(bytesOf('nan.nii'), 'nan.nii');
    expect(nan.source.notes.join('\n')).toMatch(/4 voxels NaN or infinite: set to -3024/);
    const nanInt = await readNifti(bytesOf('nan_integers.nii'), 'nan_integers.nii');
    expect(nanInt.data).toBeInstanceOf(Int16Array);
    expect(nanInt.source.notes.join('\n')).toMatch(/1 voxel NaN or infinite/);
    expect((await readNifti(bytesOf('scaled_float.nii'), 's')).source.notes.join('\n')).toMatch(/scl_slope 0.5 and scl_inter -1000.25 applied/);
    expect((await readNifti(bytesOf('four_d_one_volume.nii'), 's')).source.notes.join('\n')).toMatch(/4-D image with one volume/);
    expect((await readNifti(bytesOf('pixdim_only.nii'), 's')).source.notes.join('\n')).toMatch(/affine from pixdim/);
    expect((await readNifti(bytesOf('qform_and_sform_differ.nii'), 's')).source.notes.join('\n')).toMatch(/affine from sform/);
    expect((await readNifti(bytesOf('qform_only_qfac.nii'), 's')).source.notes.join('\n')).toMatch(/affine from qform/);
  });

  it('keeps the description one line whatever descrip holds', async () => {
    const nii = bytesOf('int16.nii').slice();
    nii.set(new TextEncoder().encode('two\nlines'), 148);
    const vol = await readNifti(nii, 'd.nii');
    expect(vol.source.description).toContain("'two\\x0alines'");
    expect(vol.source.description).not.toContain('\n');
  });

  it('the fixtures cover what they claim (so the cases above are the intended ones)', () => {
    const g = expected.good;
    expect(new Set(Object.values(g).map((x) => x.on_disk_dtype))).toEqual(
      new Set(['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64']),
    );
    expect(g['sagittal.nii']!.axcodes).toBe('PIR');
    expect(g['qform_only_qfac.nii']!.axcodes).toBe('RAI');
    expect(g['two_d.nii']!.shape).toEqual([7, 6]);
    expect(g['nan.nii']!.values!.filter((v) => v === null).length).toBe(4);
    // int16_be is big endian, nifti2 is NIfTI-2, the .gz files gzipped.
    expect(new DataView(bytesOf('int16_be.nii').buffer).getInt32(0, false)).toBe(348);
    expect(new DataView(bytesOf('nifti2_be_qform.nii').buffer).getInt32(0, false)).toBe(540);
    expect(new DataView(bytesOf('nifti2.nii').buffer).getInt32(0, true)).toBe(540);
    expect(isGzip(bytesOf('int16.nii.gz'))).toBe(true);
    expect(Object.entries(g).filter(([, x]) => x.byteorder === '>').map(([k]) => k).sort()).toEqual(['float64_be.nii', 'int16_be.nii', 'nifti2_be_qform.nii', 'odd_offset_float32_be.nii', 'uint16_be.nii']);
    // vox_offset not a multiple of the voxel size: the voxels start unaligned in the file (and in its buffer).
    expect(new DataView(bytesOf('odd_offset.nii').buffer).getFloat32(108, true)).toBe(353);
    expect(new DataView(bytesOf('odd_offset_float32_be.nii').buffer).getFloat32(108, false)).toBe(354);
  });
});

describe('readNiftiHeader', () => {
  it('describes a header for inspect', async () => {
    const h = await readNiftiHeader(bytesOf('int16.nii.gz'), 'int16.nii.gz');
    expect(h).toMatchObject({ version: 1, gzipped: true, littleEndian: true, dims: [7, 6, 5], datatype: 4, datatypeName: 'int16', datatypeSupported: true, qformCode: 1, sformCode: 1, affineFrom: 'sform', axcodes: 'LAS', spatialUnit: 'unknown', magic: 'n+1' });
    expect(affineDiff(affineRows(h.affine), expected.good['int16.nii.gz']!.affine)).toBeLessThanOrEqual(1e-6);
    const h2 = await readNiftiHeader(bytesOf('nifti2_be_qform.nii'), 'x');
    expect(h2).toMatchObject({ version: 2, littleEndian: false, datatypeName: 'float32', qformCode: 1, sformCode: 0, affineFrom: 'qform', axcodes: 'RAI' });
  });

  it('isNiftiBytes tells NIfTI files (plain, gzipped, NIfTI-2, big endian) from others', async () => {
    for (const name of ['int16.nii', 'int16.nii.gz', 'nifti2.nii', 'nifti2_be_qform.nii', 'int16_be.nii', 'nifti2_float32.nii.gz', 'five_volumes.nii'])
      expect(await isNiftiBytes(bytesOf(name)), name).toBe(true);
    for (const name of ['not_nifti.nii', 'too_short.nii', 'empty.nii.gz', 'pair_header.hdr', 'truncated.nii.gz'])
      expect(await isNiftiBytes(bytesOf(name)), name).toBe(name === 'truncated.nii.gz');
    expect(await isNiftiBytes(new Uint8Array([0x1f, 0x8b, 1, 2, 3]))).toBe(false);
    const dicom = new Uint8Array(400);
    dicom.set(new TextEncoder().encode('DICM'), 128); // a DICOM preamble and prefix
    expect(await isNiftiBytes(dicom)).toBe(false);
  });

  it('describes headers that readNifti refuses for their content', async () => {
    expect(await readNiftiHeader(bytesOf('five_volumes.nii'), 'f')).toMatchObject({ dims: [7, 6, 5, 5] });
    expect(await readNiftiHeader(bytesOf('int64.nii'), 'f')).toMatchObject({ datatype: 1024, datatypeName: 'int64', datatypeSupported: false });
  });
});

describe('bad NIfTI files', () => {
  for (const [name, want] of Object.entries(expected.bad)) {
    it(name, async () => {
      let err: unknown;
      try {
        await readNifti(bytesOf(name), `some/dir/${name}`);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ScanError);
      const e = err as ScanError;
      expect(e.kind).toBe(want.kind);
      expect(e.path).toBe(`some/dir/${name}`);
      expect(e.message.startsWith(`some/dir/${name}: `)).toBe(true);
      expect(e.message).not.toContain('\n');
      expect(e.problem).toMatch(new RegExp(want.pattern));
    });
  }

  it('refuses a huge header before allocating: a 2^30^3 NIfTI-2 header answers at once', async () => {
    const t0 = performance.now();
    await expect(readNifti(bytesOf('huge_dims_nifti2.nii.gz'), 'h.nii.gz')).rejects.toThrow(/more than the 2147483648/);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(MAX_NIFTI_VOXELS).toBe(2 ** 31);
  });

  it('a small .nii.gz whose header claims 300^3 voxels is refused as truncated (decompressed as it comes, nothing preallocated)', async () => {
    const nii = bytesOf('int16.nii').slice();
    new DataView(nii.buffer).setInt16(42, 300, true);
    new DataView(nii.buffer).setInt16(44, 300, true);
    new DataView(nii.buffer).setInt16(46, 300, true);
    const gz = await gzip(nii);
    await expect(readNifti(gz, 'liar.nii.gz')).rejects.toThrow(/^liar\.nii\.gz: file too short \(truncated\?\): expected 54000352 bytes .* found 772 after decompression$/);
  });

  it('reads from a buffer at any byte offset (unaligned views are copied)', async () => {
    const nii = bytesOf('float64.nii');
    const big = new Uint8Array(nii.length + 3);
    big.set(nii, 3);
    const vol = await readNifti(big.subarray(3), 'odd.nii');
    checkValues('odd offset', vol.data, expected.good['float64.nii']!.values!);
  });

  it('decompresses a .nii.gz only as far as the header needs (trailing data after the voxels is never inflated)', async () => {
    // int16.nii (772 bytes) followed by 8 MiB of junk, gzipped: the reader stops after byte 772.
    const nii = bytesOf('int16.nii');
    const padded = new Uint8Array(nii.length + 8 * 1024 * 1024);
    padded.set(nii);
    padded.fill(7, nii.length);
    const gz = await gzip(padded);
    const vol = await readNifti(gz, 'padded.nii.gz');
    checkValues('padded', vol.data, expected.good['int16.nii']!.values!);
    // And the same data with a gzip stream that breaks inside the junk still reads: nothing past 772 is needed.
    const broken = gz.slice(0, gz.length - 8);
    expect((await readNifti(broken, 'broken-tail.nii.gz')).dims).toEqual([7, 6, 5]);
  });
});

/** A promise of bytes as a promise of their length, so a failing `rejects` prints a number, not megabytes. */
const sizeOf = (p: Promise<Uint8Array>) => p.then((b) => `${b.length} bytes`);

/** Byte equality (vitest's toEqual walks large typed arrays slowly). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

describe('gzip', () => {
  it('round-trips and detects gzip', async () => {
    const data = new Uint8Array(300_000).map((_, i) => (i * 7919) % 251);
    const z = await gzip(data);
    expect(isGzip(z)).toBe(true);
    expect(isGzip(data)).toBe(false);
    expect(sameBytes(await gunzip(z, 'a.gz'), data)).toBe(true);
    expect(sameBytes(new Uint8Array(gunzipSync(z)), data)).toBe(true); // node's zlib reads our gzip
    // A prefix spanning many output chunks, written straight into its buffer.
    expect(sameBytes(await inflateBounded(z, 'a.gz', { format: 'gzip', stopAt: 200_001 }), data.subarray(0, 200_001))).toBe(true);
    expect(sameBytes(await gunzip(new Uint8Array(gzipSync(data, { level: 9 })), 'b.gz'), data)).toBe(true);
  });

  it('bounds the output: a small stream that inflates past maxOutput is refused, naming the file and the bound', async () => {
    const z = await gzip(new Uint8Array(4 * 1024 * 1024));
    expect(z.length).toBeLessThan(10_000);
    await expect(sizeOf(gunzip(z, 'bomb.gz', 1024 * 1024))).rejects.toThrow(/^bomb\.gz: gzip data decompresses to more than 1048576 bytes/);
    expect((await gunzip(z, 'ok.gz', 4 * 1024 * 1024)).length).toBe(4 * 1024 * 1024);
    const head = await inflateBounded(z, 'x', { format: 'gzip', stopAt: 544 });
    expect(head.length).toBe(544);
  });

  it('refuses corrupt and truncated streams with a ScanError', async () => {
    const z = await gzip(new Uint8Array(100_000).map((_, i) => i & 0xff));
    await expect(sizeOf(gunzip(z.slice(0, z.length / 2), 'cut.gz'))).rejects.toThrow(/^cut\.gz: gzip data is corrupt or truncated/);
    const bad = z.slice();
    bad[20] ^= 0xff;
    bad[40] ^= 0xff;
    await expect(sizeOf(gunzip(bad, 'bad.gz'))).rejects.toBeInstanceOf(ScanError);
  });

  it('gzipPieces compresses the pieces as one member, equal to the joined bytes (read by node\'s zlib)', async () => {
    const data = new Uint8Array(200_000).map((_, i) => (i * 31) % 253);
    const cuts = [0, 1, 1, 65_536, 65_537, 150_000, 200_000]; // an empty piece, a 1-byte one, odd sizes
    const pieces = cuts.slice(1).map((c, i) => data.slice(cuts[i]!, c));
    const z = await gzipPieces(pieces);
    expect(sameBytes(new Uint8Array(gunzipSync(z)), data)).toBe(true);
    expect(sameBytes(await gunzip(z, 'p.gz'), data)).toBe(true);
    expect(new Uint8Array(gunzipSync(await gzipPieces([]))).length).toBe(0);
  });

  it('several members (Python gzip concatenated, a header with every optional field, zero padding, bgzip) read as zlib reads them, whole and member by member', async () => {
    const names = ['multi_member.nii.gz', 'zero_padded.nii.gz', 'bgzip.nii.gz', 'int16.nii.gz', 'nifti2_float32.nii.gz'];
    for (const name of names) {
      const z = bytesOf(name);
      const want = new Uint8Array(gunzipSync(z)); // zlib: every member, trailing zeros ignored
      expect(sameBytes(await gunzip(z, name), want), name).toBe(true);
      expect(sameBytes(await gunzipMembers(z, name), want), `${name} member by member`).toBe(true);
      // A prefix across members, and the bound counted over all of them.
      expect(sameBytes(await gunzipMembers(z, name, { stopAt: 600 }), want.subarray(0, 600)), `${name} prefix`).toBe(true);
      await expect(sizeOf(gunzipMembers(z, name, { maxOutput: want.length - 1 }))).rejects.toThrow(new RegExp(`^${name.replace('.', '\\.')}: gzip data decompresses to more than ${want.length - 1} bytes`));
    }
    // The fixtures are what they claim: several members (bgzip's BGZF blocks: 'BC' extra field, empty EOF block).
    const bgz = bytesOf('bgzip.nii.gz');
    expect(bgz[3]! & 4).toBe(4);
    expect(Array.from(bgz.subarray(bgz.length - 28))).toEqual([31, 139, 8, 4, 0, 0, 0, 0, 0, 255, 6, 0, 66, 67, 2, 0, 27, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(bytesOf('multi_member.nii.gz')[3]).toBe(0);
  });

  // Where the platform ignores bytes after a deflate stream (Node), the trailer is found by its CRC-32 and length, so
  // a wrong one reads as no trailer; where it refuses them (Chromium), the trailer is found first and then checked.
  it('member by member: a bad second member, a wrong CRC or length, and data after a member are refused as zlib refuses them', async () => {
    const a = new Uint8Array(gzipSync(new Uint8Array(5000).map((_, i) => i % 7)));
    const b = new Uint8Array(gzipSync(new TextEncoder().encode('second member '.repeat(50))));
    const cat = (...p: Uint8Array[]) => new Uint8Array(Buffer.concat(p));
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['cut.gz', cat(a, b.subarray(0, b.length - 12)), /^cut\.gz: gzip data is corrupt or truncated \(member 2 at byte \d+: deflate data truncated or corrupt/],
      ['crc.gz', cat(a, b.subarray(0, b.length - 8), new Uint8Array(8)), /^crc\.gz: gzip data is corrupt or truncated \(member 2 at byte \d+: (CRC-32 0 in the trailer|no trailer with the CRC-32 and length of the member's data)/],
      ['junk.gz', cat(a, new TextEncoder().encode('abc')), /^junk\.gz: gzip data is corrupt or truncated \(member 2 at byte \d+: not a gzip member/],
      ['method.gz', cat(a, new Uint8Array([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 0, 1, 2])), /compression method 7/],
      ['empty.gz', new Uint8Array(0), /member 1 at byte 0: member header cut short/],
    ];
    for (const [name, z, re] of cases) {
      expect(() => gunzipSync(z), `zlib refuses ${name}`).toThrow();
      await expect(sizeOf(gunzipMembers(z, name)), name).rejects.toThrow(re);
      await expect(sizeOf(gunzip(z, name)), name).rejects.toBeInstanceOf(ScanError);
    }
    const len = a.slice();
    len[len.length - 1] ^= 1;
    await expect(sizeOf(gunzipMembers(len, 'len.gz'))).rejects.toThrow(/^len\.gz: .*member 1 at byte 0: (length \d+ in the trailer, 5000 decompressed|no trailer with the CRC-32 and length of the member's data)\)$/);
  });

  it('inflates raw deflate (DICOM deflated transfer syntax), bounded', async () => {
    const data = new TextEncoder().encode('deflate-raw '.repeat(5000));
    const raw = new Uint8Array(deflateRawSync(data)); // node's zlib, an independent compressor
    expect(sameBytes(await inflateRaw(raw, 'd.dcm'), data)).toBe(true);
    await expect(sizeOf(inflateRaw(raw, 'd.dcm', 1000))).rejects.toThrow(/^d\.dcm: deflate data decompresses to more than 1000 bytes/);
  });
});

/** Reads NIfTI files with nibabel and prints what it sees as JSON. */
const NIBABEL_READ = `
import json, sys
import numpy as np, nibabel as nib
out = {}
for p in sys.argv[1:]:
    img = nib.load(p)
    h = img.header
    arr = np.asanyarray(img.dataobj)
    out[p] = {
        'shape': list(img.shape), 'dtype': str(arr.dtype), 'on_disk': str(h.get_data_dtype()),
        'intent': int(h['intent_code']), 'qform_code': int(h['qform_code']), 'sform_code': int(h['sform_code']),
        'qform': h.get_qform().tolist(), 'sform': h.get_sform().tolist(), 'affine': img.affine.tolist(),
        'units': h.get_xyzt_units()[0], 'descrip': h['descrip'].item().decode(), 'vox_offset': int(img.dataobj.offset),
        'cal': [float(h['cal_min']), float(h['cal_max'])], 'endian': h.endianness,
        'values': arr.reshape(-1, order='F').tolist(),
    }
print(json.dumps(out))
`;

describe('writeNifti, read back by nibabel', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'covidct-nifti-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // An oblique LAS affine (det < 0, qfac -1) and a rotated RAS-like one (det > 0, qfac 1), off-grid origins.
  // Rotations times voxel sizes (so a qform represents them), off-grid origins: an oblique LAS affine (det < 0,
  // qfac -1) for the labels and an oblique RAS-like one (det > 0, qfac 1) for the map.
  const rot = (ax: number, t: number) => {
    const m = [[1, 0, 0], [0, 1, 0], [0, 0, 1]];
    const [i, j] = [[1, 2], [0, 2], [0, 1]][ax]!;
    m[i!]![i!] = Math.cos(t);
    m[i!]![j!] = -Math.sin(t);
    m[j!]![i!] = Math.sin(t);
    m[j!]![j!] = Math.cos(t);
    return m;
  };
  const mul = (a: number[][], b: number[][]) => a.map((r) => b[0]!.map((_, j) => r.reduce((acc, v, k) => acc + v * b[k]![j]!, 0)));
  const make = (r: number[][], sizes: number[], t: number[]) => affineFromRows(r.map((row, i) => [...row.map((v, j) => v * sizes[j]!), t[i]!]));
  const affLabel = make(mul(rot(0, 0.35), mul(rot(2, -0.2), [[-1, 0, 0], [0, 1, 0], [0, 0, 1]])), [0.75, 0.8, 2.5], [101.25, -87.5, -412.0625]);
  const affMap = make(mul(rot(1, 0.3), rot(2, 0.15)), [0.6, 0.65, 1.25], [-80.5, 60.25, 33.0]);
  const dims: [number, number, number] = [9, 7, 4];
  const n = dims[0] * dims[1] * dims[2];
  const labels = new Uint8Array(n).map((_, i) => (i * 37) % 5);
  const probs = new Float32Array(n).map((_, i) => Math.fround(((i * 7919) % 1000) / 999));

  it('writes a label mask and a float map that nibabel reads with our affine in qform and sform, intent, dtype and values', async () => {
    const files = {
      labels: join(dir, 'lung_mask.nii.gz'),
      map: join(dir, 'infection.nii.gz'),
      plain: join(dir, 'plain.nii'),
      scaled: join(dir, 'scaled.nii.gz'),
    };
    const q = new Uint8Array(n).map((_, i) => (i * 53) % 256);
    await writeFile(files.scaled, await writeNifti({ data: q, dims, affine: affMap, scale: { slope: 0.25, inter: -3 } }));
    await expect(writeNifti({ data: q, dims, affine: affMap, scale: { slope: 0, inter: 0 } })).rejects.toThrow(/scl_slope must be finite and not 0/);
    await writeFile(files.labels, await writeNifti({ data: labels, dims, affine: affLabel, intent: 'label', description: 'lung mask, covidct test' }));
    await writeFile(files.map, await writeNifti({ data: probs, dims, affine: affMap, description: 'x'.repeat(100) }));
    const plainBytes = await writeNifti({ data: new Int16Array(n).map((_, i) => i - 100), dims, affine: affMap, gzip: false });
    expect(isGzip(plainBytes)).toBe(false);
    expect(plainBytes.length).toBe(352 + 2 * n);
    await writeFile(files.plain, plainBytes);

    const run = spawnSync('/usr/bin/python3', ['-c', NIBABEL_READ, files.labels, files.map, files.plain, files.scaled], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const got = JSON.parse(run.stdout) as Record<string, Record<string, unknown>>;
    const L = got[files.labels]!;
    const M = got[files.map]!;
    const P = got[files.plain]!;
    for (const [g, aff] of [[L, affLabel], [M, affMap], [P, affMap]] as const) {
      expect(g.shape).toEqual(dims);
      expect(g.qform_code).toBe(1);
      expect(g.sform_code).toBe(1);
      expect(g.units).toBe('mm');
      expect(g.vox_offset).toBe(352);
      expect(g.endian).toBe('<');
      expect(affineDiff(g.qform as number[][], affineRows(aff)), 'qform').toBeLessThanOrEqual(1e-4);
      expect(affineDiff(g.sform as number[][], affineRows(aff)), 'sform').toBeLessThanOrEqual(1e-4);
      expect(affineDiff(g.affine as number[][], affineRows(aff)), 'affine').toBeLessThanOrEqual(1e-4);
    }
    expect(L).toMatchObject({ dtype: 'uint8', on_disk: 'uint8', intent: NIFTI_INTENT_LABEL, descrip: 'lung mask, covidct test', cal: [0, 4] });
    expect(L.values).toEqual(Array.from(labels));
    expect(M).toMatchObject({ dtype: 'float32', on_disk: 'float32', intent: 0, descrip: 'x'.repeat(80) });
    expect(M.values).toEqual(Array.from(probs));
    expect(M.cal).toEqual([Math.min(...probs), Math.max(...probs)]);
    const S = got[files.scaled]!;
    // nibabel applies scl_slope / scl_inter; cal_min / cal_max are in those units.
    expect(S).toMatchObject({ on_disk: 'uint8', cal: [-3, 255 * 0.25 - 3] });
    expect(S.values).toEqual(Array.from(q, (x) => x * 0.25 - 3));
    expect(P).toMatchObject({ dtype: 'int16' });
    expect(P.values).toEqual(Array.from({ length: n }, (_, i) => i - 100));

    // The gzipped file is the uncompressed one, byte for byte, though it is streamed in 64 KiB pieces.
    const big = new Float32Array(60 * 50 * 30).map((_, i) => Math.sin(i));
    const bigDims: [number, number, number] = [60, 50, 30];
    expect(sameBytes(new Uint8Array(gunzipSync(await writeNifti({ data: big, dims: bigDims, affine: affMap }))), await writeNifti({ data: big, dims: bigDims, affine: affMap, gzip: false }))).toBe(true);

    // And our reader agrees with itself.
    const back = await readNifti(new Uint8Array(readFileSync(files.labels)), files.labels);
    expect(affineDiff(affineRows(back.affine), affineRows(affLabel))).toBeLessThanOrEqual(1e-4);
    expect(Array.from(back.data)).toEqual(Array.from(labels));
    expect(axcodes(back.affine)).toBe(axcodes(affLabel));
  });
});

/**
 * The browser's side (Debian's headless Chromium, driven by playwright-core as in test/browser.test.ts): its
 * DecompressionStream('gzip') reads one member and fails on what follows ("Junk found after end of compressed
 * data"), and its 'deflate-raw' fails on any byte after the stream's end. The readers, bundled for the browser,
 * must read multi-member .nii.gz files and a deflated DICOM with its pad byte as Node reads them.
 */
describe('gzip members and deflate padding in Chromium', () => {
  let context: BrowserContext | null = null;
  let userDataDir = '';
  afterAll(async () => {
    await context?.close().catch(() => {});
    if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  });

  it('reads multi-member gzip and a padded deflated DICOM as Node does (the member-by-member path, on a platform that refuses trailing bytes)', { timeout: 180_000 }, async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium package`).toBe(true);
    const root = join(import.meta.dirname, '..');
    const bundle = await build({
      stdin: {
        contents: `export { readNifti } from './src/io/nifti.ts'; export { gunzip, gunzipMembers, crc32Update } from './src/io/gzip.ts'; export { parseDicom } from './src/io/dicom/parse.ts';`,
        resolveDir: root,
        loader: 'ts',
      },
      bundle: true,
      format: 'iife',
      globalName: 'covidctIo',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
    // Two large members (`cat a.gz b.gz`): text-like data, about 1.2 MB out, several 64 KiB pieces in.
    const rng = mulberry32(7);
    const words = ['lung ', 'ground glass ', 'consolidation ', 'HU ', '-600 ', 'slice ', '0.7 mm '];
    const text = (n: number) => new TextEncoder().encode(Array.from({ length: n }, () => words[Math.floor(rng() * words.length)]).join(''));
    const [p1, p2] = [text(80_000), text(90_000)];
    const catGz = new Uint8Array(Buffer.concat([gzipSync(p1), gzipSync(p2)]));
    const catWant = new Uint8Array(gunzipSync(catGz));
    const badCrc = catGz.slice();
    badCrc.fill(0, badCrc.length - 8, badCrc.length - 4);
    const cutSecond = catGz.slice(0, catGz.length - 100);
    const niftis = ['multi_member.nii.gz', 'zero_padded.nii.gz', 'bgzip.nii.gz', 'int16.nii.gz'];
    // A deflated DICOM with an odd-length deflate stream, padded with one 0x00 byte as PS3.5 A.5 asks.
    const dcmDir = join(import.meta.dirname, 'fixtures', 'scans', 'dicom', 'deflate');
    const odd = readdirSync(dcmDir).sort().map((f) => new Uint8Array(readFileSync(join(dcmDir, f)))).find((b) => (b.length - (dicomParser.readPart10Header(b) as unknown as { position: number }).position) % 2 === 1)!;
    const padded = new Uint8Array(odd.length + 1);
    padded.set(odd);

    userDataDir = mkdtempSync(join(tmpdir(), 'covidct-chromium-gzip-'));
    context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto('about:blank');
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
    const t0 = performance.now();
    const got = (await page.evaluate(
      async ({ niftis, catGz, badCrc, cutSecond, padded, multi }) => {
        const io = (window as unknown as { covidctIo: typeof import('../src/io/gzip.js') & typeof import('../src/io/nifti.js') & typeof import('../src/io/dicom/parse.js') }).covidctIo;
        const bytes = (s: string) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
        const fails = async (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.message);
        const sum = (b: Uint8Array) => ({ length: b.length, crc: io.crc32Update(0, b) });
        const drain = async (b: Uint8Array, format: 'gzip' | 'deflate-raw') => {
          const r = new Blob([b as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream(format)).getReader();
          while (!(await r.read()).done);
        };
        const platform = { gzip: await fails(drain(bytes(multi), 'gzip')), raw: await fails(drain(new Uint8Array([3, 0, 0]), 'deflate-raw')) };
        const nifti: Record<string, unknown> = {};
        for (const [name, b] of Object.entries(niftis)) {
          const v = await io.readNifti(bytes(b), name);
          nifti[name] = { dims: v.dims, type: v.data.constructor.name, ...sum(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)) };
        }
        const ds = await io.parseDicom(bytes(padded), 'padded.dcm').then((p) => ({ ts: p.transferSyntax, rows: p.dataSet.uint16('x00280010'), pixels: p.dataSet.elements['x7fe00010']?.length }), (e: Error) => e.message);
        return {
          platform,
          nifti,
          cat: sum(await io.gunzip(bytes(catGz), 'cat.gz')),
          prefix: sum(await io.gunzipMembers(bytes(catGz), 'cat.gz', { stopAt: 500_000 })),
          badCrc: await fails(io.gunzip(bytes(badCrc), 'crc.gz')),
          cutSecond: await fails(io.gunzip(bytes(cutSecond), 'cut.gz')),
          dicom: ds,
        };
      },
      { niftis: Object.fromEntries(niftis.map((n) => [n, b64(bytesOf(n))])), catGz: b64(catGz), badCrc: b64(badCrc), cutSecond: b64(cutSecond), padded: b64(padded), multi: b64(bytesOf('multi_member.nii.gz')) },
    )) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const ms = performance.now() - t0;
    const sum = (b: Uint8Array) => ({ length: b.length, crc: crc32Update(0, b) });
    // What Chromium's own streams do, which is why the member-by-member path exists.
    expect(got.platform.gzip).toMatch(/Junk found after end of compressed data/);
    expect(got.platform.raw).toMatch(/Junk found after end of compressed data/);
    for (const name of niftis) {
      const v = await readNifti(bytesOf(name), name);
      expect(got.nifti[name], name).toEqual({ dims: v.dims, type: v.data.constructor.name, ...sum(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength)) });
    }
    expect(got.cat).toEqual(sum(catWant));
    expect(got.prefix).toEqual(sum(catWant.subarray(0, 500_000)));
    expect(got.badCrc).toMatch(/^crc\.gz: gzip data is corrupt or truncated \(member 2 at byte \d+: CRC-32 0 in the trailer, [0-9a-f]+ computed\)$/);
    expect(got.cutSecond).toMatch(/^cut\.gz: gzip data is corrupt or truncated \(member 2 at byte \d+: /);
    const node = await parseDicom(odd, 'odd.dcm');
    expect(got.dicom).toEqual({ ts: node.transferSyntax, rows: node.dataSet.uint16('x00280010'), pixels: node.dataSet.elements['x7fe00010']!.length });
    console.log(`Chromium: ${niftis.length} .nii.gz, ${catGz.length} B of two members -> ${catWant.length} B, errors and a padded deflated DICOM in ${ms.toFixed(0)} ms`);
  });
});
