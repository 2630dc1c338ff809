// The CLI end to end: analyze on small DICOM and NIfTI scans on the test adapter (in-process, one shared
// pipeline cache, tiny random weights at 32 x 32), outputs checked (report against its schema, NIfTI geometry
// read back by nibabel equal to the input's, PNGs decoded by fast-png); bad input through the real binary
// (node dist/cli.js) with its output and exit code and no output folder; the output folder's temp + rename;
// batch (two good studies and one bad, summary, resume, shards).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { decode as decodePng } from 'fast-png';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/cli.js';
import { fnv1a, listStudies } from '../src/cli/batch.js';
import { progressLine, type CliIO } from '../src/cli/common.js';
import { serializeSafetensors } from '../src/io/safetensors.js';
import { readNifti } from '../src/io/nifti.js';
import { GpuUnavailableError } from '../src/gpu/device.js';
import { defaultPreprocessConfig, tinyModelConfig } from '../src/models/config.js';
import { randomPipelineWeights } from '../src/models/random-weights.js';
import { writeOutputDir } from '../src/node/output-dir.js';
import { kindOf, loadScan } from '../src/node/scan-path.js';
import { ROOT } from './fixtures.js';
import { fakeEngine } from './analysis-fake.js';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { testGpu } from './gpu.js';

const SCANS = join(ROOT, 'test/fixtures/scans');
const schema = JSON.parse(readFileSync(join(ROOT, 'src/analysis/report.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false }).compile(schema);
const GPU_MS = 300_000;

let tmp: string;
let weightsPath: string;

/** An in-process terminal that records, with the shared test GPU (never destroyed by the CLI). */
function recorder(): CliIO & { out: string; err: string } {
  const io = {
    out: '',
    err: '',
    stdout(t: string) {
      io.out += t;
    },
    stderr(t: string) {
      io.err += t;
    },
    stderrIsTTY: false,
    gpu: async () => {
      const { gpu, cache } = await testGpu();
      return { gpu, cache, owned: false };
    },
  };
  return io;
}

/** Runs the built CLI; returns exit code, stdout, stderr. */
function cli(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/cli.js'), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** nibabel's reading of a NIfTI file: affine (rows), shape, dtype, intent code. */
function nibabel(path: string): { affine: number[][]; shape: number[]; dtype: string; intent: number; qform: number[][]; sform: number[][] } {
  const py = `import json, sys, nibabel as nib
img = nib.load(sys.argv[1])
h = img.header
print(json.dumps({"affine": img.affine.tolist(), "shape": list(img.shape), "dtype": str(img.get_data_dtype()), "intent": int(h["intent_code"]), "qform": h.get_qform().tolist(), "sform": h.get_sform().tolist()}))`;
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, path], { encoding: 'utf8' }));
}

function expectAffineClose(a: number[][], b: number[][], tol: number) {
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(Math.abs(a[r]![c]! - b[r]![c]!), `affine[${r}][${c}]: ${a[r]![c]} vs ${b[r]![c]}`).toBeLessThanOrEqual(tol);
}

/** Column-major Float64Array -> rows. */
function rows(a: Float64Array): number[][] {
  return [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => a[c * 4 + r]!));
}

