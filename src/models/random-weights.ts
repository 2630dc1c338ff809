/**
 * Seeded random weights for any built-in model, as a covidct safetensors file: the embedded default of
 * `covidct analyze` and the bench use them when no trained weights are given. They exercise every kernel with
 * well-scaled activations (He-uniform convs and linears, BatchNorm near identity with non-trivial statistics);
 * they carry no medical knowledge, and the file's `covidct.source` says so.
 */
import { parseSafetensors, serializeSafetensors, type SafetensorsFile, type TensorToWrite } from '../io/safetensors.js';
import { mulberry32 } from '../ops/random.js';
import type { ModelGraph } from './builder.js';
import { FORMAT_VERSION, type ModelConfig, type PreprocessConfig } from './config.js';
import { buildPipeline } from './pipeline.js';

/** `covidct.source` of generated weights. */
export const RANDOM_WEIGHTS_SOURCE = 'random (seeded) weights: not trained, results are not a diagnosis';

/** Values for one source tensor, by the role its state-dict name and rank imply. */
function valuesFor(name: string, shape: readonly number[], rand: () => number): Float32Array {
  const n = shape.reduce((a, d) => a * d, 1);
  const out = new Float32Array(n);
  const u = (lo: number, hi: number) => lo + (hi - lo) * rand();
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  if (leaf === 'running_var') out.forEach((_, i) => (out[i] = u(0.5, 1.5)));
  else if (leaf === 'running_mean') out.forEach((_, i) => (out[i] = u(-0.1, 0.1)));
  else if (shape.length === 1 && leaf === 'weight') out.forEach((_, i) => (out[i] = u(0.75, 1.25)));
  else if (leaf === 'bias') out.forEach((_, i) => (out[i] = u(-0.1, 0.1)));
  else {
    const fanIn = shape.slice(1).reduce((a, d) => a * d, 1);
    const bound = Math.sqrt(6 / Math.max(1, fanIn));
    out.forEach((_, i) => (out[i] = u(-bound, bound)));
  }
  return out;
}

/** Generates every source tensor the given graphs bind, in a stable order. */
export function randomTensors(models: ModelGraph[], seed: number): TensorToWrite[] {
  const seen = new Map<string, readonly number[]>();
  for (const m of models) for (const w of m.weights) if (!seen.has(w.source)) seen.set(w.source, w.sourceShape);
  const rand = mulberry32(seed);
  return [...seen.entries()].map(([name, shape]) => ({ name, dtype: 'F32' as const, shape: [...shape], data: valuesFor(name, shape, rand) }));
}

/** A covidct weights file (config + preprocessing in the metadata) with seeded random weights. */
export function randomWeightsFile(config: ModelConfig, preprocess: PreprocessConfig, seed = 1): SafetensorsFile {
  const p = buildPipeline(config, preprocess, { batch: 1, height: 32, width: 32 });
  const bytes = serializeSafetensors(randomTensors([p.stage1, p.stage2, p.patient], seed), {
    'covidct.format': FORMAT_VERSION,
    'covidct.config': JSON.stringify(config),
    'covidct.preprocess': JSON.stringify(preprocess),
    'covidct.source': RANDOM_WEIGHTS_SOURCE,
  });
  return parseSafetensors(bytes, `random weights (seed ${seed})`);
}
