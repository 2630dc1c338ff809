/**
 * The two-stage pipeline as graphs:
 *
 * - stage 1 ({@link buildStage1}): input `seg.input` [B, 3, H, W] (windowed slice, replicated, ImageNet-normalised;
 *   see src/analysis/preprocess.ts) -> outputs `lung_logits`, `lung_prob` [B, 1, H, W].
 * - between the stages (src/analysis/preprocess.ts): mask = lung_prob > lung_threshold, lung area, stage-2 input =
 *   normalise(window where mask else outside_mask_value).
 * - stage 2 ({@link buildStage2}): input `cls.input` [B, 3, H, W] -> outputs `infection_logits_s8` [B, 2, h8, w8],
 *   `infection_prob_s8` [B, 1, h8, w8], `infection_prob` [B, 1, H, W] (bilinear to the input size),
 *   `pooled` [B, Cf + C8] (v = concat(a, g)), `slice_embedding` [B, E], `slice_logits` [B, K].
 * - patient head ({@link buildPatientHead}, {@link runPatientHead}): per patient, over the slices whose lung area
 *   reaches lung_area_threshold, p = concat(mean(e), max(e)) on the CPU, then Linear-ReLU-Linear as a tiny graph
 *   (input `patient.pooled` [1, 2E], output `patient_logits` [1, K]) evaluated with the CPU references: it is a
 *   512 x 128 and a 128 x 3 matrix-vector product per patient, not worth a GPU round trip.
 *
 * - both stages as ONE graph ({@link buildTwoStage}), what the engine runs: input `windowed` [B, 1, H, W]; the
 *   normalisation and the masking run on the GPU (op slice_input), so a batch is one submission with one upload
 *   and one readback. Outputs: every output of both stages above, plus `cls.input` with intermediates.
 *
 * With `intermediates: true` every tap of the PyTorch reference (weights/README.md "Forward outputs and
 * intermediates") is also a graph output under the reference's name. Intermediates keep the fusion passes from
 * fusing through them only where a tap sits between two fusable ops; leave them off for inference.
 */
import { runGraphOnCpu } from '../graph/cpu.js';
import type { Tensor } from '../graph/ir.js';
import { ModelBuilder, type ModelGraph } from './builder.js';
import { addClassifier } from './classifier.js';
import { embeddingDim, type ModelConfig, type PreprocessConfig } from './config.js';
import { addGRUNet, type BuildOptions } from './grunet.js';

/** Batch and slice size of a stage graph. */
export interface StageShape extends BuildOptions {
  batch: number;
  height: number;
  width: number;
}

/** Stage 1 (GR-U-Net): `seg.input` -> `lung_logits`, `lung_prob`. */
export function buildStage1(cfg: ModelConfig, s: StageShape): ModelGraph {
  const m = new ModelBuilder();
  addStage1(m, m.b.input('seg.input', [s.batch, 3, s.height, s.width]), cfg, s);
  return m.finish();
}

/** Stage 2 (classifier): `cls.input` -> infection maps, pooled vector, slice embedding and logits. */
export function buildStage2(cfg: ModelConfig, s: StageShape): ModelGraph {
  const m = new ModelBuilder();
  addStage2(m, m.b.input('cls.input', [s.batch, 3, s.height, s.width]), cfg, s);
  return m.finish();
}

/**
 * Both stages as one graph: `windowed` [B, 1, H, W] (window in [0, 1], at the model size) -> every output of
 * {@link buildStage1} and {@link buildStage2}; the stage inputs are made on the GPU exactly as
 * src/analysis/preprocess.ts makes them on the CPU (normalise; mask = lung_prob > lung_threshold, then
 * maskedInput).
 */
export function buildTwoStage(cfg: ModelConfig, pre: PreprocessConfig, s: StageShape): ModelGraph {
  const m = new ModelBuilder();
  const w = m.b.input('windowed', [s.batch, 1, s.height, s.width]);
  const prob = addStage1(m, m.sliceInput(w, null, pre, 'seg.input'), cfg, s);
  const clsInput = m.sliceInput(w, prob, pre, 'cls.input');
  if (s.intermediates) m.output('cls.input', clsInput);
  addStage2(m, clsInput, cfg, s);
  return m.finish();
}

function addStage1(m: ModelBuilder, x: Tensor, cfg: ModelConfig, s: StageShape): Tensor {
  const logits = addGRUNet(m, x, cfg, s);
  m.output('lung_logits', logits);
  const prob = m.act(logits, 'sigmoid', 'lung_prob');
  m.output('lung_prob', prob);
  return prob;
}