beforeAll(() => {
  // dist/ is built by the global setup (test/global-build.ts).
  tmp = mkdtempSync(join(tmpdir(), 'covidct-cli-'));
  weightsPath = join(tmp, 'tiny-random.safetensors');
  const f = randomPipelineWeights(tinyModelConfig(), defaultPreprocessConfig(), 2);
  const tensors = f.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], data: f.getF32(t.name) }));
  writeFileSync(weightsPath, serializeSafetensors(tensors, { ...f.metadata }));
}, 60_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('bad input through the real binary: one line naming the file, exit code 3, no output folder', () => {
  const cases: Array<[string, () => string, RegExp]> = [
    ['an empty folder', () => mkdtempSync(join(tmp, 'empty-')), /empty-\w+: no files found \(empty folder\)$/],
    ['a folder with no CT', () => join(SCANS, 'dicom/mr_only'), /mr_only: no CT series found; found .*\(MR, 5 slice/],
    ['a truncated file', () => join(SCANS, 'dicom/truncated'), /truncated\/slice003\.dcm: truncated: pixel data needs 384 bytes, the file holds 192$/],
    ['a DICOM without pixel data', () => join(SCANS, 'dicom/no_pixels'), /no_pixels: no DICOM image found among 1 file\(s\): .*nopix\.dcm: no pixel data/],
    ['a 2-D image', () => join(SCANS, 'dicom/single'), /single: a 2-D image \(1 axial slice of 16 x 12\), not a volume/],
    ['mismatched slice sizes', () => join(SCANS, 'dicom/mismatched_sizes'), /mismatched_sizes: mixed slice sizes in series .*16 x 12 in 3 slice.*20 x 12 in 3 slice/],
    ['an unsupported transfer syntax', () => join(SCANS, 'dicom/unsupported_ts'), /slice000\.dcm: unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline/],
    ['a NIfTI with 5 volumes', () => join(SCANS, 'nifti/five_volumes.nii'), /five_volumes\.nii: 4-D NIfTI with 5 volumes/],
    ['a header with impossible dimensions', () => join(SCANS, 'nifti/huge_dims.nii'), /huge_dims\.nii: .*32767 x 32767 x 32767/],
    ['a file that is no scan', () => join(ROOT, 'package.json'), /package\.json: not a DICOM, NIfTI or safetensors file/],
    ['a path that does not exist', () => join(tmp, 'nothing-here'), /nothing-here: no such file or folder$/],
  ];
  it.each(cases)('%s', (_, path, message) => {
    const out = join(tmp, `out-${Math.random().toString(36).slice(2)}`);
    const r = cli(['analyze', path(), '--weights', weightsPath, '--out', out]);
    console.log(`covidct analyze <${_}>: exit ${r.code}: ${r.err.trim()}`);
    expect(r.code).toBe(3);
    expect(r.out).toBe('');
    const lines = r.err.trim().split('\n');
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/^covidct: /);
    expect(lines[0]).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('.partial'))).toEqual([]);
  });

  it('--debug adds the stack trace; bad usage exits 2; a bad weights file exits 3', () => {
    const d = cli(['analyze', join(SCANS, 'dicom/mr_only'), '--debug']);
    expect(d.code).toBe(3);
    expect(d.err).toMatch(/\n\s+at /);
    const u = cli(['analyze', '--frobnicate']);
    expect(u.code).toBe(2);
    expect(u.err.trim().split('\n')).toEqual([expect.stringMatching(/^covidct: .*--frobnicate/)]);
    expect(cli(['nonsense']).code).toBe(2);
    const mine = join(tmp, 'my-notes');
    mkdirSync(mine, { recursive: true });
    writeFileSync(join(mine, 'notes.txt'), 'keep');
    const o = cli(['analyze', join(SCANS, 'dicom/ordered'), '--out', mine]);
    expect(o.code).toBe(2);
    expect(o.err.trim()).toMatch(/^covidct: .*my-notes: exists and is not a covidct output folder \(it holds notes\.txt\): not replaced$/);
    expect(readdirSync(mine)).toEqual(['notes.txt']);
    expect(cli(['batch', join(SCANS, 'dicom')]).code).toBe(2);
    const w = cli(['analyze', join(SCANS, 'dicom/ordered'), '--weights', join(SCANS, 'nifti/int16.nii.gz')]);
    expect(w.code).toBe(3);
    expect(w.err.trim().split('\n').length).toBe(1);
    expect(w.err).toMatch(/int16\.nii\.gz: .*safetensors/);
  });
});

describe('--software picks the adapter by name', () => {
  it('bare: any software driver; =swiftshader / =lavapipe: that one; another value: bad usage naming it', async () => {
    const seen: unknown[] = [];
    const io = recorder();
    const real = io.gpu!;
    io.gpu = async (opts) => {
      seen.push(opts.forceSoftware);
      return real(opts);
    };
    for (const args of [['info'], ['info', '--software'], ['info', '--software=swiftshader'], ['info', '--software=lavapipe']]) {
      expect(await runCli(args, io), args.join(' ')).toBe(0);
    }
    expect(seen).toEqual([false, true, 'swiftshader', 'lavapipe']);
    const bad = recorder();
    expect(await runCli(['analyze', join(SCANS, 'dicom/ordered'), '--software=radeon'], bad)).toBe(2);
    expect(bad.err.trim()).toMatch(/^covidct: --software takes no value or one of lavapipe, swiftshader, got 'radeon'$/);
    // through the binary, on the real SwiftShader driver (Debian's chromium ships it)
    const r = cli(['info', '--software=swiftshader']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/swiftshader/i);
  });
});

