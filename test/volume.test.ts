/**
 * Affine helpers and the axial view. axcodes against nibabel's aff2axcodes (recorded in the NIfTI fixtures'
 * expected.json by weights/make_scan_fixtures.py); toAxial checked by geometry, not by its own index arithmetic:
 * every voxel of the view must hold the value of the source voxel at the same point in mm (found through the
 * inverse of the source affine, to 1e-6 voxel), its orientation must be LPS, and toSource must undo it exactly.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNifti } from '../src/io/nifti.js';
import { affineFromRows, affineRows, axcodes, invertAffine, ioOrientation, lpsToRas, rasToLps, spacingOf, voxelToWorld, multiplyAffines } from '../src/volume/affine.js';
import { toAxial, AXIAL_AXCODES } from '../src/volume/orient.js';
import type { Volume } from '../src/volume/volume.js';

const DIR = join(import.meta.dirname, 'fixtures', 'scans', 'nifti');
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  good: Record<string, { affine: number[][]; axcodes: string; shape: number[] }>;
  axcodes_cases: { affine: number[][]; axcodes: string }[];
};
const load = (name: string) => readNifti(new Uint8Array(readFileSync(join(DIR, name))), name);

describe('affine helpers', () => {
  it("axcodes equals nibabel's aff2axcodes for every fixture affine", () => {
    const seen = new Set<string>();
    for (const [name, want] of Object.entries(expected.good)) {
      expect(axcodes(affineFromRows(want.affine)), name).toBe(want.axcodes);
      seen.add(want.axcodes);
    }
    // The fixtures span more than one orientation, or this test would prove little.
    for (const c of ['LAS', 'LIA', 'LPI', 'PIR', 'RAI', 'RAS']) expect(seen.has(c), c).toBe(true);
  });

  it("axcodes equals nibabel's for 120 random sheared affines (where the nearest-rotation step matters)", () => {
    expect(expected.axcodes_cases.length).toBe(120);
    const wrong = expected.axcodes_cases.filter((c) => axcodes(affineFromRows(c.affine)) !== c.axcodes);
    expect(wrong.map((c) => `${JSON.stringify(c.affine)}: ours ${axcodes(affineFromRows(c.affine))}, nibabel ${c.axcodes}`)).toEqual([]);
  });

  it('axcodes of an LPS affine names the same patient directions', () => {
    // A standard axial DICOM: i along +x (L), j along +y (P), k along +z (S), in LPS coordinates.
    const lps = affineFromRows([[0.7, 0, 0, -180], [0, 0.7, 0, -200], [0, 0, 2.5, 30]]);
    expect(axcodes(lps, 'LPS')).toBe('LPS');
    expect(axcodes(lpsToRas(lps), 'RAS')).toBe('LPS');
    expect(axcodes(lps, 'RAS')).toBe('RAS');
  });

  it('lpsToRas negates x and y rows and is its own inverse; spacingOf gives the column norms', () => {
    const a = affineFromRows([[0.6, 0.1, 0, 10], [0, 0.7, 0.2, -20], [0.05, 0, 2.5, 30]]);
    const r = lpsToRas(a);
    expect(affineRows(r).slice(0, 3).map((row) => row.map((v) => v + 0))).toEqual([[-0.6, -0.1, 0, -10], [0, -0.7, -0.2, 20], [0.05, 0, 2.5, 30]]);
    expect(Array.from(rasToLps(r))).toEqual(Array.from(a));
    const sp = spacingOf(a);
    expect(sp[0]).toBeCloseTo(Math.hypot(0.6, 0.05), 12);
    expect(sp[1]).toBeCloseTo(Math.hypot(0.1, 0.7), 12);
    expect(sp[2]).toBeCloseTo(Math.hypot(0.2, 2.5), 12);
    const id = multiplyAffines(a, invertAffine(a));
    for (let i = 0; i < 16; i++) expect(Math.abs(id[i]! - (i % 5 === 0 ? 1 : 0))).toBeLessThan(1e-12);
  });

  it("ioOrientation resolves near-ties one axis at a time as nibabel's io_orientation does", () => {
    // Columns 45 degrees between x and y: the first takes x, the second what is left (y).
    const s = Math.SQRT1_2;
    const o = ioOrientation(affineFromRows([[s, -s, 0, 0], [s, s, 0, 0], [0, 0, 1, 0]]));
    expect(o.map((x) => x && x.axis)).toEqual([0, 1, 2]);
  });
});

/** Checks a view geometrically against its source (see the file's doc). */
function checkView(src: Volume, name: string): void {
  const view = toAxial(src);
  const v = view.volume;
  expect(axcodes(v.affine, v.space), name).toBe(AXIAL_AXCODES);
  expect(v.dims.reduce((a, b) => a * b)).toBe(src.data.length);
  const inv = invertAffine(src.affine);
  const [nx, ny] = src.dims;
  const [nu, nv, nw] = v.dims;
  for (let w = 0; w < nw; w++)
    for (let j = 0; j < nv; j++)
      for (let i = 0; i < nu; i++) {
        const p = voxelToWorld(v.affine, i, j, w);
        const q = voxelToWorld(inv, p[0], p[1], p[2]);
        const idx = q.map((x) => Math.round(x));
        for (let k = 0; k < 3; k++) if (Math.abs(q[k]! - idx[k]!) > 1e-6) throw new Error(`${name}: view voxel ${i},${j},${w} maps to source ${q} (not a voxel)`);
        const got = v.data[i + nu * (j + nv * w)];
        const want = src.data[idx[0]! + nx * (idx[1]! + ny * idx[2]!)];
        if (got !== want) throw new Error(`${name}: view voxel ${i},${j},${w} holds ${got}, source voxel ${idx} holds ${want}`);
      }
  expect(v.spacing).toEqual(view.axes.map((a) => src.spacing[a]));
  // toSource undoes the view exactly, for the data and for any other array on the grid.
  const back = view.toSource(v.data);
  expect(back.constructor).toBe(src.data.constructor);
  expect(back.every((x, i) => x === src.data[i])).toBe(true);
  const mask = new Uint8Array(src.data.length).map((_, i) => (i * 31) % 7);
  const there = view.fromSource(mask);
  const again = view.toSource(there);
  expect(again).toBeInstanceOf(Uint8Array);
  expect(again.every((x, i) => x === mask[i])).toBe(true);
}

