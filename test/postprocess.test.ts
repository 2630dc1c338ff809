// The lung mask's post-processing, the one gated infection map and the chest check (src/analysis/postprocess.ts),
// through analyzeVolume with the CPU stand-in engine (test/analysis-fake.ts: lung wherever the windowed value is
// -950..-400 HU, infected above -600 HU there). A chest phantom gets lesion-like blobs (-450 HU) in the heart, in the
// liver and in bowel gas under the diaphragm, and a low-density slab outside the body: the stand-in's stage 1 calls
// all of them lung and infected, as the committed synthetic-trained weights did on real scans. None of them may reach
// the lung mask, infection.nii.gz, the report's involvement or the overlays. Milliseconds.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { analyzeVolume, INFECTION_LEVELS } from '../src/analysis/analyze.js';
import { axialGrid, readAxialSlice } from '../src/analysis/grid.js';
import { chestCoverage, bodyMaskSlice, SliceScratch, MIN_LUNG_EXTENT_MM, NEAR_ANCHORS_MM, ANCHOR_FRACTION, CUT_END_FRACTION } from '../src/analysis/postprocess.js';
import { makeOutputFiles } from '../src/analysis/outputs.js';
import { readNifti } from '../src/io/nifti.js';
import type { Volume } from '../src/volume/volume.js';
import { fakeEngine } from './analysis-fake.js';
import { readReport } from '../web/report-view.js';

