// The DICOM reader against independent tools, on the fixtures of weights/make_dicom_fixtures.py (pydicom-written
// series, transcoded by dcmtk and gdcm): every valid case's Volume equals, voxel for voxel in HU,
//  - what pydicom decodes from each file (compressed files first decoded by dcmtk/gdcm), matched slice by
//    slice through the slice positions, and
//  - dcm2niix's conversion (run now, read by nibabel), compared in patient space: each of our voxels is mapped
//    through our affine and the inverse of dcm2niix's to its voxel there, which must be a whole index within
//    1e-3 voxel, with the two affines agreeing there to 1e-3 mm (dcm2niix may flip rows or slices).
// Tolerances: exact equality for Int16 volumes; Float32 volumes equal pydicom's double value rounded to float32
// exactly, and dcm2niix's float32 within 1e-5 relative (its own float arithmetic). Padding voxels are checked
// separately (PADDING_HU here, the unpadded rescaled value in dcm2niix, which ignores PixelPaddingValue).
// Each bad case must give a ScanError of the right kind whose message names the file or folder and the problem.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { mat4d } from 'wgpu-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { ScanError } from '../src/io/errors.js';
import { chooseSeries, describeDicomFile, readDicomSeries, scanDicomFiles, type DicomScan } from '../src/io/dicom/index.js';
import { dicomParser } from '../src/io/dicom/parse.js';
import { decodeRleFrame } from '../src/io/dicom/rle.js';
import { storedValues } from '../src/io/dicom/pixels.js';
import { PADDING_HU, type Volume } from '../src/volume/volume.js';

const ROOT = join(__dirname, 'fixtures', 'scans', 'dicom');

interface RefFile { name: string; error?: string; positions?: number[][]; hu?: number[][]; raw?: number[][] }
interface RefNifti { name: string; shape: [number, number, number]; affine: number[][]; data: number[] }
interface RefCase { files: RefFile[]; nifti: RefNifti[]; dcm2niixInput: string; dcm2niixLog: string; decompressedWith: string[] }

let ref: Record<string, RefCase>;

const VALID = ['ordered', 'multi', 'localizer_axial', 'rescale', 'padding_signed', 'padding_unsigned', 'unsigned', 'unsigned_wide', 'bits12_signed', 'bits12_signed_extended', 'bits12_unsigned',
  'big_endian', 'deflate', 'rle', 'jpeg_lossless', 'jpeg_lossless_p14', 'jpegls', 'j2k', 'sagittal', 'enhanced', 'enhanced_shared', 'duplicates', 'single'];

beforeAll(() => {
  const out = execFileSync('/usr/bin/python3', ['weights/make_dicom_fixtures.py', '--dump', ...VALID], {
    encoding: 'utf8', maxBuffer: 256 << 20, cwd: join(__dirname, '..'),
  });
  ref = JSON.parse(out) as Record<string, RefCase>;
}, 120_000);

function scanFolder(dir: string): Promise<DicomScan> {
  const names = readdirSync(dir).sort();
  // A generator: each file's bytes are read when the scan reaches it and dropped after its header.
  function* files(): Generator<{ path: string; bytes: Uint8Array }> {
    for (const n of names) yield { path: n, bytes: new Uint8Array(readFileSync(join(dir, n))) };
  }
  return scanDicomFiles(files(), dir.slice(ROOT.length + 1));
}

async function readCase(name: string, uid?: string): Promise<{ scan: DicomScan; volume: Volume }> {
  const dir = join(ROOT, name);
  const scan = await scanFolder(dir);
  const series = chooseSeries(scan, uid);
  const volume = await readDicomSeries(scan, series, async (p) => new Uint8Array(await readFile(join(dir, p))));
  return { scan, volume };
}

function apply(a: Float64Array, i: number, j: number, k: number): [number, number, number] {
  return [a[0]! * i + a[4]! * j + a[8]! * k + a[12]!, a[1]! * i + a[5]! * j + a[9]! * k + a[13]!, a[2]! * i + a[6]! * j + a[10]! * k + a[14]!];
}

/** Padding, as the fixture script wrote it, from the stored values pydicom read. */
const PADDING: Partial<Record<string, (raw: number) => boolean>> = {
  padding_signed: (raw) => raw === -2000,
  padding_unsigned: (raw) => raw >= 0 && raw <= 30,
};