describe('scans by content', () => {
  it('tells NIfTI, DICOM, gzip and safetensors apart from their first bytes, whatever the name', async () => {
    const nifti = readFileSync(join(SCANS, 'nifti/int16.nii'));
    expect(kindOf(nifti.subarray(0, 2048), nifti.length)).toBe('nifti');
    expect(kindOf(readFileSync(join(SCANS, 'nifti/int16.nii.gz')).subarray(0, 2048), 1e6)).toBe('nifti');
    const dcm = readFileSync(join(SCANS, 'dicom/single/slice000.dcm'));
    expect(kindOf(dcm.subarray(0, 2048), dcm.length)).toBe('dicom-file');
    expect(kindOf(new TextEncoder().encode('hello world, not a scan'), 23)).toBe('unknown');
    // A safetensors 'hu' scan whose JSON header happens to be 348 bytes long (a NIfTI-1 header's size).
    const hu = Float32Array.from({ length: 2 * 3 * 4 }, (_, i) => i - 1000);
    const json = JSON.stringify({ hu: { dtype: 'F32', shape: [2, 1, 3, 4], data_offsets: [0, hu.byteLength] } }).padEnd(348, ' ');
    const st = new Uint8Array(8 + 348 + hu.byteLength);
    new DataView(st.buffer).setBigUint64(0, 348n, true);
    st.set(new TextEncoder().encode(json), 8);
    st.set(new Uint8Array(hu.buffer), 8 + 348);
    expect(kindOf(st.subarray(0, 2048), st.length)).toBe('safetensors');
    const path = join(tmp, 'scan.nii'); // the name says NIfTI, the content says safetensors
    writeFileSync(path, st);
    const v = (await loadScan(path)).volume;
    expect(v.dims).toEqual([4, 3, 2]);
    expect(v.data).toBeInstanceOf(Int16Array);
    expect(Array.from(v.data)).toEqual(Array.from(hu));
    expect(v.source.notes).toContain('no geometry in a safetensors input: 1 mm voxels assumed');
  });
});

describe('loadScan', () => {
  it('takes --series (a UID or a split key), a single enhanced multi-frame file, and a sagittal series', async () => {
    const multi = join(SCANS, 'dicom/multi');
    expect((await loadScan(multi)).volume.dims).toEqual([16, 12, 8]);
    const thick = await loadScan(multi, { series: '1.2.826.0.1.3680043.8.498.77.2.9' });
    expect(thick.volume.dims).toEqual([16, 12, 5]);
    expect(thick.dicom!.chosen.key).toBe('1.2.826.0.1.3680043.8.498.77.2.9');
    await expect(loadScan(multi, { series: '1.2.3.4' })).rejects.toThrow(/multi: no series 1\.2\.3\.4; found /);
    const enhancedDir = join(SCANS, 'dicom/enhanced');
    const file = join(enhancedDir, readdirSync(enhancedDir)[0]!);
    const e = await loadScan(file);
    expect(e.kind).toBe('dicom-file');
    expect(e.volume.dims[2]).toBeGreaterThan(1);
    // A sagittal series is analysed along its axial view (permuted, not resampled), masks on its own grid.
    const sag = (await loadScan(join(SCANS, 'dicom/sagittal'))).volume;
    const r = await analyzeVolume(fakeEngine({ batch: 4, size: 16 }), sag);
    expect(r.report.input.orientation[0]).toMatch(/[AP]/);
    expect(r.report.input.axial.sourceAxes[2]).not.toBe(2);
    expect(r.report.slices.length).toBe(sag.dims[r.report.input.axial.sourceAxes[2]]);
    expect(r.lungMask.length).toBe(sag.data.length);
    expect(validate(JSON.parse(JSON.stringify(r.report)))).toBe(true);
  });
});

describe('progress on stderr', () => {
  it('one line updated in place on a terminal (stage, slices, slices/s, time left); nothing otherwise', () => {
    const tty = Object.assign(recorder(), { stderrIsTTY: true });
    const p = progressLine(tty, false, 'study 1/2 a: ');
    p.update({ stage: 'analyze', done: 8, total: 40, slicesPerSecond: 4 });
    p.done();
    expect(tty.err).toBe('\rstudy 1/2 a: analyze 8/40 slices, 4.0 slices/s, 8 s left\x1b[K\r\x1b[K');
    expect(tty.out).toBe('');
    for (const [io, quiet] of [
      [recorder(), false],
      [Object.assign(recorder(), { stderrIsTTY: true }), true],
    ] as const) {
      const q = progressLine(io, quiet);
      q.update({ stage: 'analyze', done: 1, total: 2, slicesPerSecond: 1 });
      q.done();
      expect(io.err + io.out).toBe('');
    }
  });
});

