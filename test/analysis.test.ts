// The analysis of a Volume (src/analysis/analyze.ts): the axial grid, the plain bilinear resize, masks brought
// back to the source grid voxel for voxel, the report against its JSON Schema, abort and progress; the output
// files (src/analysis/outputs.ts). Tiny config at 32 x 32 on the test adapter, a few slices: seconds.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Ajv from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeVolume, AnalysisAbortedError, INFECTION_LEVELS, type AnalysisProgress, type AnalysisResult } from '../src/analysis/analyze.js';
import { axialGrid, axisCodes, readAxialSlice, slicePositionMm, sourceIndex, writeAxialSlice } from '../src/analysis/grid.js';
import { toAxial } from '../src/volume/orient.js';
import { decode as decodePng } from 'fast-png';
import { readNifti, readNiftiHeader } from '../src/io/nifti.js';
import { CONTACT_SHEET_FILE, contactSheet, INFECTION_SCL_SLOPE, makeOutputFiles, mostInvolved, reportBytes, sheetTitle, sliceImage, wrapWords } from '../src/analysis/outputs.js';
import { atLeast, displaySize, drawLegend, heatColour, legendHeight, OUTLINE_RGB, renderSlice, Rgba } from '../src/analysis/render.js';
import { GLYPH_HEIGHT } from '../src/analysis/font.js';
import { chestPhantom } from '../src/analysis/phantom.js';
import { nonFinitePaths } from '../src/analysis/report.js';
import { bilinearAxis, resizeBatch, resizeSlice } from '../src/analysis/resize.js';
import { weightsInfo, UNTRAINED_NOTICE } from '../src/analysis/weights-info.js';
import { getOp } from '../src/ops/registry.js';
import { mulberry32, uniform } from '../src/ops/random.js';
import type { Volume } from '../src/volume/volume.js';
import { fakeEngine } from './analysis-fake.js';

const schema = JSON.parse(readFileSync(join(__dirname, '../src/analysis/report.schema.json'), 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false });
const validate = ajv.compile(schema);

/** Column-major 4x4 from rows. */
function mat(rows: number[][]): Float64Array {
  const a = new Float64Array(16);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) a[c * 4 + r] = rows[r]![c]!;
  return a;
}
function apply(a: Float64Array, v: [number, number, number]): [number, number, number] {
  return [0, 1, 2].map((r) => a[r]! * v[0] + a[4 + r]! * v[1] + a[8 + r]! * v[2] + a[12 + r]!) as [number, number, number];
}

/** The phantom as an axial Volume in 'LPS' voxel order (i -> left, j -> posterior, k -> superior), RAS affine. */
function phantomVolume(slices = 5, size = 40): Volume {
  const p = chestPhantom({ slices, height: size, width: size });
  const data = new Int16Array(p.hu.length);
  // Phantom slice 0 is the apex (superior): store k inferior -> superior.
  const hw = size * size;
  for (let s = 0; s < slices; s++) for (let i = 0; i < hw; i++) data[(slices - 1 - s) * hw + i] = Math.round(p.hu[s * hw + i]!);
  const sx = 0.8;
  const sz = 2.5;
  return {
    data,
    dims: [size, size, slices],
    spacing: [sx, sx, sz],
    affine: mat([
      [-sx, 0, 0, 20],
      [0, -sx, 0, 30],
      [0, 0, sz, -100],
      [0, 0, 0, 1],
    ]),
    space: 'RAS',
    source: { format: 'array', path: 'phantom', description: 'test phantom', notes: [] },
  };
}

/** The same voxels stored another way: source axis order `perm` and flips, with the affine that keeps every voxel's position. */
function reorient(v: Volume, perm: [number, number, number], flip: [boolean, boolean, boolean]): Volume {
  // New axis a reads old axis perm[a], flipped when flip[a].
  const d = v.dims;
  const nd = perm.map((p) => d[p]!) as [number, number, number];
  const data = new Int16Array(v.data.length);
  const oldIdx = (o: number[]) => o[0]! + d[0] * (o[1]! + d[1] * o[2]!);
  const affine = new Float64Array(16);
  affine[15] = 1;
  const t = [v.affine[12]!, v.affine[13]!, v.affine[14]!];
  for (let a = 0; a < 3; a++) {
    const p = perm[a]!;
    for (let r = 0; r < 3; r++) affine[a * 4 + r] = (flip[a] ? -1 : 1) * v.affine[p * 4 + r]!;
    if (flip[a]) for (let r = 0; r < 3; r++) t[r]! += (d[p]! - 1) * v.affine[p * 4 + r]!;
  }
  affine.set(t, 12);
  for (let z = 0; z < nd[2]; z++)
    for (let y = 0; y < nd[1]; y++)
      for (let x = 0; x < nd[0]; x++) {
        const n = [x, y, z];
        const o = [0, 0, 0];
        for (let a = 0; a < 3; a++) o[perm[a]!] = flip[a] ? nd[a]! - 1 - n[a]! : n[a]!;
        data[x + nd[0] * (y + nd[1] * z)] = v.data[oldIdx(o)]!;
      }
  return { ...v, data, dims: nd, spacing: perm.map((p) => v.spacing[p]!) as [number, number, number], affine };
}