/**
 * pydicom (2.3) hands on the whole 16-bit word; the standard's stored value is the low BitsStored bits, two's
 * complement when PixelRepresentation is 1 (PS3.5 8.1.1, PS3.3 C.7.6.3.1.4). These cases have slope 1.
 */
const signed12 = (r: number): number => ((r & 0xfff) >= 2048 ? (r & 0xfff) - 4096 : r & 0xfff);
const STORED: Partial<Record<string, (raw: number) => number>> = {
  bits12_signed: signed12,
  bits12_signed_extended: signed12,
  bits12_unsigned: (r) => r & 0xfff,
};

/** Every voxel against pydicom: slice k is the file/frame whose position is our voxel (0, 0, k). */
function compareWithPydicom(name: string, v: Volume): number {
  const [nx, ny, nz] = v.dims;
  const frames: { pos: number[]; hu: number[]; raw: number[] | undefined }[] = [];
  for (const f of ref[name]!.files) {
    if (f.error || !f.positions) continue;
    f.positions.forEach((pos, i) => frames.push({ pos, hu: f.hu![i]!, raw: f.raw?.[i] }));
  }
  const pad = PADDING[name];
  let checked = 0;
  for (let k = 0; k < nz; k++) {
    const ras = apply(v.affine, 0, 0, k);
    const lps = [-ras[0], -ras[1], ras[2]];
    const matches = frames.filter((f) => Math.hypot(f.pos[0]! - lps[0]!, f.pos[1]! - lps[1]!, f.pos[2]! - lps[2]!) < 1e-3);
    expect(matches.length, `${name}: slice ${k} at LPS ${lps.join(', ')} matches ${matches.length} pydicom frames`).toBeGreaterThan(0);
    for (const m of matches) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const ours = v.data[i + nx * (j + ny * k)]!;
          const raw = m.raw?.[j * nx + i];
          const fix = STORED[name];
          const hu = fix && raw !== undefined ? fix(raw) + (m.hu[j * nx + i]! - raw) : m.hu[j * nx + i]!;
          const want = pad && raw !== undefined && pad(raw) ? PADDING_HU : Math.fround(hu);
          if (ours !== want) expect.fail(`${name}: voxel (${i}, ${j}, ${k}) is ${ours}, pydicom ${want}`);
          checked++;
        }
      }
    }
  }
  return checked;
}

/** Every voxel against dcm2niix's NIfTI of the same slice count, through both affines. */
function compareWithDcm2niix(name: string, v: Volume, rawAt?: (i: number, j: number, k: number) => number | undefined): number {
  const [nx, ny, nz] = v.dims;
  const candidates = ref[name]!.nifti.filter((n) => n.shape[0] * n.shape[1] * n.shape[2] === nx * ny * nz && !/_Eq_|_Tilt_/.test(n.name));
  expect(candidates.length, `${name}: dcm2niix made ${ref[name]!.nifti.map((n) => n.name).join(', ')}\n${ref[name]!.dcm2niixLog}`).toBeGreaterThan(0);
  let best = '';
  for (const nii of candidates) {
    const theirs = mat4d.create(...nii.affine.flatMap((_, c) => nii.affine.map((row) => row[c]!))) as Float64Array;
    const inv = mat4d.inverse(theirs) as Float64Array;
    const [sx, sy, sz] = nii.shape;
    let ok = true;
    let checked = 0;
    for (let k = 0; k < nz && ok; k++) {
      for (let j = 0; j < ny && ok; j++) {
        for (let i = 0; i < nx; i++) {
          const p = apply(v.affine, i, j, k);
          const q = apply(inv, p[0], p[1], p[2]);
          const r = q.map(Math.round) as [number, number, number];
          if (r.some((x, a) => Math.abs(x - q[a]!) > 1e-3) || r[0] < 0 || r[1] < 0 || r[2] < 0 || r[0] >= sx || r[1] >= sy || r[2] >= sz) {
            ok = false;
            best = `${nii.name}: our voxel (${i}, ${j}, ${k}) maps to (${q.join(', ')})`;
            break;
          }
          const back = apply(theirs, r[0], r[1], r[2]);
          expect(Math.hypot(back[0] - p[0], back[1] - p[1], back[2] - p[2]), `${name}: affines differ at voxel (${i}, ${j}, ${k})`).toBeLessThan(1e-3);
          const want = nii.data[r[0] + sx * (r[1] + sy * r[2])]!;
          const ours = v.data[i + nx * (j + ny * k)]!;
          if (ours === PADDING_HU && PADDING[name]) {
            // dcm2niix keeps padding voxels as their rescaled stored value: check that it is one of the padding values.
            const raw = rawAt?.(i, j, k);
            expect(raw !== undefined && PADDING[name]!(raw), `${name}: voxel (${i}, ${j}, ${k}) is padding in ours, not in the stored values`).toBe(true);
            checked++;
            continue;
          }
          const tol = v.data instanceof Float32Array ? 1e-5 * Math.max(1, Math.abs(want)) : 0;
          if (!(Math.abs(ours - want) <= tol)) expect.fail(`${name}: voxel (${i}, ${j}, ${k}) is ${ours}, dcm2niix ${want} (${nii.name})`);
          checked++;
        }
      }
    }
    if (ok) return checked;
  }
  return expect.fail(`${name}: no dcm2niix output matches our geometry (${best})`);
}

