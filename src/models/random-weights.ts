/**
 * Deterministic random weights for the bench, the tests and the embedded default of `covidct analyze`: the same generator as weights/make_fixtures.py (`weight_values`,
 * `recipes`): element i of tensor number `index` is `center + (k - 2^(bits-1)) * 2^-q` with k the top `bits`
 * bits of mix32(mix32(seed * 0x9E3779B1 + index * 0x85EBCA77) + i). Conv / Linear weights are uniform in +-2^-s
 * with 2^-s the power of two nearest sqrt(6 / fan_in) (half that for MBConv project convs), biases +-2^-s'
 * nearest 1 / sqrt(fan_in), BatchNorm weight 1 +- 0.25, bias and running_mean +- 0.125, running_var 1 +- 0.5.
 * (make_fixtures.py additionally calibrates each BN's running_var centre with a forward pass; this generator
 * keeps the uncalibrated centre 1.) test/bench.test.ts checks it against values printed by the Python generator,
 * and the parity tests rebuild the fixtures' weight files with `weightValues`.
 *
 * The tensors are serialised into an in-memory safetensors file and bound with the engine's own loader
 * (`bindWeights`), so the bench exercises the real loading path, derived weights included.
 */
import { serializeSafetensors, parseSafetensors, type SafetensorsFile, type TensorToWrite } from '../io/safetensors.js';
import type { ModelGraph } from './builder.js';
import { FORMAT_VERSION, type ModelConfig, type PreprocessConfig } from './config.js';
import { buildPipeline } from './pipeline.js';

/** `covidct.source` of generated weights. */
export const RANDOM_WEIGHTS_SOURCE = 'deterministic random weights, not trained: results are not a diagnosis';

function mix32(x: number): number {
  x >>>= 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b) >>> 0;
  x ^= x >>> 16;
  return x >>> 0;
}

/** make_fixtures.py `weight_values`. */
export function weightValues(seed: number, index: number, n: number, center: number, bits: number, q: number): Float32Array {
  const base = mix32((Math.imul(seed, 0x9e3779b1) + Math.imul(index, 0x85ebca77)) >>> 0);
  const half = 2 ** (bits - 1);
  const scale = 2 ** -q;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = center + ((mix32((base + i) >>> 0) >>> (32 - bits)) - half) * scale;
  return out;
}

/** Python's round(): halves go to the even neighbour (round(2.5) == 2). */
function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : f % 2 === 0 ? f : f + 1;
}

const pow2Exponent = (bound: number) => pyRound(-Math.log2(bound));
const prod = (s: readonly number[]) => s.reduce((a, d) => a * d, 1);

/** (center, bits, q) of every tensor, as make_fixtures.py `recipes` assigns them (from names and shapes). */
export function recipes(tensors: ReadonlyArray<{ name: string; shape: readonly number[] }>): Map<string, [number, number, number]> {
  const byName = new Map(tensors.map((t) => [t.name, t.shape]));
  const bnModules = new Set(tensors.filter((t) => t.name.endsWith('.running_var')).map((t) => t.name.slice(0, -'.running_var'.length)));
  // MBConv project conv = the last `block.<i>` of each MBConv (torchvision: block[-1][0]).
  const lastBlock = new Map<string, number>();
  for (const t of tensors) {
    const m = /^(.*\.block)\.(\d+)\./.exec(t.name);
    if (m) lastBlock.set(m[1]!, Math.max(lastBlock.get(m[1]!) ?? -1, Number(m[2])));
  }
  const isProject = (name: string) => {
    const m = /^(.*\.block)\.(\d+)\.0\.weight$/.exec(name);
    return !!m && lastBlock.get(m[1]!) === Number(m[2]);
  };
  const out = new Map<string, [number, number, number]>();
  for (const t of tensors) {
    const dot = t.name.lastIndexOf('.');
    const mod = t.name.slice(0, dot);
    const leaf = t.name.slice(dot + 1);
    if (bnModules.has(mod)) {
      out.set(t.name, leaf === 'weight' ? [1, 9, 10] : leaf === 'bias' ? [0, 9, 11] : leaf === 'running_mean' ? [0, 9, 11] : [1, 9, 9]);
    } else if (leaf === 'weight') {
      const fanIn = prod(t.shape.slice(1));
      out.set(t.name, [0, 11, 10 + pow2Exponent(Math.sqrt(6 / fanIn)) + (isProject(t.name) ? 1 : 0)]);
    } else if (leaf === 'bias') {
      const w = byName.get(`${mod}.weight`);
      const fanIn = w ? prod(w.slice(1)) : 1;
      out.set(t.name, [0, 8, 7 + pow2Exponent(1 / Math.sqrt(fanIn))]);
    } else {
      throw new Error(`bench weights: no recipe for ${t.name}`);
    }
  }
  return out;
}

/** Source tensors (state-dict name and shape) the graphs bind, first binding wins, in binding order. */
export function sourceTensors(models: ModelGraph[]): Array<{ name: string; shape: number[] }> {
  const seen = new Map<string, number[]>();
  for (const m of models) for (const w of m.weights) if (!seen.has(w.source)) seen.set(w.source, [...w.sourceShape]);
  return [...seen.entries()].map(([name, shape]) => ({ name, shape }));
}

/**
 * A safetensors file (in memory, F32) with deterministic random values for every tensor the graphs bind.
 * With `config`, the file carries the covidct metadata, so `TwoStageEngine.load` accepts it.
 */
export function randomWeightsFile(models: ModelGraph[], seed = 0, config?: { model: ModelConfig; preprocess: PreprocessConfig }): SafetensorsFile {
  const tensors = sourceTensors(models);
  const rec = recipes(tensors);
  const list: TensorToWrite[] = tensors.map((t, i) => {
    const [c, bits, q] = rec.get(t.name)!;
    return { name: t.name, dtype: 'F32', shape: t.shape, data: weightValues(seed, i, prod(t.shape), c, bits, q) };
  });
  const metadata: Record<string, string> = config
    ? {
        'covidct.format': FORMAT_VERSION,
        'covidct.config': JSON.stringify(config.model),
        'covidct.preprocess': JSON.stringify(config.preprocess),
        'covidct.dtype': 'f32',
        'covidct.source': `${RANDOM_WEIGHTS_SOURCE}, seed ${seed}`,
      }
    : { 'covidct.source': `${RANDOM_WEIGHTS_SOURCE}, seed ${seed}` };
  return parseSafetensors(serializeSafetensors(list, metadata), `random weights (seed ${seed})`);
}

/** A covidct weights file with deterministic random weights for the whole two-stage model of `config`. */
export function randomPipelineWeights(config: ModelConfig, preprocess: PreprocessConfig, seed = 1): SafetensorsFile {
  const p = buildPipeline(config, preprocess, { batch: 1, height: 32, width: 32 });
  return randomWeightsFile([p.stage1, p.stage2, p.patient], seed, { model: config, preprocess });
}