describe('resize (plain bilinear, PyTorch semantics)', () => {
  it('equals the resize_bilinear op reference on odd sizes, up and down, both align_corners', () => {
    const op = getOp('resize_bilinear');
    for (const align of [false, true])
      for (const [h, w, ho, wo] of [
        [7, 9, 14, 18],
        [7, 9, 15, 20],
        [13, 11, 5, 4],
        [4, 4, 1, 1],
        [40, 40, 32, 32],
      ] as const) {
        const x = uniform(mulberry32(h * 100 + w), 3 * h * w);
        const ref = op.reference([x], { attrs: { size: [ho, wo], alignCorners: align }, inputs: [[3, 1, h, w]], outputs: [[3, 1, ho, wo]] })[0]!;
        expect(Array.from(resizeBatch(x, [3, 1, h, w], [ho, wo], align))).toEqual(Array.from(ref));
      }
  });

  it('maps a constant to itself and a linear ramp (align_corners) to the sampled ramp', () => {
    const c = resizeSlice(new Float32Array(35).fill(0.25), 5, 7, 11, 3, false);
    expect(c.every((v) => v === 0.25)).toBe(true);
    const ramp = Float32Array.from({ length: 8 }, (_, i) => i);
    const r = resizeSlice(ramp, 1, 8, 1, 15, true);
    for (let i = 0; i < 15; i++) expect(r[i]).toBeCloseTo(i / 2, 6);
    expect(() => bilinearAxis(0, 3, false)).toThrow(RangeError);
  });
});

describe('axial grid', () => {
  it('reads every reoriented copy of a volume back to the same axial slices and affine', () => {
    const base = phantomVolume(3, 12);
    const g0 = axialGrid(base);
    expect(g0.srcAxis).toEqual([0, 1, 2]);
    expect(g0.flip).toEqual([false, false, false]);
    expect(axisCodes(base.affine)).toBe('LPS');
    const want = new Int16Array(12 * 12);
    const got = new Int16Array(12 * 12);
    for (const perm of [
      [0, 1, 2],
      [2, 0, 1],
      [1, 2, 0],
      [0, 2, 1],
    ] as [number, number, number][])
      for (const flip of [
        [false, false, false],
        [true, false, true],
        [false, true, false],
      ] as [boolean, boolean, boolean][]) {
        const v = reorient(base, perm, flip);
        const g = axialGrid(v);
        expect(g.dims).toEqual(g0.dims);
        expect(Array.from(g.affine)).toEqual(Array.from(g0.affine).map((x) => x + 0));
        for (let k = 0; k < 3; k++) {
          readAxialSlice(g0, base.data, k, want);
          readAxialSlice(g, v.data, k, got);
          expect(got).toEqual(want);
        }
        // Every axial voxel's source index lands on the same world point.
        for (const [i, j, k] of [
          [0, 0, 0],
          [11, 3, 2],
          [5, 11, 1],
        ] as const) {
          const s = sourceIndex(g, i, j, k);
          const src: [number, number, number] = [s % v.dims[0], Math.floor(s / v.dims[0]) % v.dims[1], Math.floor(s / (v.dims[0] * v.dims[1]))];
          expect(apply(v.affine, src)).toEqual(apply(g.affine, [i, j, k]));
        }
      }
  });

  it('gives the slices and the inverse map of toAxial (src/volume/orient.ts), without its copy', () => {
    const base = phantomVolume(3, 12);
    for (const [perm, flip] of [
      [[2, 0, 1], [true, false, true]],
      [[0, 1, 2], [false, true, false]],
      [[1, 2, 0], [false, false, false]],
    ] as [[number, number, number], [boolean, boolean, boolean]][]) {
      const v = reorient(base, perm, flip);
      const view = toAxial(v);
      const g = axialGrid(v);
      expect(g.dims).toEqual(view.volume.dims);
      expect(Array.from(g.affine)).toEqual(Array.from(view.volume.affine));
      const [nx, ny, nz] = g.dims;
      const slice = new Int16Array(nx * ny);
      const onAxial = new Int32Array(nx * ny * nz);
      const back = new Int32Array(v.data.length);
      for (let k = 0; k < nz; k++) {
        readAxialSlice(g, v.data, k, slice);
        expect(slice).toEqual(view.volume.data.subarray(k * nx * ny, (k + 1) * nx * ny));
        // An array numbered on the axial grid, written back through the grid and through toSource.
        const ids = Int32Array.from({ length: nx * ny }, (_, i) => k * nx * ny + i + 1);
        onAxial.set(ids, k * nx * ny);
        writeAxialSlice(g, ids, k, back);
      }
      expect(back).toEqual(view.toSource(onAxial));
    }
  });

  it('axis codes like nibabel aff2axcodes; LPS-space affines; slice positions along the normal', () => {
    expect(axisCodes(mat([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]))).toBe('RAS');
    expect(axisCodes(mat([[0, 0, -2, 0], [1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]]))).toBe('AIL');
    // The same DICOM-style grid stated in LPS: i along +x(LPS) = left, j along +y(LPS) = posterior.
    expect(axisCodes(mat([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]), 'LPS')).toBe('LPS');
    // Oblique: 20 degrees about x; k still runs superior.
    const c = Math.cos(0.35);
    const s = Math.sin(0.35);
    expect(axisCodes(mat([[-1, 0, 0, 0], [0, -c, s * 2, 0], [0, -s, c * 2, 0], [0, 0, 0, 1]]))).toBe('LPS');
    const g = axialGrid(phantomVolume(5, 8));
    expect([0, 1, 4].map((k) => slicePositionMm(g, k))).toEqual([-100, -97.5, -90]);
  });
});

