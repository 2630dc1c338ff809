// The engine's side of the real 2-D slice check (issue 36; weights/slices2d.py is PyTorch's): the windowed slices
// that `weights/slices2d.py prepare` wrote (the images' grey levels mapped to HU with the lung window, padded to a
// square, windowed and resized as the engine's preprocessing does) through both stages on the GPU, exactly as
// analyzeVolume runs a batch (engine.runWindowed: stage 1's mask, stage 2 on the masked slice), and the slice head's
// COVID-19 probability scored against the labels: accuracy (COVID-19 the most probable class) and AUC, per set and
// pooled, on the engine subset PyTorch's JSON names (every 4th slice of each set), with PyTorch's figures on the same
// slices and the per-slice parity (relative L2 of the probabilities against TOL = 1e-4, the models' bound; labels
// equal). Exits 1 when a label differs.
//
//   npm run evaluate-slices -- --weights W.safetensors --slices data/slices2d-128.safetensors \
//       --pytorch slices2d.json [--json out.json] [--software[=lavapipe|swiftshader]] [--all]
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { createGpu } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { parseSafetensors } from '../src/io/safetensors.js';
import { nmse } from '../src/ops/random.js';
import { benchDriverMessages, softwareOrExit } from './driver.js';

const TOL = 1e-4;
const { values } = parseArgs({
  options: {
    weights: { type: 'string' },
    slices: { type: 'string' },
    pytorch: { type: 'string' },
    json: { type: 'string' },
    software: { type: 'string' },
    batch: { type: 'string', default: '16' },
    all: { type: 'boolean', default: false },
  },
});
if (!values.weights || !values.slices || !values.pytorch) {
  console.error('usage: npm run evaluate-slices -- --weights W.safetensors --slices S.safetensors --pytorch slices2d.json [--json out.json] [--software[=driver]] [--all]');
  process.exit(2);
}
const software = softwareOrExit(values.software);

interface TorchSlice { set: string; name: string; label: number; probs: number[]; used: boolean }
const torch = JSON.parse(readFileSync(values.pytorch, 'utf8')) as { per_slice: TorchSlice[]; engine_subset: { indices: number[] } };
const sfile = parseSafetensors(readFileSync(values.slices), values.slices);
const x = sfile.getF32('windowed');
const [n, , size] = sfile.info('windowed').shape as number[];
if (n !== torch.per_slice.length) throw new Error(`${values.slices}: ${n} slices, the PyTorch JSON has ${torch.per_slice.length}`);
const idx = values.all ? Array.from({ length: n }, (_, i) => i) : torch.engine_subset.indices;

const gpu = await createGpu({ forceSoftware: software, driverMessages: benchDriverMessages });
const cache = new PipelineCache(gpu.device);
const engine = await TwoStageEngine.load(gpu, parseSafetensors(readFileSync(values.weights), values.weights), { batch: Number(values.batch), cache });
if (engine.height !== size) throw new Error(`${values.slices}: slices of ${size} px, the model takes ${engine.height}`);
const hw = size! * size!;
const k = engine.config.cls.num_classes;
const probs: number[][] = [];
const used: boolean[] = [];
const t0 = performance.now();
for (let s = 0; s < idx.length; s += engine.batch) {
  const part = idx.slice(s, s + engine.batch);
  const w = new Float32Array(part.length * hw);
  part.forEach((i, b) => w.set(x.subarray(i * hw, (i + 1) * hw), b * hw));
  const r = await engine.runWindowed(w, { patientHead: false });
  part.forEach((_, b) => {
    probs.push(Array.from(r.slice_probs.subarray(b * k, (b + 1) * k)));
    used.push(r.slice_used[b]!);
  });
  if ((s / engine.batch) % 10 === 0) process.stderr.write(`${s + part.length}/${idx.length} slices\n`);
}
const seconds = (performance.now() - t0) / 1000;
engine.destroy();

function auc(score: number[], y: number[]): number {
  const pos = score.filter((_, i) => y[i] === 1);
  const neg = score.filter((_, i) => y[i] === 0);
  if (!pos.length || !neg.length) return NaN;
  let u = 0;
  for (const p of pos) for (const q of neg) u += p > q ? 1 : p === q ? 0.5 : 0;
  return u / (pos.length * neg.length);
}
function metrics(sel: number[], pr: number[][]): Record<string, number> {
  const y = sel.map((i) => torch.per_slice[idx[i]!]!.label);
  const pc = sel.map((i) => pr[i]![0]!);
  const pred = sel.map((i) => (pr[i]!.indexOf(Math.max(...pr[i]!)) === 0 ? 1 : 0));
  return { slices: sel.length, covid: y.filter((v) => v === 1).length, accuracy: pred.filter((p, j) => p === y[j]).length / sel.length, auc: auc(pc, y) };
}
const torchProbs = idx.map((i) => torch.per_slice[i]!.probs);
const sets = [...new Set(idx.map((i) => torch.per_slice[i]!.set))].sort();
const all = idx.map((_, j) => j);
const summary: Record<string, unknown> = {
  weights: values.weights,
  slices: values.slices,
  adapter: gpu.adapterName + (gpu.isSoftware ? ' (software)' : ''),
  evaluated: values.all ? 'all slices' : 'the engine subset of the PyTorch JSON (every 4th slice of each set)',
  engine: { pooled: metrics(all, probs), ...Object.fromEntries(sets.map((st) => [st, metrics(all.filter((j) => torch.per_slice[idx[j]!]!.set === st), probs)])) },
  pytorch_same_slices: { pooled: metrics(all, torchProbs), ...Object.fromEntries(sets.map((st) => [st, metrics(all.filter((j) => torch.per_slice[idx[j]!]!.set === st), torchProbs)])) },
  seconds,
};
let worst = 0;
let within = 0;
let labelDiff = 0;
let usedDiff = 0;
all.forEach((j) => {
  const d = Math.sqrt(nmse(new Float32Array(probs[j]!), new Float32Array(torchProbs[j]!)));
  worst = Math.max(worst, d);
  if (d <= TOL) within++;
  const a = probs[j]!.indexOf(Math.max(...probs[j]!));
  const b = torchProbs[j]!.indexOf(Math.max(...torchProbs[j]!));
  if (a !== b) labelDiff++;
  if (used[j] !== torch.per_slice[idx[j]!]!.used) usedDiff++;
});
summary.pytorch_parity = { tolerance_relL2: TOL, worst_relL2: worst, slices_within_tolerance: within, slices_with_another_label: labelDiff, slices_with_another_lung_decision: usedDiff };
console.log(JSON.stringify(summary, null, 1));
if (values.json) writeFileSync(values.json, JSON.stringify({ summary, per_slice: idx.map((i, j) => ({ index: i, probs: probs[j], used: used[j] })) }, null, 1) + '\n');
process.exit(labelDiff ? 1 : 0);