/** The stored value pydicom read at our voxel (for padding checks). */
function rawLookup(name: string, v: Volume): (i: number, j: number, k: number) => number | undefined {
  return (i, j, k) => {
    const ras = apply(v.affine, 0, 0, k);
    const lps = [-ras[0], -ras[1], ras[2]];
    for (const f of ref[name]!.files) {
      const idx = f.positions?.findIndex((pos) => Math.hypot(pos[0]! - lps[0]!, pos[1]! - lps[1]!, pos[2]! - lps[2]!) < 1e-3) ?? -1;
      if (idx >= 0) return f.raw?.[idx]?.[j * v.dims[0] + i];
    }
    return undefined;
  };
}

describe('DICOM series equal pydicom and dcm2niix', () => {
  const expected: Record<string, { dims: [number, number, number]; type: 'int16' | 'float32'; dcm2niix?: boolean }> = {
    ordered: { dims: [16, 12, 7], type: 'int16' },
    multi: { dims: [16, 12, 8], type: 'int16' },
    // dcm2niix stacks the localizer into the series (7 slices, with a resampled _Eq_ copy): pydicom only.
    localizer_axial: { dims: [16, 12, 6], type: 'int16', dcm2niix: false },
    rescale: { dims: [16, 12, 6], type: 'float32' },
    padding_signed: { dims: [16, 12, 5], type: 'int16' },
    padding_unsigned: { dims: [16, 12, 5], type: 'int16' },
    unsigned: { dims: [16, 12, 6], type: 'int16' },
    unsigned_wide: { dims: [16, 12, 5], type: 'float32' },
    // dcm2niix does not sign-extend 12-bit signed values whose high bits are zero (it reads 0x0DCE as 3534
    // where the 12-bit two's complement value is -562): pydicom only, with the standard's rule applied.
    // dcm2niix (v1.0.20220720) masks signed values to BitsStored without sign extension, whatever the high
    // bits hold: 0x0DCE and 0xFDCE both read as 3534 where the 12-bit two's complement value is -562.
    // pydicom only, with the standard's rule applied to its words.
    bits12_signed: { dims: [16, 12, 5], type: 'int16', dcm2niix: false },
    bits12_signed_extended: { dims: [16, 12, 5], type: 'int16', dcm2niix: false },
    bits12_unsigned: { dims: [16, 12, 5], type: 'int16' },
    big_endian: { dims: [16, 12, 5], type: 'int16' },
    deflate: { dims: [16, 12, 5], type: 'int16' },
    rle: { dims: [16, 12, 5], type: 'int16' },
    jpeg_lossless: { dims: [16, 12, 5], type: 'int16' },
    jpeg_lossless_p14: { dims: [16, 12, 5], type: 'int16' },
    jpegls: { dims: [16, 12, 5], type: 'int16' },
    j2k: { dims: [16, 12, 5], type: 'int16' },
    sagittal: { dims: [16, 12, 6], type: 'int16' },
    // dcm2niix applies one rescale intercept to all frames of an enhanced object (silently): pydicom only for
    // per-frame rescale; enhanced_shared (one shared rescale) is compared with both.
    enhanced: { dims: [16, 12, 6], type: 'int16', dcm2niix: false },
    enhanced_shared: { dims: [16, 12, 6], type: 'int16' },
    // dcm2niix keeps both copies of the duplicated slice (7 slices, "Interslice distance varies"): pydicom only.
    duplicates: { dims: [16, 12, 6], type: 'int16', dcm2niix: false },
    single: { dims: [16, 12, 1], type: 'int16' },
  };
  for (const [name, want] of Object.entries(expected)) {
    it(name, async () => {
      const { volume } = await readCase(name);
      expect(volume.dims).toEqual(want.dims);
      expect(volume.data instanceof Int16Array ? 'int16' : 'float32').toBe(want.type);
      expect(volume.space).toBe('RAS');
      expect(volume.data.length).toBe(want.dims[0] * want.dims[1] * want.dims[2]);
      const a = compareWithPydicom(name, volume);
      expect(a).toBeGreaterThanOrEqual(volume.data.length);
      if (want.dcm2niix !== false) expect(compareWithDcm2niix(name, volume, rawLookup(name, volume))).toBe(volume.data.length);
    });
  }

  it('spacing from positions, not SliceThickness (5 mm in every fixture)', async () => {
    const { volume } = await readCase('ordered');
    expect(volume.spacing[0]).toBeCloseTo(0.8, 9);
    expect(volume.spacing[1]).toBeCloseTo(0.7, 9);
    expect(volume.spacing[2]).toBeCloseTo(1.25, 9);
    const s = await readCase('sagittal');
    expect(s.volume.spacing[2]).toBeCloseTo(3, 9);
  });

  it('padding: the padded voxels are PADDING_HU, and there are as many as stored', async () => {
    for (const name of ['padding_signed', 'padding_unsigned']) {
      const { volume } = await readCase(name);
      const pads = Array.from(volume.data).filter((x) => x === PADDING_HU).length;
      const stored = ref[name]!.files.flatMap((f) => f.raw ?? []).flat().filter((r) => PADDING[name]!(r)).length;
      expect(stored).toBeGreaterThan(0);
      expect(pads, name).toBe(stored);
    }
  });
});