describe('weights info', () => {
  it('reads trained / untrained / unknown from the metadata, never from the name', () => {
    expect(weightsInfo('trained-on-real-data.safetensors', { 'covidct.source': 'deterministic random weights, not trained: results are not a diagnosis, seed 1' }, null).notice).toBe(UNTRAINED_NOTICE);
    const t = weightsInfo('random.safetensors', { 'covidct.trained_on': 'synthetic data', 'covidct.source': 'checkpoint x.pt' }, null);
    expect(t.trained).toBe(true);
    expect(t.notice).toBe('trained on synthetic data, not for diagnosis');
    expect(weightsInfo('w', { 'covidct.trained_on': 'synthetic data', 'covidct.intended_use': 'trained on synthetic data, not for diagnosis' }, null).notice).toBe('trained on synthetic data, not for diagnosis');
    const u = weightsInfo('w', { 'covidct.source': 'checkpoint trained.pt' }, null);
    expect(u.trained).toBe(null);
    expect(u.notice).toMatch(/do not say what they were trained on.*not for diagnosis/);
  });
});

describe('analyzeVolume (a CPU stand-in engine: the analysis logic without compiling shaders)', () => {
  let engine: ReturnType<typeof fakeEngine>;
  let base: Volume;
  let result: AnalysisResult;
  const events: AnalysisProgress[] = [];
  beforeAll(async () => {
    engine = fakeEngine({ batch: 2, size: 32 });
    base = phantomVolume(5, 40);
    result = await analyzeVolume(engine, base, { onProgress: (p) => events.push(p), weightsSha256: 'ab'.repeat(32), compileMs: 12 });
  });

  it('produces a report that validates against the schema, with no NaN', () => {
    const r = result.report;
    const ok = validate(JSON.parse(JSON.stringify(r)));
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    expect(nonFinitePaths(r)).toEqual([]);
    expect(r.slices.length).toBe(5);
    expect(r.input.orientation).toBe('LPS');
    expect(r.input.dims).toEqual([40, 40, 5]);
    expect(r.notice).toBe(UNTRAINED_NOTICE);
    expect(r.weights.trained).toBe(false);
    expect(r.slices.map((s) => s.positionMm)).toEqual([-100, -97.5, -95, -92.5, -90]);
    console.log('analysis report patient', JSON.stringify(r.patient), 'lung voxels per slice', r.slices.map((s) => s.lungVoxels).join(' '));
  });

  it('reports progress per batch and the volumes from voxel counts on the source grid', () => {
    expect(events[0]).toMatchObject({ stage: 'prepare', done: 0, total: 5 });
    expect(events.filter((e) => e.stage === 'analyze').map((e) => e.done)).toEqual([2, 4, 5]);
    let lung = 0;
    let inf = 0;
    for (let i = 0; i < result.lungMask.length; i++) {
      lung += result.lungMask[i]!;
      // The map quantised to 1/255 steps, thresholded at 0.5, counts what the report counted on the float map.
      if (result.lungMask[i] && result.infection[i]! / INFECTION_LEVELS > result.report.model.thresholds.infection) inf++;
      if (!result.lungMask[i]) expect(result.infection[i]).toBe(0);
    }
    const voxelMl = (0.8 * 0.8 * 2.5) / 1000;
    expect(result.report.patient.lungVolumeMl).toBeCloseTo(lung * voxelMl, 3);
    expect(result.report.patient.infectedVolumeMl).toBeCloseTo(inf * voxelMl, 3);
    expect(result.report.slices.reduce((s, x) => s + x.lungVoxels, 0)).toBe(lung);
    expect(result.report.slices[0]!.lungAreaMm2).toBeCloseTo(result.report.slices[0]!.lungVoxels * 0.64, 3);
  });

  it('brings the masks back to the source grid voxel for voxel, whatever the storage order', async () => {
    const v = reorient(base, [2, 0, 1], [true, false, true]);
    const r = await analyzeVolume(engine, v);
    // Each source voxel of the reoriented volume sits where the matching voxel of the base sits.
    const inv = (a: [number, number, number]): [number, number, number] => [(a[0] - 20) / -0.8, (a[1] - 30) / -0.8, (a[2] + 100) / 2.5].map((x) => Math.round(x)) as [number, number, number];
    const [nx, ny, nz] = v.dims;
    let checked = 0;
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++) {
          const [i, j, k] = inv(apply(v.affine, [x, y, z]));
          const bi = i + 40 * (j + 40 * k);
          const si = x + nx * (y + ny * z);
          if (r.lungMask[si] !== result.lungMask[bi] || r.infection[si] !== result.infection[bi]) throw new Error(`voxel ${x},${y},${z} differs from base ${i},${j},${k}`);
          checked++;
        }
    expect(checked).toBe(40 * 40 * 5);
    expect(r.report.input.orientation).toBe(axisCodes(v.affine));
    expect(r.report.patient).toEqual(result.report.patient);
    expect(r.report.slices.map((s) => s.lungVoxels)).toEqual(result.report.slices.map((s) => s.lungVoxels));
  });

  it('null with a reason, never NaN: a slice without lung, a scan without lung', async () => {
    const v = phantomVolume(3, 24);
    v.data.fill(-1000, 0, 24 * 24); // slice 0: air only
    const r = (await analyzeVolume(engine, v)).report;
    expect(r.slices[0]).toMatchObject({ lungVoxels: 0, infectedFraction: null, reasons: { infectedFraction: 'no lung in this slice' } });
    expect(r.slices[1]!.infectedFraction).not.toBeNull();
    expect(validate(r)).toBe(true);
    v.data.fill(-1000);
    const none = (await analyzeVolume(engine, v)).report;
    expect(none.patient).toMatchObject({ lungFound: false, label: null, probabilities: null, uncertainty: null, slicesUsed: 0, lungVolumeMl: 0, lungInvolvementPct: null });
    expect(Object.keys(none.patient.reasons).sort()).toEqual(['label', 'lungInvolvementPct', 'probabilities', 'uncertainty']);
    expect(validate(JSON.parse(JSON.stringify(none))), JSON.stringify(validate.errors)).toBe(true);
    expect(nonFinitePaths(none)).toEqual([]);
    // The schema itself refuses a null without its reason.
    const bad = structuredClone(r);
    bad.slices[0]!.reasons = {};
    expect(validate(bad)).toBe(false);
  });

  it('stops within one batch when aborted and says so', async () => {
    const ac = new AbortController();
    const seen: number[] = [];
    const p = analyzeVolume(engine, base, {
      signal: ac.signal,
      onProgress: (e) => {
        if (e.stage === 'analyze') {
          seen.push(e.done);
          ac.abort();
        }
      },
    });
    await expect(p).rejects.toBeInstanceOf(AnalysisAbortedError);
    await expect(p).rejects.toMatchObject({ name: 'AbortError', slicesDone: 2, slicesTotal: 5 });
    expect(seen).toEqual([2]);
  });
});