const schema = JSON.parse(readFileSync(join(__dirname, '../src/analysis/report.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false }).compile(schema);

const NX = 64;
const NY = 64;
const NZ = 40;
const MM = 5;
/** Index of voxel (i, j, k) in the phantom's data. */
const idx = (i: number, j: number, k: number) => i + NX * (j + NY * k);

type Region = 'heart' | 'liver' | 'bowel' | 'outside';

/**
 * A chest phantom (i right -> left, j anterior -> posterior, k inferior -> superior, 5 mm voxels): body ellipse
 * (40 HU), two lungs (-850) from k = 12 to 37, the heart between them, the liver under the right dome (k < 11), a bowel
 * gas pocket (-1000) under the left dome at k = 7..9 (one tissue slice below the lung base), and outside air. With
 * `blobs`, lesion-like -450 HU balls in the heart, the liver, the bowel gas, and a -700 HU slab outside the body at the
 * top (air between the arm and the neck read as lung). `lungs: false` leaves the lungs out (an abdomen).
 */
function phantom(opts: { blobs?: boolean; lungs?: boolean; lungSlices?: [number, number] } = {}): { vol: Volume; regions: Record<Region, Uint8Array> } {
  const data = new Int16Array(NX * NY * NZ).fill(-1000);
  const regions: Record<Region, Uint8Array> = { heart: new Uint8Array(data.length), liver: new Uint8Array(data.length), bowel: new Uint8Array(data.length), outside: new Uint8Array(data.length) };
  const [l0, l1] = opts.lungSlices ?? [12, 37];
  const ball = (ci: number, cj: number, ck: number, r: number, v: number, reg?: Region) => {
    for (let k = Math.max(0, ck - r); k <= Math.min(NZ - 1, ck + r); k++)
      for (let j = cj - r; j <= cj + r; j++)
        for (let i = ci - r; i <= ci + r; i++)
          if ((i - ci) ** 2 + (j - cj) ** 2 + (k - ck) ** 2 <= r * r) {
            data[idx(i, j, k)] = v;
            if (reg) regions[reg][idx(i, j, k)] = 1;
          }
  };
  for (let k = 0; k < NZ; k++)
    for (let j = 0; j < NY; j++)
      for (let i = 0; i < NX; i++) {
        const inBody = ((i - 32) / 27) ** 2 + ((j - 32) / 21) ** 2 <= 1;
        if (!inBody) continue;
        data[idx(i, j, k)] = 40;
        if (k < 11 && i < 34 && ((i - 22) / 13) ** 2 + ((j - 32) / 14) ** 2 <= 1) data[idx(i, j, k)] = 55; // liver
        if (opts.lungs !== false && k >= l0 && k <= l1) {
          const taper = 1 - 0.5 * Math.max(0, (k - (l1 - 8)) / 8);
          for (const ci of [19, 45]) if (((i - ci) / (9 * taper)) ** 2 + ((j - 33) / (14 * taper)) ** 2 <= 1) data[idx(i, j, k)] = -850;
        }
      }
  if (opts.blobs !== false) {
    ball(32, 26, 20, 2, -450, 'heart');
    ball(22, 32, 5, 2, -450, 'liver');
  }
  // bowel gas under the left dome, one tissue slice (k = 10, 11) below the lung base at k = 12
  for (let k = 6; k <= 9; k++) for (let j = 28; j <= 40; j++) for (let i = 40; i <= 50; i++) data[idx(i, j, k)] = -1000;
  if (opts.blobs !== false) {
    ball(45, 34, 8, 2, -450, 'bowel');
    for (let k = 33; k < NZ; k++)
      for (let j = 2; j <= 9; j++)
        for (let i = 2; i <= 14; i++) {
          data[idx(i, j, k)] = -700;
          regions.outside[idx(i, j, k)] = 1;
        }
  }
  const affine = new Float64Array([-MM, 0, 0, 0, 0, -MM, 0, 0, 0, 0, MM, 0, 160, 160, -100, 1]);
  return { vol: { data, dims: [NX, NY, NZ], spacing: [MM, MM, MM], affine, space: 'RAS', source: { format: 'array', path: 'phantom', description: 'chest phantom with blobs', notes: [] } }, regions };
}

describe('post-processing and one gated map (CPU stand-in engine)', () => {
  it('body mask of a slice: the lungs inside (holes filled), outside air and a separate table outside', () => {
    const nx = 20;
    const ny = 16;
    const hu = new Float32Array(nx * ny).fill(-1000);
    for (let j = 2; j < 12; j++) for (let i = 2; i < 18; i++) hu[j * nx + i] = 40;
    for (let j = 4; j < 9; j++) for (let i = 4; i < 8; i++) hu[j * nx + i] = -850; // a lung: a hole in the body
    for (let i = 0; i < nx; i++) hu[14 * nx + i] = 300; // the table, apart from the body
    hu[2 * nx + 10] = -1000; // a notch open to the outside stays outside
    const body = new Uint8Array(nx * ny);
    bodyMaskSlice(hu, new SliceScratch(nx, ny), body);
    expect(body[5 * nx + 5]).toBe(1);
    expect(body[14 * nx + 5]).toBe(0);
    expect(body[0]).toBe(0);
    expect(body[2 * nx + 10]).toBe(0);
    expect(body[3 * nx + 10]).toBe(1);
  });

  it('blobs in the heart, the liver, bowel gas and air outside the body: none in the mask, the map, the report or the overlays', async () => {
    const { vol, regions } = phantom();
    const clean = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), phantom({ blobs: false }).vol);
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), vol);
    expect(validate(JSON.parse(JSON.stringify(r.report))), JSON.stringify(validate.errors)).toBe(true);
    // The stand-in's stage 1 marks every blob and the slab as lung: the post-processing is what removes them.
    const blobVoxels = (['heart', 'liver', 'bowel'] as Region[]).reduce((s, k) => s + regions[k].reduce((a, b) => a + b, 0), 0);
    const chest = r.report.patient.chest!;
    expect(chest.removedComponentVoxels).toBeGreaterThanOrEqual(blobVoxels);
    expect(chest.removedOutsideBodyVoxels).toBeGreaterThanOrEqual(regions.outside.reduce((a, b) => a + b, 0));
    for (const reg of ['heart', 'liver', 'bowel', 'outside'] as Region[])
      for (let i = 0; i < vol.data.length; i++)
        if (regions[reg][i]) {
          expect(r.lungMask[i], `${reg} voxel ${i} in the lung mask`).toBe(0);
          expect(r.infection[i], `${reg} voxel ${i} in the infection map`).toBe(0);
        }
    // No infected voxel outside the final lung mask; the report counts exactly the map's voxels above 0.5.
    let infected = 0;
    let lung = 0;
    for (let i = 0; i < vol.data.length; i++) {
      if (r.infection[i]) expect(r.lungMask[i], `infection outside the lung at ${i}`).toBe(1);
      if (r.lungMask[i]) lung++;
      if (r.infection[i]! > INFECTION_LEVELS / 2) infected++;
    }
    const p = r.report.patient;
    expect(p.chest!.isChest).toBe(true);
    expect(p.lungVolumeMl).toBeCloseTo((lung * MM ** 3) / 1000, 3);
    expect(p.infectedVolumeMl).toBeCloseTo((infected * MM ** 3) / 1000, 3);
    expect(p.lungInvolvementPct).toBeCloseTo((100 * infected) / lung, 3);
    expect(r.report.slices.reduce((s, x) => s + x.lungVoxels, 0)).toBe(lung);
    // The same as the phantom without blobs: nothing of theirs is left in any figure.
    expect(p.lungVolumeMl).toBeCloseTo(clean.report.patient.lungVolumeMl, 6);
    expect(p.lungInvolvementPct).toBeCloseTo(clean.report.patient.lungInvolvementPct!, 6);
    expect(Array.from(r.lungMask)).toEqual(Array.from(clean.lungMask));
    expect(Array.from(r.infection)).toEqual(Array.from(clean.infection));
    // infection.nii.gz and lung_mask.nii.gz as written.
    const files = await makeOutputFiles(r, { overlays: 3 });
    const inf = await readNifti(files.find((f) => f.name === 'infection.nii.gz')!.bytes, 'infection.nii.gz');
    const lm = await readNifti(files.find((f) => f.name === 'lung_mask.nii.gz')!.bytes, 'lung_mask.nii.gz');
    for (let i = 0; i < vol.data.length; i++) if (inf.data[i]! > 0) expect(lm.data[i]).toBe(1);
  });

  it('an abdomen (no lungs, bowel gas and blobs read as lung by stage 1): no class and no involvement, with the reason', async () => {
    const { vol } = phantom({ lungs: false });
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), vol);
    const p = r.report.patient;
    expect(validate(JSON.parse(JSON.stringify(r.report))), JSON.stringify(validate.errors)).toBe(true);
    expect(p.label).toBeNull();
    expect(p.probabilities).toBeNull();
    expect(p.lungInvolvementPct).toBeNull();
    expect(p.chest!.isChest).toBe(false);
    expect(p.reasons.label).toMatch(/^not a chest CT/);
  });

  it('the page reads "not a chest CT" and the reason from such a report (web/report-view.ts: the card title and text)', async () => {
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), phantom({ lungs: false }).vol);
    const v = readReport(JSON.parse(JSON.stringify(r.report)));
    expect(v.patient.found).toBe(false);
    if (!v.patient.found) {
      expect(v.patient.title).toBe('not a chest CT');
      expect(v.patient.message).toMatch(/^not a chest CT: no lungs found/);
    }
    const chest = readReport(JSON.parse(JSON.stringify((await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), phantom().vol)).report)));
    expect(chest.patient.found).toBe(true);
  });

  it('a scan that runs on into the abdomen: gas read as lung far below the lungs is dropped, a pocket just under them kept', async () => {
    // Lungs at k = 20..37; a 600-voxel box read as lung at k = 0..5 (70 mm below the lung base: a whole-body CT's
    // colon) and a 432-voxel one at k = 14..16 (within NEAR_ANCHORS_MM = 6 slices of 5 mm of the base: stomach or
    // splenic flexure, kept as before the rule). Both hold more than MIN_COMPONENT_FRACTION of the largest lung.
    const { vol } = phantom({ blobs: false, lungSlices: [20, 37] });
    const far = new Uint8Array(vol.data.length);
    const near = new Uint8Array(vol.data.length);
    const box = (k0: number, k1: number, i0: number, i1: number, j0: number, j1: number, mark: Uint8Array) => {
      for (let k = k0; k <= k1; k++)
        for (let j = j0; j <= j1; j++)
          for (let i = i0; i <= i1; i++) {
            vol.data[idx(i, j, k)] = -700;
            mark[idx(i, j, k)] = 1;
          }
    };
    box(0, 5, 40, 49, 28, 37, far);
    box(14, 16, 38, 49, 27, 38, near);
    expect(NEAR_ANCHORS_MM / MM).toBe(6);
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), vol);
    let farKept = 0;
    let nearKept = 0;
    let farCount = 0;
    for (let i = 0; i < vol.data.length; i++) {
      if (far[i]) {
        farCount++;
        farKept += r.lungMask[i]!;
      }
      if (near[i]) nearKept += r.lungMask[i]!;
    }
    expect(farKept, 'far gas voxels in the lung mask').toBe(0);
    expect(nearKept, 'the pocket under the lungs').toBe(432);
    expect(r.report.patient.chest!.removedComponentVoxels).toBeGreaterThanOrEqual(farCount);
    for (let i = 0; i < vol.data.length; i++) if (far[i]) expect(r.infection[i]).toBe(0);
    expect(r.report.patient.chest!.firstLungSlice).toBe(14);
  });

  it('gas far below the lungs but larger than each lung: the lungs stay (they set the range with it), nothing is dropped', async () => {
    const { vol } = phantom({ blobs: false, lungSlices: [28, 37] });
    let left = 0;
    let right = 0;
    for (let k = 0; k < NZ; k++) for (let j = 0; j < NY; j++) for (let i = 0; i < NX; i++) if (vol.data[idx(i, j, k)] === -850) (i < 32 ? left++ : right++);
    // A box of gas read as lung at k = 0..9, 1.2 times the larger lung (rows of 20 columns, the last row partial).
    const want = Math.round(1.2 * Math.max(left, right));
    let gas = 0;
    for (let k = 0; k <= 9 && gas < want; k++)
      for (let j = 24; j <= 40 && gas < want; j++)
        for (let i = 36; i <= 55 && gas < want; i++) {
          vol.data[idx(i, j, k)] = -700;
          gas++;
        }
    expect(gas).toBe(want);
    expect(Math.min(left, right)).toBeGreaterThanOrEqual(ANCHOR_FRACTION * gas);
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), vol);
    let kept = 0;
    for (let i = 0; i < vol.data.length; i++) kept += r.lungMask[i]!;
    expect(kept).toBe(left + right + gas);
    expect(r.report.patient.chest!.removedComponentVoxels).toBe(0);
  });

  it('lungs only at one end (an abdomen that starts at the lung bases): not a chest CT', async () => {
    const { vol } = phantom({ blobs: false, lungSlices: [NZ - 3, NZ - 1] });
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), vol);
    expect(r.report.patient.label).toBeNull();
    expect(r.report.patient.reasons.label).toMatch(/^not a chest CT/);
    expect(validate(JSON.parse(JSON.stringify(r.report))), JSON.stringify(validate.errors)).toBe(true);
  });

  it('the chest check on per-slice lung counts', () => {
    const px = 100 * 100;
    const lungs = (n: number, from: number, len: number) => Array.from({ length: n }, (_, z) => (z >= from && z < from + len ? 2000 : 0));
    // a chest: lungs over 40 of 50 slices of 5 mm
    expect(chestCoverage(lungs(50, 5, 40), px, 5, 3000).isChest).toBe(true);
    // no lungs
    expect(chestCoverage(lungs(50, 0, 0), px, 5, 0).reason).toMatch(/no lungs/);
    // a short stretch of lung
    expect(chestCoverage(lungs(50, 20, 5), px, 5, 900).reason).toMatch(new RegExp(`under ${MIN_LUNG_EXTENT_MM} mm`));
    // a sliver at the top end: 80 mm of a 400 mm scan
    expect(chestCoverage(lungs(80, 64, 16), px, 5, 900).reason).toMatch(/upper end/);
    // the same 80 mm are a chest CT when the scan is only 120 mm long (a limited chest CT)
    expect(chestCoverage(lungs(24, 8, 16), px, 5, 900).isChest).toBe(true);
    // a short slab through the chest (lung in every one of its 6 slices): a chest CT
    expect(chestCoverage(lungs(6, 0, 6), px, 8, 600).isChest).toBe(true);
    // slices under 1 % of lung do not count towards the extent
    expect(chestCoverage(Array.from({ length: 50 }, (_, z) => (z < 40 ? 50 : 0)), px, 5, 200).reason).toMatch(/no lungs/);
  });

  it('whole lungs or not: the lowest and highest slice against the largest lung slice (CUT_END_FRACTION)', () => {
    const px = 100 * 100;
    expect(CUT_END_FRACTION).toBe(0.25);
    // lungs that rise from the bases and fall to the apices inside a 50-slice scan (largest slice 2000 voxels)
    const shaped = (lower: number, upper: number) => Array.from({ length: 50 }, (_, z) => (z === 0 ? lower : z === 49 ? upper : z < 5 || z > 44 ? 200 : 2000));
    const whole = chestCoverage(shaped(0, 0), px, 5, 3000);
    expect(whole).toMatchObject({ isChest: true, lungsWhole: true, lowerEndFraction: 0, upperEndFraction: 0, cutReason: null });
    // just under a quarter at both ends: whole
    expect(chestCoverage(shaped(499, 499), px, 5, 3000)).toMatchObject({ lungsWhole: true, cutReason: null });
    // a quarter at the lowest slice: the bases are cut off
    const bases = chestCoverage(shaped(500, 0), px, 5, 3000);
    expect(bases).toMatchObject({ isChest: true, lungsWhole: false, lowerEndFraction: 0.25, upperEndFraction: 0 });
    expect(bases.cutReason).toMatch(/^no class: the lungs continue beyond the scan \(its lowest slice holds 25 % of the largest lung slice's lung: the bases are cut off; from 25 % the lungs are not whole\)/);
    // 81 % at the highest slice (a pancreas CT that starts in the middle of the chest): the apices are cut off
    const apices = chestCoverage(shaped(0, 1620), px, 5, 3000);
    expect(apices).toMatchObject({ lungsWhole: false, upperEndFraction: 0.81 });
    expect(apices.cutReason).toMatch(/its highest slice holds 81 % .*: the apices are cut off; from 25 %/);
    expect(apices.cutReason).not.toMatch(/bases/);
    // a short slab through the chest is a chest CT, and its lungs are cut at both ends
    const slab = chestCoverage(Array.from({ length: 6 }, () => 2000), px, 8, 600);
    expect(slab).toMatchObject({ isChest: true, lungsWhole: false });
    expect(slab.cutReason).toMatch(/lowest slice holds 100 %.*bases are cut off; its highest slice holds 100 %.*apices are cut off/);
    // "not a chest CT" comes first: a sliver at one end has cut lungs but no cutReason (its reason says why)
    const sliver = chestCoverage(Array.from({ length: 80 }, (_, z) => (z >= 64 ? 2000 : 0)), px, 5, 900);
    expect(sliver).toMatchObject({ isChest: false, lungsWhole: false, cutReason: null });
    // no lung voxel at all: nothing to say
    expect(chestCoverage(new Array(50).fill(0), px, 5, 0)).toMatchObject({ lungsWhole: null, lowerEndFraction: null, upperEndFraction: null, cutReason: null });
  });

  it('reads the axial view: the mask is gated per axial slice whatever the storage order', async () => {
    const { vol } = phantom();
    const r = await analyzeVolume(fakeEngine({ batch: 8, size: 64 }), vol);
    const g = axialGrid(vol);
    const s = new Uint8Array(NX * NY);
    let total = 0;
    for (let k = 0; k < NZ; k++) {
      readAxialSlice(g, r.lungMask, k, s);
      const n = s.reduce((a, b) => a + b, 0);
      expect(r.report.slices[k]!.lungVoxels).toBe(n);
      total += n;
    }
    expect(total).toBeGreaterThan(0);
  });
});