describe('series, skipped files and notes', () => {
  it('multi: the thin series is chosen; localizer split off, SR and non-DICOM skipped with reasons', async () => {
    const { scan, volume } = await readCase('multi');
    expect(volume.source.description).toContain('"thin"');
    const keys = scan.series.map((s) => [s.key, s.slices, s.isLocalizer, s.splitReason ?? '']);
    expect(keys).toHaveLength(3);
    const scout = scan.series.find((s) => s.isLocalizer)!;
    expect(scout.key).toMatch(/:2$/);
    expect(scout.splitReason).toMatch(/orientation .* differs/);
    expect(scout.splitReason).toMatch(/size 16 x 10 differs from 16 x 12/);
    expect(scan.notes.join('\n')).toMatch(/split in 2 parts/);
    const skipped = Object.fromEntries(scan.skipped.map((s) => [s.path, s.reason]));
    expect(skipped['README.txt']).toMatch(/not a DICOM file/);
    expect(skipped['dose_sr.dcm']).toMatch(/structured report, not an image/);
    // Asking for the thick series by UID gives its 5 axial slices, not the localizer.
    const thick = scan.series.find((s) => s.slices === 5)!;
    const t = await readCase('multi', thick.uid);
    expect(t.volume.dims).toEqual([16, 12, 5]);
    expect(t.volume.source.notes.join('\n')).toMatch(/main part of 2/);
  });

  it('duplicates: the identical copy is dropped with a note', async () => {
    const { volume } = await readCase('duplicates');
    expect(volume.source.notes.join('\n')).toMatch(/duplicate slice\(s\) dropped: slice002(_copy)?\.dcm \(same position and voxels as slice002(_copy)?\.dcm\)/);
  });

  it('ordered: InstanceNumber and file names disagree with the positions, the positions win', async () => {
    const { volume } = await readCase('ordered');
    const z = [0, 1, 2].map((k) => apply(volume.affine, 0, 0, k)[2]);
    expect(z[1]! - z[0]!).toBeCloseTo(1.25, 6);
    expect(z[2]! - z[1]!).toBeCloseTo(1.25, 6);
  });

  it('describeDicomFile: any modality, pixels decoded, transfer syntax named', async () => {
    const j2k = await describeDicomFile(new Uint8Array(readFileSync(join(ROOT, 'j2k', 'slice000.dcm'))), 'slice000.dcm');
    expect(j2k.transferSyntaxName).toBe('1.2.840.10008.1.2.4.90 (JPEG 2000 (Lossless Only))');
    const want = ref['j2k']!.files[0]!.hu![0]!;
    expect(j2k.valueRange).toEqual([Math.min(...want), Math.max(...want)]);
    const mr = await describeDicomFile(new Uint8Array(readFileSync(join(ROOT, 'mr_only', 'slice000.dcm'))), 'mr.dcm');
    expect(mr.modality).toBe('MR');
    expect(mr.valueRange).toBeDefined();
    const np = await describeDicomFile(new Uint8Array(readFileSync(join(ROOT, 'no_pixels', 'nopix.dcm'))), 'nopix.dcm');
    expect(np.notes).toContain('no pixel data');
    const enh = await describeDicomFile(new Uint8Array(readFileSync(join(ROOT, 'enhanced', 'enhanced.dcm'))), 'enhanced.dcm');
    expect(enh.frames).toBe(6);
    // Without the Part 10 preamble and meta information (old archives): read as implicit VR little endian.
    const full = new Uint8Array(readFileSync(join(ROOT, 'padding_unsigned', 'slice000.dcm')));
    const metaLength = new DataView(full.buffer, full.byteOffset).getUint32(140, true);
    const raw = full.slice(144 + metaLength);
    const a = await describeDicomFile(full, 'a.dcm');
    const b = await describeDicomFile(raw, 'b.dcm');
    expect(b.transferSyntax).toBe('1.2.840.10008.1.2');
    expect([b.rows, b.columns, b.valueRange, b.paddingVoxels, b.position]).toEqual([a.rows, a.columns, a.valueRange, a.paddingVoxels, a.position]);
    expect(a.paddingVoxels).toBeGreaterThan(0);
    const bad = new Uint8Array(readFileSync(join(ROOT, 'unsupported_ts', 'slice000.dcm')));
    await expect(describeDicomFile(bad, 'jpeg.dcm')).rejects.toThrow(/^jpeg\.dcm: unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline \(Process 1\)\)$/);
  });
});

