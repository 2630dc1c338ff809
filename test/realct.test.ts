// Real CT (samples/real, README there) with the committed weights, on the test adapter:
// - the engine gives PyTorch's lung mask on a real chest CT that no model file was trained on
//   (samples/real/chest-lung-pet-ct-dx.pytorch-lung.nii.gz and .expected.json, written by
//   weights/make_real_fixture.py from the reference model and weights/postprocess.py): the final masks may differ
//   only where the lung probability sits at the threshold (float32 sums in another order), at most 0.2 % of the
//   lung voxels; the chest check and the slices used are equal; Dice against the reviewed reference >= 0.95;
// - the same patient answer as PyTorch (issue 36): the class, or "no class" where validation does not support the
//   study, the calibrated probabilities within the models' parity bound (relative L2 <= 1e-4), the
//   out-of-distribution score within 1e-3 (relative, absolute below 1); on the scan as it is and on a copy with
//   CAP-like lesions inserted (weights/lesions.py through weights/make_real_fixture.py --make-cap), whose involvement
//   must also be PyTorch's within 0.5 percentage points;
// - lesion-like blobs (-450 HU) put into that scan's heart, liver and bowel gas under the left dome give no lung and
//   no infection there;
// - an abdomen-pelvis CT and a head CT through the built CLI (node dist/cli.js analyze): no class, "not a chest CT".
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeVolume, type AnalysisResult } from '../src/analysis/analyze.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { readNifti } from '../src/io/nifti.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import type { Volume } from '../src/volume/volume.js';
import { relL2, ROOT, TOL } from './fixtures.js';
import { testGpu } from './gpu.js';

const REAL = join(ROOT, 'samples', 'real');
const CHEST = join(REAL, 'chest-lung-pet-ct-dx.nii.gz');
const WEIGHTS = join(ROOT, 'weights', 'trained', 'synthetic-small.safetensors');
interface ExpectedPatient {
  label: string;
  probabilities: Record<string, number>;
  calibrated: boolean;
  ood_score: number | null;
  supported: boolean | null;
}
const expected = JSON.parse(readFileSync(join(REAL, 'chest-lung-pet-ct-dx.expected.json'), 'utf8')) as {
  weights_sha256: string;
  patient: ExpectedPatient;
  lung_voxels_per_slice: number[];
  infected_voxels_per_slice: number[];
  is_chest: boolean;
  slices_used: number;
  lung_ml: number;
  involvement_pct: number;
};

let engine: TwoStageEngine | undefined;
afterAll(() => engine?.destroy());

/** The built CLI, without blocking the test worker (a blocking spawn starves vitest's RPC on loaded machines). */
function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'dist/cli.js'), ...args], { encoding: 'utf8', cwd: ROOT, timeout: 240_000 }, (err, stdout, stderr) =>
      resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

/** The report's patient answer equals PyTorch's (see the file's header for the bounds). */
function expectSameAnswer(p: AnalysisResult['report']['patient'], e: ExpectedPatient): void {
  expect(p.label ?? (p.support?.supported === false ? 'no class' : null)).toBe(e.label);
  expect(p.support!.calibrated).toBe(e.calibrated);
  if (e.ood_score !== null) {
    expect(p.support!.supported).toBe(e.supported);
    expect(Math.abs(p.support!.oodScore! - e.ood_score), `OOD score ${p.support!.oodScore} vs PyTorch's ${e.ood_score}`).toBeLessThanOrEqual(1e-3 * Math.max(1, e.ood_score));
  }
  if (p.probabilities) {
    const names = Object.keys(e.probabilities);
    const ours = new Float32Array(names.map((n) => p.probabilities![n]!));
    expect(relL2(ours, new Float32Array(names.map((n) => e.probabilities[n]!)))).toBeLessThanOrEqual(TOL);
  }
}

async function load(path: string): Promise<Volume> {
  return readNifti(new Uint8Array(readFileSync(path)), path);
}

function dice(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let inter = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! > 0;
    const y = b[i]! > 0;
    if (x) sa++;
    if (y) sb++;
    if (x && y) inter++;
  }
  return sa + sb ? (2 * inter) / (sa + sb) : 1;
}

