// A CPU stand-in for the two-stage engine (the AnalysisEngine interface of src/analysis/analyze.ts), so the
// analysis logic (grids, resizes, masks, report, files) is tested in milliseconds without compiling shaders:
// lung where the windowed value is aerated lung (-950..-400 HU), infection probability 0.9 where it is above
// -600 HU inside that range, else 0.1; slice probabilities from the lung fraction; a patient head that averages.
import type { AnalysisEngine } from '../src/analysis/analyze.js';
import { defaultPreprocessConfig, tinyModelConfig, type PreprocessConfig } from '../src/models/config.js';

export function fakeEngine(opts: { batch?: number; size?: number; pre?: Partial<PreprocessConfig>; metadata?: Record<string, string> } = {}): AnalysisEngine & { calls: number } {
  const pre = { ...defaultPreprocessConfig(), ...opts.pre };
  const config = tinyModelConfig();
  const size = opts.size ?? 32;
  const batch = opts.batch ?? 2;
  const k = config.cls.num_classes;
  const w = (hu: number) => (hu - pre.window_min) / (pre.window_max - pre.window_min);
  const e = 4;
  const eng = {
    calls: 0,
    preprocess: pre,
    config,
    height: size,
    width: size,
    batch,
    gpu: { adapterName: 'fake CPU engine', isSoftware: true },
    weights: { name: 'fake.safetensors', metadata: opts.metadata ?? { 'covidct.source': 'deterministic random weights, not trained' } },
    async runWindowed(windowed: Float32Array) {
      eng.calls++;
      const hw = size * size;
      const n = windowed.length / hw;
      const lung_prob = new Float32Array(n * hw);
      const infection_prob = new Float32Array(n * hw);
      const slice_probs = new Float32Array(n * k);
      const slice_embedding = new Float32Array(n * e);
      const slice_used: boolean[] = [];
      for (let b = 0; b < n; b++) {
        let lung = 0;
        for (let i = 0; i < hw; i++) {
          const v = windowed[b * hw + i]!;
          const inLung = v >= w(-950) && v <= w(-400);
          lung_prob[b * hw + i] = inLung ? 0.95 : 0.02;
          infection_prob[b * hw + i] = inLung && v > w(-600) ? 0.9 : 0.1;
          lung += inLung ? 1 : 0;
        }
        const a = lung / hw;
        slice_used.push(a >= pre.lung_area_threshold);
        slice_probs.set([a / 2, a / 4, 1 - (3 * a) / 4], b * k);
        slice_embedding.set([a, 1 - a, 0.5, b], b * e);
      }
      return { lung_prob, infection_prob, slice_probs, slice_embedding, slice_used };
    },
    patientHead(emb: Float32Array, used: readonly boolean[]) {
      const sel = used.flatMap((u, i) => (u ? [i] : []));
      if (!sel.length) return null;
      const a = sel.reduce((s, i) => s + emb[i * e]!, 0) / sel.length;
      const probs = Float32Array.from([a / 2, a / 4, 1 - (3 * a) / 4]);
      const pooled = new Float32Array(2 * e).fill(-Infinity);
      for (let j = 0; j < e; j++) {
        pooled[j] = sel.reduce((s, i) => s + emb[i * e + j]!, 0) / sel.length;
        for (const i of sel) pooled[e + j] = Math.max(pooled[e + j]!, emb[i * e + j]!);
      }
      return { logits: probs.map(Math.log), probs, pooled, slicesUsed: sel.length };
    },
  };
  return eng;
}
