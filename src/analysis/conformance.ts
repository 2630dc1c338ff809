/**
 * The conformance runner behind `covidct run`: any built-in model on input tensors from a safetensors file,
 * returning its named outputs (and with `dump`, its named intermediates) so another framework can check them.
 *
 * Models and tensor names (docs/conformance.md lists them in full):
 * - `efficientnet_b0` .. `efficientnet_b7`: torchvision weights (a plain state dict), input `input` [N, 3, H, W];
 *   outputs `logits`; dump adds `features.0` .. `features.8`.
 * - `segmentation` (GR-U-Net, stage 1): covidct weights, input `seg.input` [N, 3, H, W]; outputs `lung_logits`,
 *   `lung_prob`; dump adds the reference's `seg.*` intermediates.
 * - `classifier` (stage 2): covidct weights, input `cls.input` [N, 3, H, W]; outputs `infection_logits_s8`,
 *   `infection_prob_s8`, `infection_prob`, `pooled`, `slice_embedding`, `slice_logits`; dump adds `cls.*`.
 * - `two_stage`: covidct weights, input `windowed` [N, 1, H, W] in [0, 1] at the model size, optional
 *   `lung_mask` [N, 1, H, W] (teacher forcing) and `patient_ids` [N]; outputs `lung_prob`, `lung_mask`,
 *   `lung_area`, `infection_prob`, `infected_fraction`, `slice_logits`, `slice_probs`, `slice_embedding`,
 *   `slice_used`, `patient_logits`, `patient_probs`, `patient_no_lung`, `patient_slices_used`.
 */
import type { GpuContext } from '../gpu/device.js';
import { PipelineCache } from '../gpu/pipelines.js';
import { compileGraph } from '../graph/executor.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import type { ModelGraph } from '../models/builder.js';
import { EFFICIENTNET_VARIANTS, efficientnet, type EfficientNetVariant } from '../models/efficientnet.js';
import { TwoStageEngine } from './engine.js';
import { bindWeights, readConfig } from '../models/load.js';
import { buildStage1, buildStage2 } from '../models/pipeline.js';

/** Models `covidct run` knows. */
export const CONFORMANCE_MODELS = [...EFFICIENTNET_VARIANTS, 'segmentation', 'classifier', 'two_stage'] as const;

/** A named output tensor. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Raised for a wrong model name or missing/mis-shaped input tensors. */
export class ConformanceError extends Error {
  override name = 'ConformanceError';
}

function input4(inputs: SafetensorsFile, name: string, channels: number): { data: Float32Array; shape: [number, number, number, number] } {
  if (!inputs.has(name)) throw new ConformanceError(`${inputs.name}: missing input tensor '${name}' (has: ${inputs.names().join(', ') || 'none'})`);
  const info = inputs.info(name);
  const s = info.shape;
  if (s.length !== 4 || s[1] !== channels || s.some((d) => d < 1))
    throw new ConformanceError(`${inputs.name}: input '${name}' must be [N, ${channels}, H, W], got [${s.join(', ')}]`);
  return { data: inputs.getF32(name), shape: [s[0]!, s[1]!, s[2]!, s[3]!] };
}

/**
 * Runs `model` with `weights` on `inputs` and returns named output tensors in a stable order.
 * @param dump also return the named intermediates.
 */
