// The patient answer's calibration and out-of-distribution check (src/analysis/calibration.ts): the metadata reader
// and its errors, the temperature, the OOD score against a plain computation, and through analyzeVolume with the CPU
// stand-in engine (test/analysis-fake.ts): a calibrated study gets the calibrated probabilities and its score, a
// study above the threshold gets no class with the reason in report.json (valid against the schema), the CLI summary
// and the page; weights without a calibration say so. Milliseconds. (The engine against PyTorch on a real volume:
// test/realct.test.ts.)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv from 'ajv';
import { describe, expect, it } from 'vitest';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { calibratedProbabilities, CALIBRATION_KEY, CalibrationError, decide, oodScore, readCalibration } from '../src/analysis/calibration.js';
import { chestPhantomVolume } from '../src/analysis/phantom.js';
import { summary } from '../src/cli/analyze.js';
import { readReport } from '../web/report-view.js';
import { fakeEngine } from './analysis-fake.js';

const schema = JSON.parse(readFileSync(join(__dirname, '../src/analysis/report.schema.json'), 'utf8'));
const validate = new Ajv({ allErrors: true, strict: true, strictRequired: false }).compile(schema);

/** A calibration for D features, K = 3 classes, d dims; seeded values. */
function calibrationJson(o: { D: number; d: number; threshold: number; temperature?: number; seed?: number }): Record<string, unknown> {
  let s = o.seed ?? 1;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
  return {
    version: 1,
    temperature: o.temperature ?? 2,
    ood: {
      dims: o.d,
      projection: Array.from({ length: o.d }, () => Array.from({ length: o.D }, rnd)),
      class_means: Array.from({ length: 3 }, () => Array.from({ length: o.d }, rnd)),
      threshold: o.threshold,
      quantile: 0.99,
    },
    validation: { studies: 106 },
  };
}
const meta = (c: unknown) => ({ 'covidct.source': 'trained', 'covidct.trained_on': 'test data', [CALIBRATION_KEY]: JSON.stringify(c) });

describe('calibration: reading and arithmetic', () => {
  it('reads a calibration and refuses malformed ones by name', () => {
    const c = readCalibration(meta(calibrationJson({ D: 8, d: 4, threshold: 1.5 })), 8, 3)!;
    expect(c.dims).toBe(4);
    expect(c.features).toBe(8);
    expect(c.threshold).toBe(1.5);
    expect(readCalibration({}, 8, 3)).toBeNull();
    const bad = (patch: (c: Record<string, any>) => void, re: RegExp, features = 8) => {
      const c = calibrationJson({ D: 8, d: 4, threshold: 1 }) as Record<string, any>;
      patch(c);
      expect(() => readCalibration(meta(c), features, 3)).toThrow(CalibrationError);
      expect(() => readCalibration(meta(c), features, 3)).toThrow(re);
    };
    bad((c) => (c.version = 2), /version 2/);
    bad((c) => (c.temperature = 0), /temperature must be > 0/);
    bad((c) => (c.temperature = 'x'), /temperature is not a finite number/);
    bad((c) => c.ood.projection.pop(), /projection must have 4 rows/);
    bad((c) => c.ood.projection[2].push(0), /projection row 2 must have 8 values/);
    bad((c) => (c.ood.class_means[1][0] = null), /class_means\[1\]\[0\] is not a finite number/);
    bad(() => undefined, /dims 4 must be an integer in 1..2/, 2);
    expect(() => readCalibration({ [CALIBRATION_KEY]: '{' }, 8, 3)).toThrow(/not JSON/);
  });

  it('the temperature divides the logits; the label does not change', () => {
    const l = [2, 0.5, -1];
    const p1 = calibratedProbabilities(l, 1);
    const p2 = calibratedProbabilities(l, 2);
    const e = l.map((v) => Math.exp(v / 2));
    const s = e.reduce((a, b) => a + b, 0);
    e.forEach((v, i) => expect(p2[i]).toBeCloseTo(v / s, 14));
    expect(p2[0]!).toBeLessThan(p1[0]!);
    expect(p2.indexOf(Math.max(...p2))).toBe(0);
  });

  it('the OOD score is min over classes of |W p - m_c|^2 / d', () => {
    const cj = calibrationJson({ D: 6, d: 3, threshold: 1 }) as { ood: { projection: number[][]; class_means: number[][] } };
    const c = readCalibration(meta(cj), 6, 3)!;
    const p = [0.3, -1.2, 0.8, 2.0, 0.1, -0.4];
    const z = cj.ood.projection.map((row) => row.reduce((s, w, j) => s + w * p[j]!, 0));
    const want = Math.min(...cj.ood.class_means.map((m) => m.reduce((s, v, i) => s + (z[i]! - v) ** 2, 0))) / 3;
    expect(oodScore(c, p)).toBeCloseTo(want, 12);
    // at a class mean's preimage the score is 0: p with W p = m_0 exists when d <= D; check monotonicity instead
    const far = p.map((v) => v * 100);
    expect(oodScore(c, far)).toBeGreaterThan(oodScore(c, p));
    const d = decide([1, 0, 0], p, c);
    expect(d.supported).toBe(oodScore(c, p) <= 1);
    expect(decide([1, 0, 0], p, null)).toMatchObject({ temperature: null, oodScore: null, supported: null });
    expect(() => oodScore(c, [1, 2])).toThrow(/2 features/);
  });
});