describe('inspect (no GPU)', () => {
  it('lists the series of a folder, the split and skipped ones and why, the chosen one and its geometry', () => {
    const r = cli(['inspect', join(SCANS, 'dicom/multi')]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/3 series, 2 file\(s\) skipped/);
    expect(r.out).toMatch(/split: orientation .* differs/);
    expect(r.out).toMatch(/skipped dose_sr\.dcm: structured report, not an image/);
    expect(r.out).toMatch(/chosen: series 1\.2\.826\.0\.1\.3680043\.8\.498\.77\.2\.15 \(the CT series with the most slices\)/);
    expect(r.out).toMatch(/dimensions: 16 x 12 x 8[\s\S]*spacing: 0\.75 x 0\.75 x 1 mm[\s\S]*orientation: LPS[\s\S]*HU range: -?\d+ \.\. -?\d+[\s\S]*transfer syntax: 1\.2\.840\.10008\.1\.2\.1 \(Explicit VR Little Endian\)/);
  });

  it('describes a NIfTI, a single DICOM file (pixels decoded), a weights file; says what analyze would refuse', () => {
    const n = cli(['inspect', join(SCANS, 'nifti/int16.nii.gz')]);
    expect(n.code).toBe(0);
    expect(n.out).toMatch(/NIfTI-1 \(gzip\).*dims 7 x 6 x 5, int16[\s\S]*orientation LAS/);
    const d = cli(['inspect', join(SCANS, 'dicom/single/slice000.dcm')]);
    expect(d.code).toBe(3); // described, but one slice is a 2-D image: analyze refuses it (test/cli-defects.test.ts, 7.)
    expect(d.out).toMatch(/DICOM file, CT[\s\S]*16 x 12, 1 frame\(s\)[\s\S]*value range: -?\d+ \.\. -?\d+/);
    const w = cli(['inspect', weightsPath]);
    expect(w.code).toBe(0);
    expect(w.out).toMatch(/covidct weights[\s\S]*notice: untrained \(random weights\)[\s\S]*covidct\.config: [\s\S]*tensor seg\./);
    const u = cli(['inspect', join(SCANS, 'dicom/unsupported_ts')]);
    expect(u.code).toBe(3);
    expect(u.out).toMatch(/cannot be read: .*unsupported transfer syntax/);
  });
});

describe('the output folder: temporary sibling, renamed at the end', () => {
  it('an error mid-way leaves no folder and no partial one; a finished one replaces an older output', async () => {
    const dir = join(tmp, 'atomic', 'study');
    const files = [
      { name: 'report.json', bytes: new TextEncoder().encode('{"schema":"covidct-report","schemaVersion":"1.0.0","software":{"name":"covidct"}}') },
      { name: 'overlays/slice_000.png', bytes: new Uint8Array([1, 2, 3]) },
      { name: 'lung_mask.nii.gz', bytes: new Uint8Array([4]) },
    ];
    await expect(
      writeOutputDir(dir, files, {
        afterFile: (_, i) => {
          if (i === 1) throw new Error('disk full (simulated)');
        },
      }),
    ).rejects.toThrow('disk full');
    expect(readdirSync(join(tmp, 'atomic'))).toEqual([]);
    await writeOutputDir(dir, files);
    expect(readdirSync(dir).sort()).toEqual(['lung_mask.nii.gz', 'overlays', 'report.json']);
    await writeOutputDir(dir, files.slice(0, 1));
    expect(readdirSync(dir)).toEqual(['report.json']);
    expect(readdirSync(join(tmp, 'atomic'))).toEqual(['study']);
    // A folder that is not a covidct output is never replaced.
    mkdirSync(join(tmp, 'atomic', 'mine'));
    writeFileSync(join(tmp, 'atomic', 'mine', 'notes.txt'), 'keep');
    await expect(writeOutputDir(join(tmp, 'atomic', 'mine'), files)).rejects.toThrow(/not a covidct output folder/);
    expect(readFileSync(join(tmp, 'atomic', 'mine', 'notes.txt'), 'utf8')).toBe('keep');
  });

  it('SIGINT during a run: exit 130, no output folder', async () => {
    const out = join(tmp, 'interrupted');
    const child = spawn(process.execPath, [join(ROOT, 'dist/cli.js'), 'analyze', join(SCANS, 'dicom/ordered'), '--weights', weightsPath, '--out', out, '--size', '256'], { cwd: ROOT });
    // 256 x 256: with the software tiles a 32 x 32 run finished within the 1.5 s before the signal (exit 0); at 256 the
    // run takes several seconds on a software adapter, so the signal lands in it
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('exit', (c, sig) => r(c ?? (sig === 'SIGINT' ? 130 : null))));
    expect(code).toBe(130);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((n) => n.includes('interrupted'))).toEqual([]);
    console.log(`SIGINT: exit ${code}, stderr: ${err.trim().split('\n').pop()}`);
  }, GPU_MS);
});

