// The engine's side of the trained weights' evaluation (issue 13): every study of a dataset folder (the layout of
// docs/training.md: <study>/scan.nii.gz, lung.nii.gz, infection.nii.gz, labels.csv, slice_labels.csv) through the
// path a user's scan takes (our NIfTI reader, analyzeVolume on the GPU), scored against the ground truth, and compared
// study by study with PyTorch's results on the same scans (the JSON of `weights/evaluate.py --json F --per-slice`).
//
//   npm run evaluate -- --weights weights/trained/synthetic-small.safetensors --data data/test \
//       --pytorch weights/trained/synthetic-small.eval.json [--json out.json] [--software[=lavapipe|swiftshader]]
//
// Metrics on the source grid (the masks the user gets; PyTorch's evaluate.py scores on the model grid, so Dice values
// differ a little between the two for that reason alone): lung Dice per study over the volume; infection Dice per study
// (report threshold) over studies with infection; slice accuracy over slices whose ground-truth lung covers >= 1 % of
// the source slice (evaluate.py: of the model-grid slice); patient accuracy (no lung found counts wrong).
// Parity with PyTorch: per study, the patient label and the patient probabilities' relative L2 difference against
// TOL = 1e-4 (the models' parity bound). Stage 1's mask is a threshold (lung probability > 0.5), so a pixel whose
// probability sits at 0.5 within float rounding can flip between the two, and stage 2 then sees a slightly different
// input: the summary counts the studies within TOL and those with an equal label, and the script exits 1 when a
// label differs.
//
// Real CT (issue 36; the PyTorch side is weights/evaluate_real.py --json, the same keys): the patient answer as the
// report gives it ("not a chest CT", "no lung found", "no class" where the lungs are not whole or validation does not support the study, else the
// class), the involvement against the inserted lesions' (the ground-truth masks on the source grid), the OOD score
// against PyTorch's (relative difference), and per true class the counts of weights/README.md "The classifier on
// real CT": right class, no class, COVID-19 or CAP calls, involvement under 1 % (no lesion) or within tolerance.
import { readFileSync, readdirSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { analyzeVolume } from '../src/analysis/analyze.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { createGpu } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { readNifti } from '../src/io/nifti.js';
import { nmse } from '../src/ops/random.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import { benchDriverMessages, softwareOrExit } from './driver.js';

const TOL = 1e-4;
const CLASSES = ['COVID-19', 'CAP', 'no infection'] as const;

const { values } = parseArgs({
  options: {
    weights: { type: 'string' },
    data: { type: 'string' },
    pytorch: { type: 'string' },
    json: { type: 'string' },
    software: { type: 'string' },
    batch: { type: 'string', default: '8' },
  },
});
if (!values.weights || !values.data) {
  console.error('usage: npm run evaluate -- --weights W.safetensors --data DATASET [--pytorch eval.json] [--json out.json] [--software[=driver]]');
  process.exit(2);
}
const software = softwareOrExit(values.software);

function csv(path: string): string[][] {
  return readFileSync(path, 'utf8').trim().split(/\r?\n/).slice(1).map((l) => l.split(','));
}
const labels = new Map(csv(join(values.data, 'labels.csv')).map(([s, l]) => [s!, l!]));
const sliceLabels = new Map<string, string[]>();
if (existsSync(join(values.data, 'slice_labels.csv')))
  for (const [s, k, l] of csv(join(values.data, 'slice_labels.csv'))) {
    const a = sliceLabels.get(s!) ?? [];
    a[Number(k)] = l!;
    sliceLabels.set(s!, a);
  }
interface TorchStudy { study: string; patient_probs: number[] | null; patient_pred: string; ood_score?: number | null }
const torch = values.pytorch ? new Map((JSON.parse(readFileSync(values.pytorch, 'utf8')) as { studies: TorchStudy[] }).studies.map((s) => [s.study, s])) : null;

const read = async (p: string) => readNifti(new Uint8Array(readFileSync(p)), p);
type Voxels = Uint8Array | Int16Array | Float32Array;
function dice(a: Voxels, b: Voxels): number {
  let inter = 0, sa = 0, sb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! > 0 ? 1 : 0, y = b[i]! > 0.5 ? 1 : 0;
    inter += x & y; sa += x; sb += y;
  }
  return sa + sb === 0 ? 1 : (2 * inter) / (sa + sb);
}

