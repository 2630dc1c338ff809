// The main job's input: the committed synthetic study (samples/synthetic-covid.nii.gz) with the committed trained
// weights (weights/trained/synthetic-small.safetensors), through exactly the path `npm start` takes (the NIfTI reader,
// analyzeVolume on the GPU), against what PyTorch gives for the same file and weights
// (samples/synthetic-covid.expected.json, written by weights/make_sample.py from the reference model).
//
// Stated tolerances:
// - class probabilities (patient and per slice): relative L2 <= TOL (1e-4), the parity bound of every model test;
//   the label and the slices used must be equal. The patient probabilities are the calibrated ones (the weights'
//   covidct.calibration, src/analysis/calibration.ts); the out-of-distribution score within 1e-3 of PyTorch's
//   (relative, or absolute below 1) and the same "supported" decision; a study PyTorch gives no class gets none.
// - lung area per slice: PyTorch's final mask (weights/postprocess.py: the probability brought back to the source
//   grid, thresholded and post-processed as the engine does) against the report's lung voxels; float32 sums in
//   another order can only move pixels whose probability sits at the threshold, at the mask's edge. So on every slice
//   the two counts must differ by at most the number of edge voxels of our mask (lung voxels with a 4-neighbour
//   outside the lung), and both be zero on slices without lung.
import { defaultWeights } from '../src/node/default-weights.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { analyzeVolume, type AnalysisResult } from '../src/analysis/analyze.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { readNifti } from '../src/io/nifti.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import { relL2, ROOT, TOL } from './fixtures.js';
import { testGpu } from './gpu.js';

const SAMPLE = join(ROOT, 'samples', 'synthetic-covid.nii.gz');
const WEIGHTS = defaultWeights().path;
const expected = JSON.parse(readFileSync(join(ROOT, 'samples', 'synthetic-covid.expected.json'), 'utf8')) as {
  patient: { label: string; probabilities: Record<string, number>; calibrated: boolean; ood_score: number | null; supported: boolean | null };
  per_slice: { lung_area_fraction: number[]; used: boolean[]; slice_probabilities: number[][]; final_lung_voxels: number[] };
  final: { involvement_pct: number; is_chest: boolean };
  model_grid: string;
};

let engine: TwoStageEngine | undefined;
afterAll(() => engine?.destroy());

describe('the committed sample with the trained weights', () => {
  let result: AnalysisResult;

  it('runs through the NIfTI reader and both stages', async () => {
    const { gpu, cache } = await testGpu();
    const volume = await readNifti(new Uint8Array(readFileSync(SAMPLE)), SAMPLE);
    // readFileSync's Buffer, as the CLI passes it (a pooled Buffer once broke the f16 weights).
    const file = parseSafetensors(readFileSync(WEIGHTS), WEIGHTS);
    engine = await TwoStageEngine.load(gpu, file, { batch: 5, cache });
    result = await analyzeVolume(engine, volume, { inputPath: SAMPLE });
    expect(result.report.slices.length).toBe(expected.per_slice.used.length);
    expect(result.report.notice).toMatch(/synthetic/);
  });

  it('gives the class and probabilities PyTorch gives', () => {
    const p = result.report.patient;
    const names = Object.keys(expected.patient.probabilities);
    expect(p.label ?? (p.support?.supported === false ? 'no class' : null)).toBe(expected.patient.label);
    expect(p.support!.calibrated).toBe(expected.patient.calibrated);
    if (expected.patient.ood_score !== null) {
      expect(Math.abs(p.support!.oodScore! - expected.patient.ood_score)).toBeLessThanOrEqual(1e-3 * Math.max(1, expected.patient.ood_score));
      expect(p.support!.supported).toBe(expected.patient.supported);
    }
    if (p.probabilities) {
      const ours = new Float32Array(names.map((n) => p.probabilities![n]!));
      const ref = new Float32Array(names.map((n) => expected.patient.probabilities[n]!));
      expect(relL2(ours, ref)).toBeLessThanOrEqual(TOL);
    }
    const slices = result.report.slices;
    expect(slices.map((s) => s.used)).toEqual(expected.per_slice.used);
    const ourSlices = new Float32Array(slices.flatMap((s) => names.map((n) => s.probabilities![n]!)));
    expect(relL2(ourSlices, new Float32Array(expected.per_slice.slice_probabilities.flat()))).toBeLessThanOrEqual(TOL);
  });

  it('finds the lung area PyTorch finds on every slice', () => {
    const [nx, ny] = result.volume.dims;
    const m = result.lungMask;
    const at = (x: number, y: number, k: number) => (x < 0 || y < 0 || x >= nx || y >= ny ? 0 : m[x + nx * (y + ny * k)]!);
    let withLung = 0;
    result.report.slices.forEach((s, k) => {
      // PyTorch's final mask (weights/postprocess.py: brought back to the source grid and post-processed as the
      // engine does), so only pixels at the threshold can differ
      const ref = expected.per_slice.final_lung_voxels[k]!;
      let edge = 0;
      for (let y = 0; y < ny; y++)
        for (let x = 0; x < nx; x++)
          if (at(x, y, k) && !(at(x - 1, y, k) && at(x + 1, y, k) && at(x, y - 1, k) && at(x, y + 1, k))) edge++;
      if (ref === 0) expect(s.lungVoxels, `slice ${k}`).toBe(0);
      else {
        withLung++;
        expect(Math.abs(s.lungVoxels - ref), `slice ${k}: ${s.lungVoxels} voxels vs PyTorch's ${ref}, ${edge} edge voxels`).toBeLessThanOrEqual(edge);
      }
    });
    expect(withLung).toBeGreaterThan(0);
  });
});