describe('output files (in memory)', () => {
  let result: AnalysisResult;
  let files: Map<string, Uint8Array>;
  beforeAll(async () => {
    const v = reorient(phantomVolume(6, 40), [0, 1, 2], [true, false, false]); // stored 'RPS': the grid flips i
    result = await analyzeVolume(fakeEngine({ batch: 4 }), v);
    files = new Map((await makeOutputFiles(result)).map((f) => [f.name, f.bytes]));
  });

  it('makes the report, both NIfTI files on the input grid and decodable PNGs', async () => {
    expect([...files.keys()].filter((n) => !n.startsWith('overlays/slice_'))).toEqual(['report.json', 'lung_mask.nii.gz', 'infection.nii.gz', 'overlays/contact_sheet.png']);
    const overlays = [...files.keys()].filter((n) => n.startsWith('overlays/slice_'));
    expect(overlays.length).toBe(5);
    const report = JSON.parse(new TextDecoder().decode(files.get('report.json')!));
    expect(validate(report)).toBe(true);
    const mask = await readNifti(files.get('lung_mask.nii.gz')!, 'lung_mask.nii.gz');
    expect(mask.dims).toEqual(result.volume.dims);
    // The sform holds the affine in float32: equal to the float32 rounding of the input's.
    expect(Array.from(mask.affine, (x) => x + 0)).toEqual(Array.from(result.volume.affine, (x) => Math.fround(x) + 0));
    expect(Array.from(mask.data)).toEqual(Array.from(result.lungMask));
    const hdr = await readNiftiHeader(files.get('lung_mask.nii.gz')!, 'lung_mask.nii.gz');
    expect(hdr.intentCode).toBe(1002);
    const inf = await readNifti(files.get('infection.nii.gz')!, 'infection.nii.gz');
    expect(inf.data).toEqual(Float32Array.from(result.infection, (q) => q * INFECTION_SCL_SLOPE));
    for (const n of [...overlays, 'overlays/contact_sheet.png']) {
      const png = decodePng(files.get(n)!);
      expect(png.channels).toBe(3);
      expect(png.width).toBeGreaterThanOrEqual(240);
    }
  });

  it('infection.nii.gz: uint8 with scl_slope 1/255 that nibabel reads on the input affine within 1/510 of the float map', async () => {
    // The fake engine with a seeded random infection probability in [0, 1] at model size, recorded, so the float
    // map on the source grid can be rebuilt here (resized back per slice, 0 outside the lung) and compared.
    const base = fakeEngine({ batch: 3 });
    const rand = mulberry32(11);
    const probs: Float32Array[] = [];
    const engine: typeof base = Object.assign(Object.create(base) as typeof base, {
      async runWindowed(windowed: Float32Array, opts: { patientHead: false }) {
        const r = await base.runWindowed(windowed, opts);
        r.infection_prob = uniform(rand, r.infection_prob.length, 0, 1);
        probs.push(r.infection_prob);
        return r;
      },
    });
    const v = reorient(phantomVolume(5, 40), [1, 2, 0], [false, true, true]); // stored sagitally, flipped: not axial
    const res = await analyzeVolume(engine, v);
    const g = res.grid;
    const [nx, ny, nz] = g.dims;
    const H = base.height;
    const hw = H * base.width;
    const floatMap = new Float32Array(res.lungMask.length);
    const back = new Float32Array(nx * ny);
    const mask = new Uint8Array(nx * ny);
    for (let k = 0; k < nz; k++) {
      const p = probs[Math.floor(k / 3)]!.subarray((k % 3) * hw, (k % 3 + 1) * hw);
      resizeSlice(p, H, base.width, ny, nx, base.preprocess.resize_align_corners, back);
      readAxialSlice(g, res.lungMask, k, mask);
      writeAxialSlice(g, back.map((x, i) => (mask[i] ? x : 0)), k, floatMap);
    }
    const file = (await makeOutputFiles(res, { overlays: 1 })).find((f) => f.name === 'infection.nii.gz')!;
    const dir = mkdtempSync(join(tmpdir(), 'covidct-analysis-'));
    try {
      writeFileSync(join(dir, 'infection.nii.gz'), file.bytes);
      const py = `import json, sys, numpy as np, nibabel as nib
img = nib.load(sys.argv[1])
print(json.dumps({"dtype": str(img.get_data_dtype()), "slope": float(img.dataobj.slope), "inter": float(img.dataobj.inter),
  "affine": img.affine.tolist(), "values": img.get_fdata().reshape(-1, order="F").tolist()}))`;
      const nb = JSON.parse(execFileSync('/usr/bin/python3', ['-c', py, join(dir, 'infection.nii.gz')], { encoding: 'utf8', maxBuffer: 64 << 20 })) as { dtype: string; slope: number; inter: number; affine: number[][]; values: number[] };
      expect(nb.dtype).toBe('uint8');
      expect(nb.slope).toBe(INFECTION_SCL_SLOPE);
      expect(nb.inter).toBe(0);
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(Math.abs(nb.affine[r]![c]! - v.affine[c * 4 + r]!)).toBeLessThanOrEqual(1e-4);
      expect(nb.values.length).toBe(floatMap.length);
      let worst = 0;
      let inLung = 0;
      for (let i = 0; i < floatMap.length; i++) {
        const x = nb.values[i]!;
        expect(x >= 0 && x <= 1, `voxel ${i}: ${x} outside [0, 1]`).toBe(true);
        worst = Math.max(worst, Math.abs(x - floatMap[i]!));
        if (res.lungMask[i]) inLung++;
        else expect(x).toBe(0);
      }
      // Rounding to 1/255 steps: at most half a step, 1/510, plus the slope's float32 rounding (255 x 6e-8).
      expect(worst).toBeLessThanOrEqual(1 / 510 + 2e-7);
      expect(inLung).toBeGreaterThan(500);
      console.log(`infection.nii.gz: ${inLung} lung voxels, largest |nibabel - float map| ${worst.toExponential(3)} (bound 1/510 = ${(1 / 510).toExponential(3)})`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('draws the lung outline where the mask has an edge and the heat map inside it', () => {
    const k = mostInvolved(result, 1)[0]!;
    const img = sliceImage(result, k);
    const [nx, ny] = result.grid.dims;
    const mask = new Uint8Array(nx * ny);
    const inf = new Float32Array(nx * ny);
    readAxialSlice(result.grid, result.lungMask, k, mask);
    readAxialSlice(result.grid, result.infection, k, inf);
    inf.forEach((q, i) => (inf[i] = q / INFECTION_LEVELS));
    let outline = 0;
    let heat = 0;
    for (let j = 1; j < ny - 1; j++)
      for (let i = 1; i < nx - 1; i++) {
        const o = j * nx + i;
        const px = img.get(i, j);
        const isOutline = px[0] === OUTLINE_RGB[0] && px[1] === OUTLINE_RGB[1] && px[2] === OUTLINE_RGB[2];
        const edge = mask[o] === 1 && (!mask[o - 1] || !mask[o + 1] || !mask[o - nx] || !mask[o + nx]);
        expect(isOutline).toBe(edge);
        if (isOutline) outline++;
        if (mask[o] && !edge && inf[o]! > 0.5) {
          expect(px[0]).toBeGreaterThan(px[2]); // red-yellow over grey
          heat++;
        }
        if (!mask[o]) expect(px[0]).toBe(px[2]); // grey outside the lung
      }
    expect(outline).toBeGreaterThan(10);
    expect(heat).toBeGreaterThan(0);
  });

  it('non-square pixels: overlays and contact sheet tiles drawn with the physical aspect, the outline around the lung', async () => {
    // 0.7 x 1.3 mm pixels, 40 x 40: 28 x 52 mm, 40 x 74 display pixels at 0.7 mm (x4 for the 256-pixel overlay).
    const base = phantomVolume(3, 40);
    const [sx, sy] = [0.7, 1.3];
    const affine = Float64Array.from(base.affine);
    affine[0] = -sx;
    affine[5] = -sy;
    const v: Volume = { ...base, spacing: [sx, sy, base.spacing[2]], affine };
    const tall = await analyzeVolume(fakeEngine({ batch: 4 }), v);
    // The same slices as 1.3 x 0.7 mm pixels (52 x 28 mm): only the grid's spacing is read by the pictures.
    const wide: AnalysisResult = { ...tall, grid: { ...tall.grid, spacing: [sy, sx, tall.grid.spacing[2]] } };
    const [nx, ny] = tall.grid.dims;
    const pad = 6;
    const y0 = 2 * (GLYPH_HEIGHT + 4) + pad; // the first row of tiles (outputs.ts's layout)
    const sheetBg = [24, 24, 24];
    const figures: string[] = [];
    /** Checks one overlay: size against the physical aspect, outline closed around the lung, heat inside. */
    const checkOverlay = (res: AnalysisResult, k: number, rgb: ArrayLike<number>, w: number, h: number, what: string) => {
      const ratio = (ny * res.grid.spacing[1]) / (nx * res.grid.spacing[0]); // physical height / width
      expect(Math.max(w, h)).toBeGreaterThanOrEqual(256);
      const err = Math.max(Math.abs(h - w * ratio), Math.abs(w - h / ratio));
      figures.push(`${what} ${w} x ${h} (physical ${(nx * res.grid.spacing[0]).toFixed(1)} x ${(ny * res.grid.spacing[1]).toFixed(1)} mm, off by ${err.toFixed(2)} px)`);
      expect(err, `${what}: ${w} x ${h}, physical ratio ${ratio}`).toBeLessThanOrEqual(1);
      // The outline is drawn in its own colour, unblended, and closes around the lung: flood the picture from its
      // border through non-outline pixels; no display pixel over an inner lung voxel (mask on it and its 4
      // neighbours) is reached.
      const mask = new Uint8Array(nx * ny);
      readAxialSlice(res.grid, res.lungMask, k, mask);
      const isOutline = (p: number) => rgb[p * 3] === OUTLINE_RGB[0] && rgb[p * 3 + 1] === OUTLINE_RGB[1] && rgb[p * 3 + 2] === OUTLINE_RGB[2];
      const reached = new Uint8Array(w * h);
      const stack: number[] = [];
      const push = (x: number, y: number) => {
        if (x < 0 || y < 0 || x >= w || y >= h) return;
        const p = y * w + x;
        if (reached[p] || isOutline(p)) return;
        reached[p] = 1;
        stack.push(p);
      };
      for (let x = 0; x < w; x++) (push(x, 0), push(x, h - 1));
      for (let y = 0; y < h; y++) (push(0, y), push(w - 1, y));
      while (stack.length) {
        const p = stack.pop()!;
        const [x, y] = [p % w, Math.floor(p / w)];
        (push(x - 1, y), push(x + 1, y), push(x, y - 1), push(x, y + 1));
      }
      let inner = 0;
      let leaked = 0;
      for (let j = 1; j < ny - 1; j++)
        for (let i = 1; i < nx - 1; i++) {
          const o = j * nx + i;
          if (!(mask[o] && mask[o - 1] && mask[o + 1] && mask[o - nx] && mask[o + nx])) continue;
          inner++;
          if (reached[Math.floor(((j + 0.5) * h) / ny) * w + Math.floor(((i + 0.5) * w) / nx)]) leaked++;
        }
      let outline = 0;
      let enclosed = 0;
      let heat = 0;
      for (let p = 0; p < w * h; p++) {
        if (isOutline(p)) outline++;
        else if (!reached[p]) {
          enclosed++;
          if (rgb[p * 3]! > rgb[p * 3 + 2]! + 40) heat++;
        }
      }
      expect(inner).toBeGreaterThan(20);
      expect(leaked, `${what}: lung voxels reached from the border`).toBe(0);
      // A thin line: a few outline pixels per enclosed one (the 1-pixel edge of a blob of this size).
      expect(outline).toBeGreaterThan(50);
      expect(outline).toBeLessThan(enclosed / 3);
      return heat;
    };
    const ktop = mostInvolved(tall, 1)[0]!;
    // Tall: through makeOutputFiles, as the CLI writes them.
    const out = new Map((await makeOutputFiles(tall, { overlays: 2, sheetSlices: 3, tile: 160 })).map((f) => [f.name, f.bytes]));
    const overlays = [...out.keys()].filter((n) => n.startsWith('overlays/slice_'));
    expect(overlays.length).toBe(2);
    let heat = 0;
    for (const name of overlays) {
      const png = decodePng(out.get(name)!);
      const k = Number(/slice_(\d+)/.exec(name)![1]);
      const hk = checkOverlay(tall, k, png.data, png.width, png.height, name);
      if (k === ktop) heat = hk;
    }
    expect(heat).toBeGreaterThan(0);
    const sheet = decodePng(out.get(CONTACT_SHEET_FILE)!);
    const px = (x: number, y: number) => Array.from(sheet.data.subarray((y * sheet.width + x) * 3, (y * sheet.width + x) * 3 + 3));
    // The tile's height from the sheet's layout: one row of 3 tiles, 160 wide.
    const th = sheet.height - y0 - (GLYPH_HEIGHT + 6 + pad) - legendHeight() - 2 * pad;
    figures.push(`contact sheet tile 160 x ${th} (physical ratio ${((ny * sy) / (nx * sx)).toFixed(4)})`);
    expect(Math.abs(th - (160 * ny * sy) / (nx * sx))).toBeLessThanOrEqual(1);
    expect(px(pad + 80, y0 + th - 1)).not.toEqual(sheetBg); // the picture's last row
    expect(px(pad + 80, y0 + th)).toEqual(sheetBg); // the background below it
    // Wide: the overlay and the sheet straight from outputs.ts.
    const img = sliceImage(wide, ktop, 256);
    const rgb = new Uint8Array(img.width * img.height * 3);
    for (let p = 0; p < img.width * img.height; p++) rgb.set(img.data.subarray(p * 4, p * 4 + 3), p * 3);
    expect(checkOverlay(wide, ktop, rgb, img.width, img.height, 'wide overlay')).toBeGreaterThan(0);
    // Wide tiles: as high as the physical aspect makes a 160-pixel width, and as wide as that height makes it
    // (x 3.4515 mm: 160 x 0.2028 = 32.45 pixels high, so 158 wide rather than 160, which is 2.2 pixels off).
    for (const wsx of [sy, 3.4515]) {
      const ws = contactSheet({ ...tall, grid: { ...tall.grid, spacing: [wsx, sx, tall.grid.spacing[2]] } }, 3, 160);
      const wpx = (x: number) => ws.get(x, y0 + 10);
      let x0 = pad;
      while (x0 < pad + 160 && wpx(x0).join() === sheetBg.join()) x0++;
      let x1 = pad + 159;
      while (x1 > x0 && wpx(x1).join() === sheetBg.join()) x1--;
      const tw = x1 - x0 + 1;
      let wth = 0;
      while (ws.get(x0 + 1, y0 + wth).join() !== sheetBg.join()) wth++;
      const r = (ny * sx) / (nx * wsx);
      figures.push(`wide contact sheet tile ${tw} x ${wth} (${wsx} x ${sx} mm pixels, physical ratio ${r.toFixed(4)})`);
      expect(Math.abs(tw - wth / r)).toBeLessThanOrEqual(1);
      expect(Math.abs(wth - tw * r)).toBeLessThanOrEqual(1);
      expect(tw).toBeGreaterThan(150);
    }
    console.log(figures.join('\n'));
    // Square pixels are drawn as before: at the source resolution, scaled up by an integer factor.
    expect(displaySize(40, 30, 0.8, 0.8, 256)).toEqual([40, 30]);
    expect(displaySize(40, 40, 0.7, 1.3)).toEqual([40, 74]);
    expect(displaySize(40, 40, 0.7, 1.3, 256)).toEqual([160, 297]);
    expect(displaySize(40, 40, 1.3, 0.7, 256)).toEqual([297, 160]);
    expect(displaySize(8, 8, 1e-6, 1e3)).toEqual([1, 2048]); // bounded whatever the spacing
    const k = mostInvolved(result, 1)[0]!;
    const [qx, qy] = result.grid.dims;
    const hu = new Float32Array(qx * qy);
    const m = new Uint8Array(qx * qy);
    const inf = new Float32Array(qx * qy);
    readAxialSlice(result.grid, result.volume.data, k, hu);
    readAxialSlice(result.grid, result.lungMask, k, m);
    readAxialSlice(result.grid, result.infection, k, inf);
    inf.forEach((q, i) => (inf[i] = q / INFECTION_LEVELS));
    const same = Buffer.from(sliceImage(result, k, 256).data).equals(Buffer.from(atLeast(renderSlice(hu, m, inf, qx, qy), 256).data));
    expect(same, 'square pixels drawn as before').toBe(true);
  });
  it('the bitmap font draws distinct glyphs and the legend its colour bar', () => {
    const draw = (s: string) => {
      const img = new Rgba(40, 10);
      img.text(s, 1, 1);
      return Array.from(img.data).join(',');
    };
    const seen = new Set(['0123456789', 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', '%.-:=/()'].flatMap((s) => [...s]).map(draw));
    expect(seen.size).toBe(10 + 26 + 8);
    expect(draw('a')).toBe(draw('A'));
    const leg = new Rgba(220, legendHeight());
    drawLegend(leg, 0, 0, 220);
    const barY = 7 + 3 + 4;
    expect(leg.get(0, barY)).toEqual(heatColour(0.1));
    expect(leg.get(199, barY)).toEqual(heatColour(1));
  });

  it('refuses a report with a NaN', () => {
    const bad = structuredClone(result.report);
    (bad.patient as { lungVolumeMl: number }).lungVolumeMl = NaN;
    expect(() => reportBytes(bad)).toThrow(/non-finite.*lungVolumeMl/);
  });

  it('says why there is no class: not a chest CT, outside what validation supports, no lung', () => {
    const p = structuredClone(result.report.patient);
    p.label = 'CAP';
    p.lungFound = true;
    p.probabilities = { 'COVID-19': 0.1, CAP: 0.75, 'no infection': 0.15 };
    p.lungInvolvementPct = 4.25;
    delete p.chest;
    delete p.support;
    expect(sheetTitle(p)).toBe('PATIENT: CAP (75.0%), LUNG INVOLVEMENT 4.3%');
    const ood = { ...p, label: null, probabilities: null, support: { calibrated: true, temperature: 1.5, oodScore: 9, oodThreshold: 2, supported: false, reasons: {} } };
    expect(sheetTitle(ood as typeof p)).toBe('PATIENT: NO CLASS, OUTSIDE WHAT VALIDATION SUPPORTS');
    const notChest = { ...ood, chest: { ...(result.report.patient.chest ?? {}), isChest: false } };
    expect(sheetTitle(notChest as typeof p)).toBe('PATIENT: NO CLASS, NOT A CHEST CT');
    expect(sheetTitle({ ...p, lungFound: false, label: null, support: undefined } as typeof p)).toBe('PATIENT: NO LUNG FOUND');
  });
});

describe('the contact sheet header', () => {
  it('wraps the title and the notice at words and never cuts them off', () => {
    const notice = 'classifier trained on synthetic data, lung segmentation on synthetic data and one real chest CT; not for diagnosis';
    const lines = wrapWords(notice, 40);
    expect(lines.every((l) => l.length <= 40)).toBe(true);
    expect(lines.join(' ')).toBe(notice);
    expect(lines.at(-1)).toMatch(/not for diagnosis$/);
    expect(wrapWords('abcdefghij klm', 4)).toEqual(['abcd', 'efgh', 'ij', 'klm']);
    expect(wrapWords('', 10)).toEqual(['']);
  });

});