describe('calibration through analyzeVolume (CPU stand-in engine)', () => {
  // The phantom with coarse voxels (6 mm pixels, 10 mm slices) so that its lungs pass the chest check, and two
  // slices of body without lung above the apices and below the bases so that it shows the lungs whole.
  const px = 6;
  const dz = 10;
  const coarse = (o: { aboveApex: number; belowBase: number }) => {
    const slices = 30 + o.aboveApex + o.belowBase;
    return { ...chestPhantomVolume({ slices, height: 48, width: 48, ...o }), spacing: [px, px, dz] as [number, number, number], affine: new Float64Array([-px, 0, 0, 0, 0, -px, 0, 0, 0, 0, dz, 0, px * 24, px * 24, 0, 1]) };
  };
  const vol = coarse({ aboveApex: 2, belowBase: 2 });
  // The stand-in's embeddings are 4 values: pooled feature of 8.
  const run = (metadata?: Record<string, string>, v = vol) => analyzeVolume(fakeEngine({ batch: 4, size: 48, ...(metadata ? { metadata } : {}) }), v);

  it('supported: calibrated probabilities, their uncertainty, the score; schema 1.3 valid; CLI and page show it', async () => {
    const base = (await run()).report;
    const c = calibrationJson({ D: 8, d: 4, threshold: 1e9, temperature: 3 });
    const r = (await run(meta(c))).report;
    const p = r.patient;
    expect(r.schemaVersion).toBe('1.3.0');
    expect(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors)).toBe(true);
    expect(p.chest).toMatchObject({ isChest: true, lungsWhole: true, lowerEndLungFraction: 0, upperEndLungFraction: 0 });
    expect(p.support).toMatchObject({ calibrated: true, temperature: 3, oodThreshold: 1e9, supported: true });
    expect(p.support!.oodScore).toBeGreaterThan(0);
    // the stand-in's head gives log-probabilities as logits: calibrated = softmax(log p / 3)
    const raw = base.patient.probabilities!;
    const names = r.model.classNames;
    const want = calibratedProbabilities(names.map((n) => Math.log(raw[n]!)), 3);
    names.forEach((n, i) => expect(p.probabilities![n]).toBeCloseTo(want[i]!, 5));
    expect(p.label).toBe(base.patient.label);
    expect(p.uncertainty!).toBeGreaterThan(base.patient.uncertainty!);
    const text = summary({ report: r } as never, undefined, []);
    expect(text).toMatch(/calibrated, temperature 3\.00; out-of-distribution score [0-9.]+, supported up to 1000000000\.00/);
    const v = readReport(JSON.parse(JSON.stringify(r)));
    expect(v.patient.found && v.patient.support).toMatchObject({ temperature: 3, oodThreshold: 1e9 });
  });

  it('above the threshold: no class, no probabilities, no involvement, the reason in report.json, the CLI and the page', async () => {
    const c = calibrationJson({ D: 8, d: 4, threshold: 1e-9 });
    const r = (await run(meta(c))).report;
    const p = r.patient;
    expect(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors)).toBe(true);
    expect(p.lungFound).toBe(true);
    expect(p.chest!.isChest).toBe(true);
    expect(p.support!.supported).toBe(false);
    expect(p.label).toBeNull();
    expect(p.probabilities).toBeNull();
    expect(p.uncertainty).toBeNull();
    expect(p.lungInvolvementPct).toBeNull();
    expect(p.reasons.label).toMatch(/^no class: the scan lies outside what validation supports \(out-of-distribution score [0-9.]+ above 0\.000, the 99th percentile of 106 validation studies' scores\)/);
    expect(summary({ report: r } as never, undefined, [])).toMatch(/patient: no class: the scan lies outside what validation supports/);
    const v = readReport(JSON.parse(JSON.stringify(r)));
    expect(v.patient.found).toBe(false);
    if (!v.patient.found) {
      expect(v.patient.title).toBe('no class');
      expect(v.patient.message).toMatch(/^no class: the scan lies outside/);
    }
    // the schema refuses a report that gives a class while saying validation does not support it
    const forged = JSON.parse(JSON.stringify(r));
    forged.patient.label = 'COVID-19';
    expect(validate(forged)).toBe(false);
  });

  it('lungs that continue beyond the scan: no class whatever the score, the reason names the cut end, in report.json, the CLI and the page', async () => {
    const c = calibrationJson({ D: 8, d: 4, threshold: 1e9 }); // every score supported
    for (const [o, end] of [
      [{ aboveApex: 0, belowBase: 2 }, /its highest slice holds [0-9]+ % of the largest lung slice's lung: the apices are cut off; from 25 %/],
      [{ aboveApex: 2, belowBase: 0 }, /its lowest slice holds [0-9]+ % of the largest lung slice's lung: the bases are cut off; from 25 %/],
    ] as const) {
      const r = (await run(meta(c), coarse(o))).report;
      const p = r.patient;
      expect(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors)).toBe(true);
      expect(p.chest!.isChest).toBe(true);
      expect(p.chest!.lungsWhole).toBe(false);
      expect(Math.max(p.chest!.lowerEndLungFraction!, p.chest!.upperEndLungFraction!)).toBeGreaterThanOrEqual(0.25);
      expect(Math.min(p.chest!.lowerEndLungFraction!, p.chest!.upperEndLungFraction!)).toBe(0);
      // the out-of-distribution check ran and supports the study; the cut lungs alone withhold the class
      expect(p.support!.supported).toBe(true);
      expect(p.support!.oodScore).toBeGreaterThan(0);
      expect(p.lungFound).toBe(true);
      expect(p.label).toBeNull();
      expect(p.probabilities).toBeNull();
      expect(p.uncertainty).toBeNull();
      expect(p.lungInvolvementPct).toBeNull();
      expect(p.lungVolumeMl).toBeGreaterThan(0);
      expect(p.reasons.label).toMatch(/^no class: the lungs continue beyond the scan \(/);
      expect(p.reasons.label).toMatch(end);
      expect(summary({ report: r } as never, undefined, [])).toMatch(/patient: no class: the lungs continue beyond the scan/);
      const v = readReport(JSON.parse(JSON.stringify(r)));
      expect(v.patient.found).toBe(false);
      if (!v.patient.found) {
        expect(v.patient.title).toBe('no class');
        expect(v.patient.message).toMatch(/^no class: the lungs continue beyond the scan/);
      }
      // the schema refuses a report that gives a class for lungs it says are not whole
      const forged = JSON.parse(JSON.stringify(r));
      forged.patient.label = 'COVID-19';
      expect(validate(forged)).toBe(false);
    }
  });

  it('weights without a calibration: plain softmax, the report says why there is no OOD check', async () => {
    const r = (await run()).report;
    expect(validate(JSON.parse(JSON.stringify(r))), JSON.stringify(validate.errors)).toBe(true);
    expect(r.patient.support).toMatchObject({ calibrated: false, temperature: null, oodScore: null, supported: null });
    expect(r.patient.support!.reasons.supported).toMatch(/no covidct.calibration/);
    expect(typeof r.patient.label).toBe('string');
    expect(summary({ report: r } as never, undefined, [])).toMatch(/uncalibrated weights: no out-of-distribution check/);
  });

  it('a malformed calibration stops the analysis with a CalibrationError', async () => {
    const c = calibrationJson({ D: 8, d: 4, threshold: 1 }) as Record<string, any>;
    c.ood.class_means.pop();
    await expect(run(meta(c))).rejects.toThrow(/class_means must have 3 rows/);
  });
});