describe('toAxial', () => {
  for (const name of ['sagittal.nii', 'coronal.nii', 'ras.nii', 'lpi.nii', 'int16.nii', 'oblique.nii', 'qform_only_qfac.nii', 'nifti2_be_qform.nii', 'two_d.nii']) {
    it(`${name} (${expected.good[name]!.axcodes})`, async () => {
      const vol = await load(name);
      checkView(vol, name);
    });
  }

  it('permutes a sagittal volume: slices run inferior to superior, dims follow', async () => {
    const vol = await load('sagittal.nii'); // PIR: i anterior->posterior, j superior->inferior, k left->right
    const view = toAxial(vol);
    expect(view.sourceAxcodes).toBe('PIR');
    expect(view.axes).toEqual([2, 0, 1]);
    expect(view.flips).toEqual([true, false, true]);
    expect(view.volume.dims).toEqual([vol.dims[2], vol.dims[0], vol.dims[1]]);
    expect(view.identity).toBe(false);
  });

  it('an LPS-stored volume (a standard axial DICOM) is its own axial view: same object, no copy', () => {
    const data = new Int16Array(4 * 3 * 2).map((_, i) => i);
    const vol: Volume = {
      data,
      dims: [4, 3, 2],
      spacing: [0.7, 0.7, 2.5],
      affine: affineFromRows([[0.7, 0, 0, -180], [0, 0.7, 0, -200], [0, 0, 2.5, 30]]),
      space: 'LPS',
      source: { format: 'array', path: '', description: 'test', notes: [] },
    };
    const view = toAxial(vol);
    expect(view.identity).toBe(true);
    expect(view.volume).toBe(vol);
    expect(view.toSource(data)).toBe(data);
    // The same volume in RAS coordinates is also LPS-stored.
    const ras = toAxial({ ...vol, affine: lpsToRas(vol.affine), space: 'RAS' });
    expect(ras.identity).toBe(true);
    // Stored with rows flipped (LAS, as nibabel and dcm2niix usually write): j is flipped, nothing permuted.
    const las = toAxial({ ...vol, affine: affineFromRows([[-0.7, 0, 0, 90], [0, 0.7, 0, -100], [0, 0, 2.5, 30]]), space: 'RAS' });
    expect(las.axes).toEqual([0, 1, 2]);
    expect(las.flips).toEqual([false, true, false]);
    checkView({ ...vol, affine: affineFromRows([[-0.7, 0, 0, 90], [0, 0.7, 0, -100], [0, 0, 2.5, 30]]), space: 'RAS' }, 'LAS array');
  });

  it('every permutation and flip of the axes (48 orientations, synthetic 4 x 3 x 5 volumes)', () => {
    const perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    const seen = new Set<string>();
    for (const p of perms)
      for (let signs = 0; signs < 8; signs++) {
        // Voxel axis c runs along world axis p[c], negated where the bit of `signs` is set.
        const rows = [0, 1, 2].map((r) => [0, 1, 2].map((c) => (p[c] === r ? (signs >> c) & 1 ? -(c + 1) * 0.5 : (c + 1) * 0.5 : 0)).concat([10 * r - 7]));
        const vol: Volume = {
          data: new Float32Array(60).map((_, i) => i * 1.5 - 20),
          dims: [4, 3, 5],
          spacing: [0.5, 1, 1.5],
          affine: affineFromRows(rows),
          space: 'RAS',
          source: { format: 'array', path: '', description: '', notes: [] },
        };
        seen.add(axcodes(vol.affine));
        checkView(vol, axcodes(vol.affine));
      }
    expect(seen.size).toBe(48);
  });

  it('refuses an array that does not fit the grid', async () => {
    const view = toAxial(await load('sagittal.nii'));
    expect(() => view.toSource(new Uint8Array(5))).toThrow(/does not fit/);
  });
});