describe('real chest CT: the engine gives PyTorch masks', () => {
  let vol: Volume;
  let result: AnalysisResult;

  beforeAll(async () => {
    const bytes = readFileSync(WEIGHTS);
    const sha = createHash('sha256').update(bytes).digest('hex');
    if (sha !== expected.weights_sha256) throw new Error(`samples/real/chest-lung-pet-ct-dx.expected.json is stale (weights sha256 ${expected.weights_sha256.slice(0, 12)}, the file's ${sha.slice(0, 12)}): rerun /usr/bin/python3 weights/make_real_fixture.py`);
    const { gpu, cache } = await testGpu();
    engine = await TwoStageEngine.load(gpu, parseSafetensors(bytes, WEIGHTS), { batch: 6, cache });
    vol = await load(CHEST);
    result = await analyzeVolume(engine, vol, { inputPath: CHEST });
  });

  it('the same final lung mask, chest check and slices used as PyTorch, Dice >= 0.95 against the reviewed reference', async () => {
    const ref = await load(join(REAL, 'chest-lung-pet-ct-dx.pytorch-lung.nii.gz'));
    expect(ref.dims).toEqual(vol.dims);
    let lung = 0;
    let diff = 0;
    for (let i = 0; i < result.lungMask.length; i++) {
      if (ref.data[i]! > 0) lung++;
      if ((result.lungMask[i]! > 0) !== (ref.data[i]! > 0)) diff++;
    }
    expect(lung).toBeGreaterThan(10000);
    expect(diff, `${diff} of ${lung} lung voxels differ from PyTorch's mask`).toBeLessThanOrEqual(0.002 * lung);
    const p = result.report.patient;
    expect(p.chest!.isChest).toBe(expected.is_chest);
    expect(p.slicesUsed).toBe(expected.slices_used);
    result.report.slices.forEach((s, k) => expect(Math.abs(s.lungVoxels - expected.lung_voxels_per_slice[k]!), `slice ${k}`).toBeLessThanOrEqual(Math.max(3, 0.01 * expected.lung_voxels_per_slice[k]!)));
    expect(p.lungVolumeMl).toBeCloseTo(expected.lung_ml, -1);
    const reviewed = await load(join(REAL, 'chest-lung-pet-ct-dx.lung.nii.gz'));
    expect(dice(result.lungMask, reviewed.data)).toBeGreaterThanOrEqual(0.95);
  });

  it("the same patient answer as PyTorch (class or no class, calibrated probabilities, out-of-distribution score)", () => {
    expectSameAnswer(result.report.patient, expected.patient);
  });

  it('with CAP-like lesions inserted: the same answer and involvement as PyTorch', async () => {
    const cap = JSON.parse(readFileSync(join(REAL, 'chest-lung-pet-ct-dx-cap.expected.json'), 'utf8')) as { weights_sha256: string; patient: ExpectedPatient; involvement_pct: number; is_chest: boolean };
    expect(cap.weights_sha256, 'samples/real/chest-lung-pet-ct-dx-cap.expected.json is stale: rerun weights/make_real_fixture.py --make-cap').toBe(expected.weights_sha256);
    const r = await analyzeVolume(engine!, await load(join(REAL, 'chest-lung-pet-ct-dx-cap.nii.gz')));
    const p = r.report.patient;
    expect(p.chest!.isChest).toBe(cap.is_chest);
    expectSameAnswer(p, cap.patient);
    if (p.lungInvolvementPct !== null) expect(Math.abs(p.lungInvolvementPct - cap.involvement_pct)).toBeLessThanOrEqual(0.5);
  });

  it('no infected voxel outside the final lung mask', () => {
    for (let i = 0; i < result.infection.length; i++) if (result.infection[i]) expect(result.lungMask[i]).toBe(1);
  });

  it('lesion-like blobs in the heart, the liver and bowel gas next to the diaphragm: no lung, no infection there', async () => {
    const [nx, ny, nz] = vol.dims;
    const data = Int16Array.from(vol.data as Int16Array);
    const blob = new Uint8Array(data.length);
    // (i right -> left, j anterior -> posterior, k inferior -> superior): centres read off the scan (weights/README.md)
    const put = (ci: number, cj: number, ck: number, r: number) => {
      for (let k = ck - 1; k <= ck + 1; k++)
        for (let j = cj - r; j <= cj + r; j++)
          for (let i = ci - r; i <= ci + r; i++)
            if ((i - ci) ** 2 + (j - cj) ** 2 <= r * r && k >= 0 && k < nz) {
              const o = i + nx * (j + ny * k);
              data[o] = -450;
              blob[o] = 1;
            }
    };
    put(62, 48, 12, 4); // heart
    put(30, 52, 4, 4); // liver under the right dome
    put(80, 32, 2, 3); // gas in the bowel under the left dome
    const r = await analyzeVolume(engine!, { ...vol, data });
    let inBlob = 0;
    let infectedInBlob = 0;
    for (let i = 0; i < data.length; i++) {
      if (r.infection[i]) expect(r.lungMask[i]).toBe(1);
      if (!blob[i]) continue;
      if (r.lungMask[i]) inBlob++;
      if (r.infection[i]) infectedInBlob++;
    }
    expect(inBlob, 'blob voxels in the lung mask').toBe(0);
    expect(infectedInBlob, 'blob voxels in the infection map').toBe(0);
    expect(r.report.patient.chest!.isChest).toBe(true);
  });
});

describe('not a chest CT, through the built CLI', () => {
  const out = mkdtempSync(join(tmpdir(), 'covidct-realct-'));
  beforeAll(() => {
    execFileSync(process.execPath, ['build.mjs'], { cwd: ROOT, stdio: 'ignore' });
  }, 300_000);
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  for (const [name, file] of [
    ['an abdomen-pelvis CT', 'abdomen-pelvis.nii.gz'],
    ['a head CT', 'head.nii.gz'],
  ] as const)
    it(`${name}: no class, no involvement, "not a chest CT" in report.json and the summary`, async () => {
      const dir = join(out, file.replace('.nii.gz', ''));
      const r = await cli(['analyze', join(REAL, file), '--weights', WEIGHTS, '--out', dir]);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/patient: no class: not a chest CT/);
      const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
      expect(report.patient.label).toBeNull();
      expect(report.patient.probabilities).toBeNull();
      expect(report.patient.lungInvolvementPct).toBeNull();
      expect(report.patient.chest.isChest).toBe(false);
      expect(report.patient.reasons.label).toMatch(/^not a chest CT/);
    }, 300_000);

  it('the real chest CT through the same CLI: a chest, with a class', async () => {
    const dir = join(out, 'chest');
    const r = await cli(['analyze', CHEST, '--weights', WEIGHTS, '--out', dir]);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
    expect(report.patient.chest.isChest).toBe(true);
    expect(typeof report.patient.label).toBe('string');
  }, 300_000);
});