export async function runConformance(
  gpu: GpuContext,
  model: string,
  weights: SafetensorsFile,
  inputs: SafetensorsFile,
  opts: { dump?: boolean; cache?: PipelineCache } = {},
): Promise<{ tensors: NamedTensor[]; adapter: string }> {
  const cache = opts.cache ?? new PipelineCache(gpu.device);
  const dump = !!opts.dump;
  const runGraph = async (mg: ModelGraph, inputName: string, x: Float32Array) => {
    const compiled = await compileGraph(gpu, mg.graph, { cache });
    try {
      const r = await compiled.run({ [inputName]: x });
      const tensors = [...mg.graph.outputs.entries()].map(([name, id]) => ({ name, shape: [...mg.graph.tensors[id]!.shape], data: r.outputs[name]! }));
      return { tensors, adapter: r.adapter };
    } finally {
      compiled.destroy();
    }
  };
  if ((EFFICIENTNET_VARIANTS as readonly string[]).includes(model)) {
    const x = input4(inputs, 'input', 3);
    const mg = efficientnet(model as EfficientNetVariant, { batch: x.shape[0], height: x.shape[2], width: x.shape[3], intermediates: dump });
    bindWeights(weights, mg);
    return runGraph(mg, 'input', x.data);
  }
  if (model === 'segmentation' || model === 'classifier') {
    const { config } = readConfig(weights);
    const name = model === 'segmentation' ? 'seg.input' : 'cls.input';
    const x = input4(inputs, name, 3);
    const shape = { batch: x.shape[0], height: x.shape[2], width: x.shape[3], intermediates: dump };
    const mg = model === 'segmentation' ? buildStage1(config, shape) : buildStage2(config, shape);
    bindWeights(weights, mg, { allowUnexpected: true });
    return runGraph(mg, name, x.data);
  }
  if (model === 'two_stage') {
    const x = input4(inputs, 'windowed', 1);
    const [n, , h, w] = x.shape;
    const mask = inputs.has('lung_mask') ? input4(inputs, 'lung_mask', 1) : undefined;
    if (mask && mask.shape.some((d, i) => d !== x.shape[i])) throw new ConformanceError(`lung_mask [${mask.shape.join(', ')}] must match windowed [${x.shape.join(', ')}]`);
    let patientIds: Float32Array | undefined;
    if (inputs.has('patient_ids')) {
      patientIds = inputs.getF32('patient_ids');
      if (patientIds.length !== n) throw new ConformanceError(`patient_ids has ${patientIds.length} values for ${n} slices`);
    }
    const engine = await TwoStageEngine.load(gpu, weights, { batch: n, height: h, width: w, cache, intermediates: dump });
    try {
      const r = await engine.runWindowed(x.data, { ...(mask ? { lungMask: mask.data } : {}), ...(patientIds ? { patientIds } : {}) });
      const k = engine.config.cls.num_classes;
      const p = r.patient_ids.length;
      const e = r.slice_embedding.length / n;
      const t = (name: string, shape: number[], data: Float32Array | ArrayLike<number>): NamedTensor => ({ name, shape, data: data instanceof Float32Array ? data : Float32Array.from(data) });
      const tensors: NamedTensor[] = [
        t('lung_prob', [n, 1, h, w], r.lung_prob),
        t('lung_mask', [n, 1, h, w], r.lung_mask),
        t('lung_area', [n], r.lung_area),
        t('infection_prob', [n, 1, h, w], r.infection_prob),
        t('infected_fraction', [n], r.infected_fraction),
        t('slice_logits', [n, k], r.slice_logits),
        t('slice_probs', [n, k], r.slice_probs),
        t('slice_embedding', [n, e], r.slice_embedding),
        t('slice_used', [n], r.slice_used.map(Number)),
        t('patient_ids', [p], r.patient_ids),
        t('patient_logits', [p, k], r.patient_logits),
        t('patient_probs', [p, k], r.patient_probs),
        t('patient_no_lung', [p], r.patient_no_lung.map(Number)),
        t('patient_slices_used', [p], r.patient_slices_used),
      ];
      if (r.intermediates) {
        const shapes = new Map<string, number[]>();
        const g = engine.pipeline.twoStage.graph;
        for (const [name, id] of g.outputs) shapes.set(name, [n, ...g.tensors[id]!.shape.slice(1)]);
        for (const [name, data] of Object.entries(r.intermediates)) if (!tensors.some((x) => x.name === name)) tensors.push(t(name, shapes.get(name) ?? [data.length], data));
      }
      return { tensors, adapter: r.adapter };
    } finally {
      engine.destroy();
    }
  }
  throw new ConformanceError(`unknown model '${model}'; choose one of ${CONFORMANCE_MODELS.join(', ')}`);
}