const gpu = await createGpu({ forceSoftware: software, driverMessages: benchDriverMessages });
const cache = new PipelineCache(gpu.device);
const file = parseSafetensors(readFileSync(values.weights), values.weights);
const engine = await TwoStageEngine.load(gpu, file, { batch: Number(values.batch), cache });
const studies = readdirSync(values.data).filter((d) => labels.has(d)).sort();
const rows: Record<string, unknown>[] = [];
const lungD: number[] = [], infD: number[] = [];
let sliceOk = 0, sliceN = 0, patientOk = 0, labelDiff = 0, withinTol = 0, worst = 0, worstOod = 0;
const confusion = CLASSES.map(() => CLASSES.map(() => 0));
const t0 = performance.now();
for (const s of studies) {
  const dir = join(values.data, s);
  const vol = await read(join(dir, 'scan.nii.gz'));
  const r = await analyzeVolume(engine, vol, { inputPath: join(dir, 'scan.nii.gz') });
  const rep = r.report;
  const pt = rep.patient;
  const pred = pt.label ?? (pt.chest && !pt.chest.isChest ? 'not a chest CT' : pt.support?.supported === false || pt.chest?.lungsWhole === false ? 'no class' : 'no lung found');
  const row: Record<string, unknown> = { study: s, label: labels.get(s), pred, probabilities: pt.probabilities, involvement_pct: pt.lungInvolvementPct, ood_score: pt.support?.oodScore ?? null, supported: pt.support?.supported ?? null };
  const [nx, ny, nz] = vol.dims;
  let gtLung: Voxels | null = null;
  if (existsSync(join(dir, 'lung.nii.gz'))) {
    const g = (await read(join(dir, 'lung.nii.gz'))).data;
    gtLung = g;
    row.lung_dice = dice(r.lungMask, g);
    lungD.push(row.lung_dice as number);
  }
  if (existsSync(join(dir, 'infection.nii.gz'))) {
    const gi = (await read(join(dir, 'infection.nii.gz'))).data;
    let any = false;
    for (let i = 0; i < gi.length; i++) if (gi[i]! > 0.5) { any = true; break; }
    // infected = probability above the report's threshold (the map holds probability x 255) inside our lung mask
    const thr = rep.model.thresholds.infection * 255;
    const inf = new Uint8Array(r.infection.length);
    for (let i = 0; i < inf.length; i++) inf[i] = r.lungMask[i]! && r.infection[i]! > thr ? 1 : 0;
    row.infection_dice = dice(inf, gi);
    if (any) infD.push(row.infection_dice as number);
    if (gtLung) {
      let l = 0, li = 0;
      for (let i = 0; i < gi.length; i++) if (gtLung[i]! > 0.5) { l++; if (gi[i]! > 0.5) li++; }
      row.inserted_involvement_pct = l ? (100 * li) / l : null;
    }
  }
  const sl = sliceLabels.get(s);
  if (sl && gtLung) {
    // slice_labels.csv and the ground truth count slices along the file's third axis; the report counts axial slices
    // from inferior to superior: the two agree when the file's k is the axial k (the generator's files are L,P,S).
    const g = r.grid;
    if (g.srcAxis[2] !== 2 || g.flip[2]) throw new Error(`${s}: the file's third axis is not the axial order (inferior to superior); per-slice scoring of such files is not implemented`);
    if (rep.slices.length !== nz) throw new Error(`${s}: ${rep.slices.length} report slices for ${nz} in the file`);
    for (let k = 0; k < nz; k++) {
      let area = 0;
      for (let i = 0; i < nx * ny; i++) area += gtLung[k * nx * ny + i]! > 0.5 ? 1 : 0;
      if (area < 0.01 * nx * ny) continue;
      sliceN++;
      if (rep.slices[k]!.label === sl[k]) sliceOk++;
    }
  }
  if (pred === labels.get(s)) patientOk++;
  const ti = CLASSES.indexOf(labels.get(s) as (typeof CLASSES)[number]);
  const pi = CLASSES.indexOf(rep.patient.label as (typeof CLASSES)[number]);
  if (ti >= 0 && pi >= 0) confusion[ti]![pi]!++;
  const ref = torch?.get(s);
  if (ref) {
    row.pytorch_pred = ref.patient_pred;
    if (ref.patient_probs && pt.probabilities) {
      const ours = CLASSES.map((c) => pt.probabilities![c]!);
      const d = Math.sqrt(nmse(new Float32Array(ours), new Float32Array(ref.patient_probs)));
      row.pytorch_relL2 = d;
      worst = Math.max(worst, d);
      if (d <= TOL) withinTol++;
    } else if (!ref.patient_probs && !pt.probabilities) withinTol++;
    if (typeof ref.ood_score === 'number' && typeof row.ood_score === 'number') {
      const d = Math.abs((row.ood_score as number) - ref.ood_score) / Math.max(1e-9, Math.abs(ref.ood_score));
      row.pytorch_ood_score = ref.ood_score;
      row.ood_score_rel_diff = d;
      worstOod = Math.max(worstOod, d);
    }
    if (ref.patient_pred !== row.pred) labelDiff++;
  }
  rows.push(row);
  process.stderr.write(`${s}: ${labels.get(s)} -> ${row.pred}, involvement ${row.involvement_pct ?? '-'}${row.inserted_involvement_pct != null ? ` (inserted ${(row.inserted_involvement_pct as number).toFixed(2)})` : ''}, OOD ${row.ood_score ?? '-'}${ref ? ` (PyTorch ${ref.patient_pred}${row.pytorch_relL2 !== undefined ? `, relL2 ${(row.pytorch_relL2 as number).toExponential(2)}` : ''})` : ''}\n`);
}
/** weights/README.md "The classifier on real CT": within +-50 % of the inserted involvement or 2 points. */
const withinTolerance = (m: unknown, ins: number) => typeof m === 'number' && Math.abs(m - ins) <= Math.max(2, 0.5 * ins);
/** Per true class, the counts of weights/evaluate_real.py's summary. */
function realSummary(rs: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const c of CLASSES) {
    const r = rs.filter((x) => x.label === c && x.pred !== 'not a chest CT');
    if (!r.length) continue;
    out[c] = {
      studies: r.length,
      right_class: r.filter((x) => x.pred === c).length,
      no_class: r.filter((x) => x.pred === 'no class').length,
      covid_or_cap_call: r.filter((x) => x.pred === 'COVID-19' || x.pred === 'CAP').length,
      ...(c === 'no infection'
        ? { involvement_under_1pct: r.filter((x) => typeof x.involvement_pct === 'number' && x.involvement_pct < 1).length }
        : { involvement_within_tolerance: r.filter((x) => typeof x.inserted_involvement_pct === 'number' && withinTolerance(x.involvement_pct, x.inserted_involvement_pct)).length }),
    };
  }
  return out;
}
const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : NaN);
const summary = {
  weights: values.weights,
  data: values.data,
  adapter: gpu.adapterName + (gpu.isSoftware ? ' (software)' : ''),
  studies: studies.length,
  lung_dice: mean(lungD),
  lung_dice_min: lungD.length ? Math.min(...lungD) : NaN,
  infection_dice: mean(infD),
  slice_accuracy: sliceN ? sliceOk / sliceN : NaN,
  patient_accuracy: patientOk / studies.length,
  patient_confusion: { classes: CLASSES, rows_true_columns_predicted: confusion },
  pytorch_parity: torch ? { tolerance_relL2: TOL, worst_relL2: worst, studies_within_tolerance: withinTol, studies_with_another_label: labelDiff, worst_ood_score_rel_diff: worstOod } : null,
  real_ct: realSummary(rows),
  seconds: (performance.now() - t0) / 1000,
};
engine.destroy();
console.log(JSON.stringify(summary, null, 1));
if (values.json) writeFileSync(values.json, JSON.stringify({ summary, studies: rows }, null, 1) + '\n');
process.exit(labelDiff ? 1 : 0);