describe('bad input: one ScanError naming the file and the problem', () => {
  async function failure(name: string): Promise<ScanError> {
    try {
      await readCase(name);
    } catch (e) {
      expect(e).toBeInstanceOf(ScanError);
      expect((e as ScanError).message).not.toContain('\n');
      return e as ScanError;
    }
    return expect.fail(`${name}: no error`);
  }
  const cases: [string, ScanError['kind'], RegExp][] = [
    ['missing_slice', 'unusable', /^missing_slice: missing slice\(s\) in series .*: a gap of 2\.5 mm between 103\.75 mm \(slice003\.dcm\) and 106\.25 mm \(slice005\.dcm\).*median spacing is 1\.25 mm/],
    ['duplicates_conflict', 'unusable', /^duplicates_conflict: two different slices at one position in series .*: slice003\.dcm and slice003_other\.dcm/],
    ['tilt', 'unusable', /^tilt: gantry tilt in series .*: the slice positions run 15 degrees off the slice normal \(GantryDetectorTilt 15\)/],
    ['mismatched_sizes', 'unusable', /^mismatched_sizes: mixed slice sizes in series .*: 16 x 12 in 3 slice\(s\) \(s0\.dcm, s1\.dcm, s2\.dcm\); 20 x 12 in 3 slice\(s\) \(s3\.dcm/],
    ['truncated', 'malformed', /^slice003\.dcm: truncated: pixel data needs 384 bytes, the file holds 192/],
    ['no_pixels', 'empty', /^no_pixels: no DICOM image found among 1 file\(s\): nopix\.dcm: no pixel data/],
    ['unsupported_ts', 'unsupported', /^slice000\.dcm: unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline \(Process 1\)\)/],
    ['mr_only', 'unusable', /^mr_only: no CT series found; found .* \(MR, 5 slice\(s\) 16 x 12\)/],
  ];
  for (const [name, kind, re] of cases) {
    it(name, async () => {
      const e = await failure(name);
      expect(e.message).toMatch(re);
      expect(e.kind).toBe(kind);
    });
  }

  it('an empty folder', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'covidct-empty-'));
    try {
      const scan = await scanDicomFiles([], 'empty');
      expect(() => chooseSeries(scan)).toThrow(/^empty: no files found \(empty folder\)$/);
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('a 2-D image reads as nz = 1 (the analysis decides)', async () => {
    const { volume } = await readCase('single');
    expect(volume.dims[2]).toBe(1);
    expect(volume.source.notes.join('\n')).toMatch(/single slice/);
  });

  it('an unknown series UID lists what was found', async () => {
    const scan = await scanFolder(join(ROOT, 'multi'));
    expect(() => chooseSeries(scan, '1.2.3')).toThrow(/^multi: no series 1\.2\.3; found .*thin|^multi: no series 1\.2\.3; found /);
  });

  it('a file cut inside its header, and random bytes, are skipped with a reason', async () => {
    const good = new Uint8Array(readFileSync(join(ROOT, 'ordered', readdirSync(join(ROOT, 'ordered'))[0]!)));
    const scan = await scanDicomFiles([
      { path: 'cut.dcm', bytes: good.subarray(0, 300) },
      { path: 'noise.bin', bytes: new Uint8Array(1000).map((_, i) => (i * 7919) & 255) },
    ]);
    expect(scan.series).toHaveLength(0);
    expect(scan.skipped.map((s) => s.path)).toEqual(['cut.dcm', 'noise.bin']);
    expect(scan.skipped[0]!.reason).toMatch(/truncated|not a readable DICOM/);
    expect(scan.skipped[1]!.reason).toMatch(/not a DICOM file/);
  });
});