describe('analyze end to end on the test adapter', () => {
  it('a NIfTI stored LAS: report valid, masks on the input grid (nibabel), PNGs decode, --json alone on stdout', async () => {
    const input = join(SCANS, 'nifti/int16.nii.gz');
    const out = join(tmp, 'nifti-out');
    const io = recorder();
    const code = await runCli(['analyze', input, '--weights', weightsPath, '--out', out, '--size', '32', '--batch', '2', '--json'], io);
    expect(io.err).toBe('');
    expect(code).toBe(0);
    const printed = JSON.parse(io.out);
    expect(validate(printed), JSON.stringify(validate.errors)).toBe(true);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report).toEqual(printed);
    expect(report.input).toMatchObject({ format: 'nifti', dims: [7, 6, 5], orientation: 'LAS' });
    expect(report.weights.sha256).toBe(execFileSync('sha256sum', [weightsPath], { encoding: 'utf8' }).split(' ')[0]);
    expect(report.notice).toMatch(/^untrained \(random weights\)/);
    expect(report.timings.totalMs).toBeGreaterThan(0);
    const src = nibabel(input);
    for (const [name, dtype, intent] of [
      ['lung_mask.nii.gz', 'uint8', 1002],
      ['infection.nii.gz', 'uint8', 0], // probability x 255, scl_slope 1/255
    ] as const) {
      const nb = nibabel(join(out, name));
      expect(nb.shape).toEqual(src.shape);
      expect(nb.dtype).toBe(dtype);
      expect(nb.intent).toBe(intent);
      // float32 in the header: 1e-4 mm.
      expectAffineClose(nb.affine, src.affine, 1e-4);
      expectAffineClose(nb.qform, src.affine, 1e-4);
      expectAffineClose(nb.sform, src.affine, 1e-4);
    }
    const pngs = readdirSync(join(out, 'overlays'));
    expect(pngs).toContain('contact_sheet.png');
    for (const p of pngs) {
      const img = decodePng(readFileSync(join(out, 'overlays', p)));
      expect(img.width * img.height).toBeGreaterThan(0);
    }
    // The lung mask's voxel count is the report's.
    const mask = await readNifti(readFileSync(join(out, 'lung_mask.nii.gz')), 'm');
    let lung = 0;
    for (const v of mask.data) lung += v;
    expect(report.slices.reduce((s: number, x: { lungVoxels: number }) => s + x.lungVoxels, 0)).toBe(lung);
  }, GPU_MS);

  it('a DICOM folder: the summary on stdout, the masks with the DICOM volume affine (nibabel)', async () => {
    const input = join(SCANS, 'dicom/ordered');
    const out = join(tmp, 'dicom-out');
    const io = recorder();
    expect(await runCli(['analyze', input, '--weights', weightsPath, '--out', out, '--size', '32', '--batch', '4'], io)).toBe(0);
    expect(io.err).toBe('');
    expect(io.out).toMatch(/^covidct .*: untrained \(random weights\)/);
    expect(io.out).toMatch(/input: .*ordered \(dicom, series 1\.2\.826\.0\.1\.3680043\.8\.498\.77\.2\.1\), 16 x 12 x 7 voxels of 0\.8 x 0\.7 x 1\.25 mm, LPS/);
    expect(io.out).toMatch(/patient: /);
    const vol = (await loadScan(input)).volume;
    expectAffineClose(nibabel(join(out, 'lung_mask.nii.gz')).affine, rows(vol.affine), 1e-4);
  }, GPU_MS);
});