function addStage2(m: ModelBuilder, x: Tensor, cfg: ModelConfig, s: StageShape): void {
  const c = addClassifier(m, x, cfg, s);
  m.output('infection_logits_s8', c.infectionLogits);
  m.output('infection_prob_s8', c.infectionProb);
  m.output('infection_prob', m.resize(c.infectionProb, [s.height, s.width], 'infection_prob'));
  m.output('pooled', c.pooled);
  m.output('slice_embedding', c.embedding);
  m.output('slice_logits', c.sliceLogits);
}

/** Patient head: `patient.pooled` [1, 2E] -> Linear(2E -> hidden)-ReLU-Linear(hidden -> K) -> `patient_logits`. */
export function buildPatientHead(cfg: ModelConfig): ModelGraph {
  const m = new ModelBuilder();
  const e = embeddingDim(cfg.cls);
  const x = m.b.input('patient.pooled', [1, 2 * e]);
  const h = m.act(m.linear(x, 'patient.fc1', cfg.cls.patient_hidden, { bias: true, hints: ['cls.patient_hidden', 'cls.slice_head_widths'] }), 'relu', 'patient.relu');
  m.output('patient_logits', m.linear(h, 'patient.fc2', cfg.cls.num_classes, { bias: true, hints: ['cls.num_classes', 'cls.patient_hidden'] }));
  return m.finish();
}

/** Per-patient result of {@link runPatientHead}; rows follow `ids` (sorted distinct patient ids). */
export interface PatientResult {
  ids: number[];
  /** [P, K] row-major; a row is NaN where no slice of that patient qualified. */
  logits: Float32Array;
  /** True where no slice of the patient had enough lung: the result is "no lung found", never a guess. */
  noLung: boolean[];
  slicesUsed: number[];
  /** p = concat(mean(e), max(e)) per patient with lung (absent for no-lung patients). */
  pooled: Map<number, Float32Array>;
}

/**
 * The patient head over a batch of slices.
 * @param head a loaded {@link buildPatientHead} graph.
 * @param embeddings slice embeddings [B, E] row-major (stage 2 `slice_embedding`).
 * @param used per slice: lung area >= lung_area_threshold (see {@link sliceUsed} in preprocess.ts).
 * @param patientIds per slice (default: all slices belong to patient 0).
 */
export function runPatientHead(head: ModelGraph, embeddings: Float32Array, used: ArrayLike<boolean>, patientIds?: ArrayLike<number>): PatientResult {
  const inT = head.graph.tensors[head.graph.inputs[0]!]!;
  const e = inT.shape[1]! / 2;
  const b = used.length;
  if (embeddings.length !== b * e) throw new Error(`runPatientHead: ${embeddings.length} embedding values for ${b} slices of size ${e}`);
  const pid = patientIds ? Array.from(patientIds) : new Array<number>(b).fill(0);
  if (pid.length !== b) throw new Error(`runPatientHead: ${pid.length} patient ids for ${b} slices`);
  const ids = [...new Set(pid)].sort((x, y) => x - y);
  const k = head.graph.tensors[head.graph.outputs.get('patient_logits')!]!.shape[1]!;
  const logits = new Float32Array(ids.length * k).fill(NaN);
  const noLung: boolean[] = [];
  const slicesUsed: number[] = [];
  const pooled = new Map<number, Float32Array>();
  ids.forEach((id, row) => {
    const sel: number[] = [];
    for (let i = 0; i < b; i++) if (pid[i] === id && used[i]) sel.push(i);
    slicesUsed.push(sel.length);
    noLung.push(sel.length === 0);
    if (!sel.length) return;
    const p = new Float32Array(2 * e);
    for (let j = 0; j < e; j++) {
      let sum = 0;
      let max = -Infinity;
      for (const i of sel) {
        const v = embeddings[i * e + j]!;
        sum += v;
        if (v > max) max = v;
      }
      p[j] = sum / sel.length;
      p[e + j] = max;
    }
    pooled.set(id, p);
    logits.set(runGraphOnCpu(head.graph, { 'patient.pooled': p }).patient_logits!, row * k);
  });
  return { ids, logits, noLung, slicesUsed, pooled };
}

/** The graphs of the pipeline plus the config they were built from. */
export interface Pipeline {
  config: ModelConfig;
  preprocess: PreprocessConfig;
  stage1: ModelGraph;
  stage2: ModelGraph;
  /** Both stages in one graph ({@link buildTwoStage}): what the engine compiles. */
  twoStage: ModelGraph;
  patient: ModelGraph;
}

/** Builds the graphs for a batch of slices of one size (weights unbound; see load.ts). */
export function buildPipeline(cfg: ModelConfig, preprocess: PreprocessConfig, s: StageShape): Pipeline {
  return {
    config: cfg,
    preprocess,
    stage1: buildStage1(cfg, s),
    stage2: buildStage2(cfg, s),
    twoStage: buildTwoStage(cfg, preprocess, s),
    patient: buildPatientHead(cfg),
  };
}