describe('damaged files: ScanError or a volume, never another exception or a hang', () => {
  const VARIANTS = Number(process.env.DICOM_FUZZ_VARIANTS ?? 24);
  it('seeded truncations and byte changes of one file of every transfer syntax', async () => {
    let seed = 20261130;
    const rand = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const sources = ['ordered', 'big_endian', 'deflate', 'rle', 'jpeg_lossless', 'jpegls', 'j2k', 'enhanced', 'padding_unsigned']
      .map((c) => join(c, readdirSync(join(ROOT, c)).sort()[0]!));
    let errors = 0;
    let read = 0;
    for (const src of sources) {
      const good = new Uint8Array(readFileSync(join(ROOT, src)));
      for (let t = 0; t < VARIANTS; t++) {
        const bytes = t < VARIANTS / 3 ? good.slice(0, rand(good.length)) : good.slice();
        if (t >= VARIANTS / 3) for (let m = 0; m < 1 + rand(12); m++) bytes[132 + rand(bytes.length - 132)] = rand(256);
        const what = `${src} variant ${t}`;
        try {
          const scan = await scanDicomFiles([{ path: 'f.dcm', bytes }]);
          if (scan.series.length) await readDicomSeries(scan, scan.series[0]!, new Map([['f.dcm', bytes]]));
          await describeDicomFile(bytes, 'f.dcm');
          read++;
        } catch (e) {
          if (!(e instanceof ScanError)) expect.fail(`${what}: ${e instanceof Error ? e.stack : String(e)}`);
          expect(e.message, what).toMatch(/^f\.dcm: [^\n]+$/);
          errors++;
        }
      }
    }
    expect(errors).toBeGreaterThan(50);
    expect(read).toBeGreaterThan(10);
  });
});