describe('batch: two good studies and one bad, summary, resume, shards', () => {
  let studies: string;
  let out: string;
  beforeAll(() => {
    studies = join(tmp, 'cohort');
    mkdirSync(studies);
    cpSync(join(SCANS, 'dicom/ordered'), join(studies, 'a_dicom'), { recursive: true });
    cpSync(join(SCANS, 'nifti/int16.nii.gz'), join(studies, 'b_nifti.nii.gz'));
    cpSync(join(SCANS, 'dicom/truncated'), join(studies, 'c_bad'), { recursive: true });
    out = join(tmp, 'cohort-out');
  });

  it('analyses the good ones, records the bad one, writes summary.csv and summary.json', async () => {
    const io = recorder();
    const code = await runCli(['batch', studies, '--out', out, '--weights', weightsPath, '--size', '32', '--batch', '4'], io);
    expect(code).toBe(3);
    expect(io.err).toMatch(/study c_bad failed: .*slice003\.dcm: truncated/);
    expect(readdirSync(out).sort()).toEqual(['a_dicom', 'b_nifti', 'summary.csv', 'summary.json']);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(s.rows.map((r: { id: string; status: string }) => `${r.id}:${r.status}`)).toEqual(['a_dicom:ok', 'b_nifti:ok', 'c_bad:failed']);
    const csv = readFileSync(join(out, 'summary.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('id,path,status,label,lungVolumeMl,infectedVolumeMl,lungInvolvementPct,slices,seconds,error');
    expect(csv.length).toBe(4);
    expect(csv[3]).toMatch(/^c_bad,.*,failed,.*truncated/);
    for (const id of ['a_dicom', 'b_nifti']) expect(validate(JSON.parse(readFileSync(join(out, id, 'report.json'), 'utf8')))).toBe(true);
  }, GPU_MS);

  it('resumes: studies whose report names the same weights are skipped, other weights redo them', async () => {
    const io = recorder();
    io.gpu = async () => {
      throw new Error('resume must not need the GPU');
    };
    expect(await runCli(['batch', studies, '--out', out, '--weights', weightsPath, '--size', '32'], io)).toBe(3);
    const s = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    expect(s.rows.map((r: { status: string }) => r.status)).toEqual(['done', 'done', 'failed']);
    // Other weights (another SHA-256): the done studies are analysed again (here: the GPU is asked for).
    const other = join(tmp, 'other.safetensors');
    writeFileSync(other, Buffer.concat([readFileSync(weightsPath)]));
    const f = readFileSync(other);
    f[f.length - 1] ^= 1; // one weight's last byte: still valid safetensors, another hash
    writeFileSync(other, f);
    const io2 = recorder();
    io2.gpu = async () => {
      throw new GpuUnavailableError('no GPU here (test)');
    };
    const code = await runCli(['batch', studies, '--out', out, '--weights', other], io2);
    expect(io2.err).toMatch(/^covidct: no GPU here \(test\)$/m);
    expect(code).toBe(4);
  });

  it('--shard K/N splits the cohort deterministically (FNV-1a of the study id), without overlap', async () => {
    const ids = (await listStudies(studies)).map((s) => s.id);
    expect(ids).toEqual(['a_dicom', 'b_nifti', 'c_bad']);
    const seen: string[] = [];
    for (const k of [0, 1]) {
      const io = recorder();
      await runCli(['batch', studies, '--out', out, '--weights', weightsPath, '--size', '32', '--shard', `${k}/2`, '--json'], io);
      const s = JSON.parse(io.out);
      const got = s.rows.map((r: { id: string }) => r.id);
      expect(got).toEqual(ids.filter((id) => fnv1a(id) % 2 === k));
      expect(existsSync(join(out, `summary.shard-${k}-of-2.csv`))).toBe(true);
      seen.push(...got);
    }
    expect(seen.sort()).toEqual(ids);
    expect(fnv1a('a')).toBe(0xe40c292c); // the FNV-1a test vector
    const bad = recorder();
    expect(await runCli(['batch', studies, '--out', out, '--weights', weightsPath, '--shard', '2/2'], bad)).toBe(2);
  });

  it('a CSV list of studies', async () => {
    const csv = join(tmp, 'list.csv');
    writeFileSync(csv, 'id,path\npatient-1,cohort/a_dicom\n"patient, 2",cohort/b_nifti.nii.gz\n');
    expect(await listStudies(csv)).toEqual([
      { id: 'patient-1', path: join(tmp, 'cohort/a_dicom') },
      { id: 'patient_2', path: join(tmp, 'cohort/b_nifti.nii.gz') },
    ]);
  });
});