describe('own decoders', () => {
  it('deflated data sets (DecompressionStream): truncated or garbage deflate is a ScanError naming the file; a pad byte is read', async () => {
    const dir = join(ROOT, 'deflate');
    const name = readdirSync(dir).sort()[0]!;
    const good = new Uint8Array(readFileSync(join(dir, name)));
    const pos = (dicomParser.readPart10Header(good) as unknown as { position: number }).position;
    const body = good.subarray(pos);
    const expected = await describeDicomFile(good, 'good.dcm');
    const cut = good.slice(0, pos + Math.floor(body.length / 2));
    await expect(describeDicomFile(cut, 'cut.dcm')).rejects.toThrow(/^cut\.dcm: deflate data is corrupt or truncated \(.*\) after \d+ decompressed bytes$/);
    const cutScan = await scanDicomFiles([{ path: 'cut.dcm', bytes: cut }]);
    expect(cutScan.skipped).toEqual([{ path: 'cut.dcm', reason: expect.stringMatching(/^deflate data is corrupt or truncated/) }]);
    const garbage = good.slice();
    garbage.fill(0xff, pos);
    await expect(describeDicomFile(garbage, 'bad.dcm')).rejects.toThrow(/^bad\.dcm: deflate data is corrupt or truncated/);
    await expect(describeDicomFile(garbage, 'bad.dcm')).rejects.toBeInstanceOf(ScanError);
    // PS3.5 A.5: an odd-length deflate stream is padded with one 0x00 byte (dcmconv wrote these without it).
    const padded = new Uint8Array(good.length + 1);
    padded.set(good);
    expect(await describeDicomFile(padded, 'good.dcm')).toEqual(expected);
    expect(expected.valueRange).toBeDefined();
    // Anything but a corrupt stream ending in 0x00 is not retried: the first error is the one reported.
    const cutPadded = new Uint8Array(cut.length + 1);
    cutPadded.set(cut);
    await expect(describeDicomFile(cutPadded, 'cut.dcm')).rejects.toThrow(/^cut\.dcm: deflate data is corrupt or truncated/);
  });

  it('RLE: PackBits runs, byte planes high first; corrupt frames refused', () => {
    // 4 pixels of 16 bits: 0x0102, 0x0102, 0x0304, 0xff00. High plane: 01 01 03 ff, low: 02 02 04 00.
    const header = new Uint8Array(64);
    const dv = new DataView(header.buffer);
    dv.setUint32(0, 2, true);
    const high = [0xff, 0x01, 0x01, 0x03, 0xff];            // repeat 01 twice, then literal 03 ff
    const low = [0xff, 0x02, 0x01, 0x04, 0x00];
    dv.setUint32(4, 64, true);
    dv.setUint32(8, 64 + high.length, true);
    const frame = new Uint8Array([...header, ...high, ...low]);
    const bytes = decodeRleFrame(frame, 4, 2, 1, 'r.dcm');
    expect(Array.from(storedValues(bytes, 4, 2, true, { path: 'r.dcm', bitsStored: 16, highBit: 15, pixelRepresentation: 0 }))).toEqual([0x0102, 0x0102, 0x0304, 0xff00]);
    expect(Array.from(storedValues(bytes, 4, 2, true, { path: 'r.dcm', bitsStored: 16, highBit: 15, pixelRepresentation: 1 }))).toEqual([0x0102, 0x0102, 0x0304, -256]);
    expect(() => decodeRleFrame(frame, 5, 2, 1, 'r.dcm')).toThrow(/^r\.dcm: RLE frame is corrupt \(segment 1 holds 4 of 5 bytes\)$/);
    expect(() => decodeRleFrame(frame, 4, 1, 1, 'r.dcm')).toThrow(/2 segments where 1 are expected/);
  });

  it('stored values: HighBit shift, BitsStored mask and sign extension', () => {
    const b = new Uint8Array(new Uint16Array([0xf7ff, 0x0800, 0x07ff, 0xffff]).buffer);
    const h12s = { path: 'x', bitsStored: 12, highBit: 11, pixelRepresentation: 1 };
    expect(Array.from(storedValues(b, 4, 2, true, h12s))).toEqual([2047, -2048, 2047, -1]);
    expect(Array.from(storedValues(b, 4, 2, true, { ...h12s, pixelRepresentation: 0 }))).toEqual([2047, 2048, 2047, 4095]);
    expect(Array.from(storedValues(b, 4, 2, true, { ...h12s, highBit: 15 }))).toEqual([-129, 128, 127, -1]);
  });
});
