/**
 * The two-stage pipeline on the GPU: stage 1 (GR-U-Net) -> lung mask and stage-2 input -> stage 2 (classifier),
 * compiled as ONE graph (pipeline.ts buildTwoStage: the normalisation and masking run on the GPU), so a batch is
 * one upload of the windowed slices, one submission and one readback; then the patient head on the CPU. The graph
 * is compiled once for a batch size and slice size; a volume with more slices runs in chunks (the last chunk
 * padded with empty slices whose results are dropped). A teacher-forced lung mask (conformance runs) needs stage 2
 * alone: that graph is compiled the first time one is given.
 *
 * The engine gives the per-slice outputs of MODEL.md "Outputs the engine reports" ({@link TwoStageEngine.runWindowed})
 * and the patient head ({@link TwoStageEngine.patientHead}); a scan's report (windowing, volumes on the source grid,
 * the patient result) is made by analyzeVolume (analyze.ts), the one path from a Volume to a report. With random
 * weights the numbers demonstrate the engine, not a diagnosis: the result carries the weights' source.
 */
import { defaultTilePolicy, type TilePolicy } from '../gpu/caps.js';
import type { GpuContext } from '../gpu/device.js';
import { PipelineCache } from '../gpu/pipelines.js';
import { CompiledGraph, compileGraph } from '../graph/executor.js';
import { compileProgram } from '../graph/compile.js';
import { GpuLimitError } from '../gpu/limits.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import { embeddingDim, type ModelConfig, type PreprocessConfig } from '../models/config.js';
import { loadPipeline, readConfig } from '../models/load.js';
import { runPatientHead, type Pipeline } from '../models/pipeline.js';
import { maskedInput, sliceUsed } from './preprocess.js';
import { readCalibration } from './calibration.js';

/** The smallest model input size (height and width) the engine takes. */
export const MIN_INPUT_SIZE = 8;

/** Options of {@link TwoStageEngine.load}. */
export interface EngineOptions {
  /**
   * Slices per GPU batch (default 4), or 'auto': the largest batch up to `maxBatch` whose buffers fit the device's
   * limits (maxBufferSize, maxStorageBufferBindingSize) and that the device can allocate. A fixed batch that does
   * not fit is refused with a GpuLimitError naming the limit and the largest batch that fits.
   */
  batch?: number | 'auto';
  /** The largest batch 'auto' tries (default 16). */
  maxBatch?: number;
  /** Model input size (default the config's input_size, square). */
  height?: number;
  width?: number;
  /** Share pipelines with other graphs on the device. */
  cache?: PipelineCache;
  /** Also return the reference's named intermediates (slower: some fusions are kept apart). */
  intermediates?: boolean;
  /** 'f16': pointwise convolutions with f16 operands on the matrix units, where the adapter has them (executor CompileOptions.precision); refused with a GraphError elsewhere. */
  precision?: 'f32' | 'f16';
  /** Activation storage (executor CompileOptions.storage): 'f16' keeps activations as packed f16 where the ops can, on any adapter. Default: the precision. */
  storage?: 'f32' | 'f16';
  /** Tile policy of the conv2d and depthwise kernels (executor CompileOptions.tiles; default: 'software' on a software adapter, else 'auto'). */
  tiles?: TilePolicy;
  /** The bound on each wait for the GPU in a batch run, ms (executor CompileOptions.gpuTimeoutMs; default 10 minutes). */
  gpuTimeoutMs?: number;
}

/** Per-slice and per-patient results of a run on windowed slices. */
export interface TwoStageResult {
  adapter: string;
  batch: number;
  height: number;
  width: number;
  /** [B, 1, H, W] sigmoid of the lung logits. */
  lung_prob: Float32Array;
  /** [B, 1, H, W] 1 where lung_prob > lung_threshold (or the given mask). */
  lung_mask: Float32Array;
  /** [B] fraction of the slice inside the lung mask. */
  lung_area: Float32Array;
  /** [B, 1, H, W] infection probability P at input resolution. */
  infection_prob: Float32Array;
  /** [B] fraction of the lung with P > infection_threshold (NaN where the slice has no lung). */
  infected_fraction: Float32Array;
  /** [B, K] slice logits and softmax probabilities. */
  slice_logits: Float32Array;
  slice_probs: Float32Array;
  /** [B, E] slice embeddings. */
  slice_embedding: Float32Array;
  /** [B] slices used by the patient head. */
  slice_used: boolean[];
  /** Per patient, rows in `patient_ids` order. */
  patient_ids: number[];
  /** [P, K] logits, NaN rows where no lung was found. */
  patient_logits: Float32Array;
  patient_probs: Float32Array;
  patient_no_lung: boolean[];
  patient_slices_used: number[];
  /** Named intermediates, when asked for. */
  intermediates?: Record<string, Float32Array>;
  /** The graph runs' host-side split (executor RunResult.host), summed over the chunks, ms. */
  host: { uploadMs: number; submitMs: number; readbackMs: number };
}

function softmaxRows(x: Float32Array, k: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / k; r++) {
    let m = -Infinity;
    for (let j = 0; j < k; j++) m = Math.max(m, x[r * k + j]!);
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(x[r * k + j]! - m);
    for (let j = 0; j < k; j++) out[r * k + j] = Math.exp(x[r * k + j]! - m) / s;
  }
  return out;
}

/** The compiled two-stage model on one device. */
export class TwoStageEngine {
  private constructor(
    readonly gpu: GpuContext,
    readonly pipeline: Pipeline,
    /** Both stages in one graph (input `windowed`). */
    readonly twoStage: CompiledGraph,
    readonly batch: number,
    readonly height: number,
    readonly width: number,
    /** `covidct.source` of the weights file ('' when absent). */
    readonly source: string,
    /** The weights file the engine was loaded from (its name and metadata say what the weights are). */
    readonly weights: SafetensorsFile,
    private readonly intermediates: boolean,
    private readonly compileOpts: { cache: PipelineCache; precision: 'f32' | 'f16'; storage: 'f32' | 'f16'; tiles: TilePolicy; gpuTimeoutMs?: number },
  ) {}

  /** The arithmetic the graph was compiled with ({@link EngineOptions.precision}). */
  get precision(): 'f32' | 'f16' {
    return this.compileOpts.precision;
  }
  /** The activation storage the graph was compiled with ({@link EngineOptions.storage}). */
  get storage(): 'f32' | 'f16' {
    return this.compileOpts.storage;
  }

  /** The model config and preprocessing parameters from the weights file. */
  get config(): ModelConfig {
    return this.pipeline.config;
  }
  get preprocess(): PreprocessConfig {
    return this.pipeline.preprocess;
  }

  /** Builds, binds and compiles the two-stage graph from a covidct weights file. */
  static async load(gpu: GpuContext, file: SafetensorsFile, opts: EngineOptions = {}): Promise<TwoStageEngine> {
    const want = opts.batch ?? 4;
    const maxBatch = opts.maxBatch ?? 16;
    if (want === 'auto') {
      if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
    } else if (!Number.isInteger(want) || want < 1) throw new RangeError(`batch must be a positive integer, got ${want}`);
    // Not covidct weights (no or a bad covidct.config): a WeightsError naming the file, before anything else.
    const cfgSize = readConfig(file).config.input_size;
    const height = opts.height ?? cfgSize;
    const width = opts.width ?? cfgSize;
    if (!Number.isInteger(height) || !Number.isInteger(width) || height < MIN_INPUT_SIZE || width < MIN_INPUT_SIZE)
      throw new RangeError(`slice size must be integers >= ${MIN_INPUT_SIZE}, got ${height} x ${width}`);
    const cache = opts.cache ?? new PipelineCache(gpu.device);
    const precision = opts.precision ?? 'f32';
    const compileOpts = { cache, precision, storage: opts.storage ?? precision, tiles: opts.tiles ?? defaultTilePolicy(gpu), ...(opts.gpuTimeoutMs !== undefined ? { gpuTimeoutMs: opts.gpuTimeoutMs } : {}) } as const;
    const build = (b: number) => loadPipeline(file, { batch: b, height, width, intermediates: !!opts.intermediates });
    // Whether batch b's buffers fit the device's limits: the compile step alone, on the CPU (nothing is made).
    const limitError = (b: number): GpuLimitError | null => {
      try {
        compileProgram(gpu, build(b).twoStage.graph, compileOpts);
        return null;
      } catch (e) {
        if (e instanceof GpuLimitError) return e;
        throw e;
      }
    };
    /** The largest batch in 1..hi that fits (the buffers grow with the batch), or 0. */
    const largestFit = (hi: number): number => {
      let [lo, top] = [0, hi];
      while (lo < top) {
        const mid = Math.ceil((lo + top) / 2);
        if (limitError(mid)) top = mid - 1;
        else lo = mid;
      }
      return lo;
    };
    const advice = (fits: number) =>
      fits > 0 ? `use a batch of ${fits} or less (--batch ${fits}) or a smaller input size` : `even batch 1 does not fit at ${height} x ${width}: use a smaller input size (--size)`;
    let batch = want === 'auto' ? largestFit(maxBatch) : want;
    if (batch === 0) {
      const e = limitError(1)!;
      throw new GpuLimitError(`${e.message.slice(0, e.message.lastIndexOf(': '))}: ${advice(0)}`, e.limit, e.needed, e.available);
    }
    for (;;) {
      const pipeline = build(batch);
      // A malformed covidct.calibration is refused here, before compiling (CalibrationError names the problem).
      readCalibration(file.metadata, 2 * embeddingDim(pipeline.config.cls), pipeline.config.cls.num_classes);
      try {
        const twoStage = await compileGraph(gpu, pipeline.twoStage.graph, compileOpts);
        return new TwoStageEngine(gpu, pipeline, twoStage, batch, height, width, file.metadata['covidct.source'] ?? '', file, !!opts.intermediates, compileOpts);
      } catch (e) {
        if (!(e instanceof GpuLimitError)) throw e;
        // 'auto': out of memory at creation halves the batch and tries again.
        if (want === 'auto' && e.limit === 'out-of-memory' && batch > 1) {
          batch = Math.floor(batch / 2);
          continue;
        }
        // A fixed batch over a limit: say which batch fits.
        const fits = e.limit === 'out-of-memory' ? Math.floor(batch / 2) : largestFit(batch - 1);
        throw new GpuLimitError(`${e.message.slice(0, e.message.lastIndexOf(': '))}: ${advice(fits)}`, e.limit, e.needed, e.available);
      }
    }
  }

  private stage2Alone: CompiledGraph | null = null;

  /** Stage 2 by itself, for teacher-forced masks (compiled on first use). */
  private async forcedStage2(): Promise<CompiledGraph> {
    this.stage2Alone ??= await compileGraph(this.gpu, this.pipeline.stage2.graph, this.compileOpts);
    return this.stage2Alone;
  }

  /**
   * Runs both stages on windowed slices [B, 1, H, W] (values in [0, 1], already at the model size).
   * @param opts.lungMask teacher-forced lung mask [B, 1, H, W] instead of stage 1's.
   * @param opts.patientIds per-slice patient id (default: all slices one patient).
   * @param opts.patientHead run the patient head on these slices (default true); false when a caller streams a
   *   volume batch by batch and runs {@link patientHead} once on all slices at the end (the patient fields of
   *   the result are then empty).
   */
  async runWindowed(windowed: Float32Array, opts: { lungMask?: Float32Array; patientIds?: ArrayLike<number>; patientHead?: boolean } = {}): Promise<TwoStageResult> {
    const { height: H, width: W, batch } = this;
    const hw = H * W;
    if (windowed.length === 0 || windowed.length % hw !== 0) throw new RangeError(`windowed slices must be [B, 1, ${H}, ${W}]: got ${windowed.length} values`);
    const B = windowed.length / hw;
    if (opts.lungMask && opts.lungMask.length !== windowed.length) throw new RangeError(`lungMask has ${opts.lungMask.length} values, expected ${windowed.length}`);
    const pre = this.preprocess;
    const k = this.config.cls.num_classes;
    const inter: Record<string, Float32Array[]> = {};
    // The whole volume's maps, filled chunk by chunk (one copy each out of the readback).
    const lung_prob = new Float32Array(B * hw);
    const lung_mask = new Float32Array(B * hw);
    const infection_prob = new Float32Array(B * hw);
    const lung_area = new Float32Array(B);
    const infected_fraction = new Float32Array(B);
    let slice_logits = new Float32Array(0);
    let slice_embedding = new Float32Array(0);
    const host = { uploadMs: 0, submitMs: 0, readbackMs: 0 };
    const addHost = (h: TwoStageResult['host']) => {
      host.uploadMs += h.uploadMs;
      host.submitMs += h.submitMs;
      host.readbackMs += h.readbackMs;
    };
    // Without intermediates, read back only what the report needs.
    const outputs = this.intermediates ? undefined : ['lung_prob', 'infection_prob', 'slice_logits', 'slice_embedding'];
    const t = pre.lung_threshold;
    const ti = pre.infection_threshold;
    for (let start = 0; start < B; start += batch) {
      const n = Math.min(batch, B - start);
      let chunk = windowed.subarray(start * hw, (start + batch) * hw);
      if (n < batch) {
        chunk = new Float32Array(batch * hw);
        chunk.set(windowed.subarray(start * hw, (start + n) * hw));
      }
      const r = await this.twoStage.run({ windowed: chunk }, outputs ? { outputs } : {});
      addHost(r.host);
      const got = { ...r.outputs };
      const prob = got.lung_prob!;
      lung_prob.set(prob.subarray(0, n * hw), start * hw);
      const forced = opts.lungMask?.subarray(start * hw, (start + n) * hw);
      if (forced) {
        const mask = new Float32Array(batch * hw);
        mask.set(forced);
        const clsInput = maskedInput(chunk, mask, batch, pre);
        const s2 = await (await this.forcedStage2()).run({ 'cls.input': clsInput }, outputs ? { outputs: outputs.filter((o) => o !== 'lung_prob') } : {});
        addHost(s2.host);
        Object.assign(got, s2.outputs);
        if ('cls.input' in got) got['cls.input'] = clsInput;
      }
      const inf = got.infection_prob!;
      infection_prob.set(inf.subarray(0, n * hw), start * hw);
      // Mask (prob > lung_threshold, or the given one), lung area (mean of the mask) and the infected fraction
      // of the lung (P > infection_threshold where mask > 0), in one pass per slice.
      for (let b = 0; b < n; b++) {
        const o = (start + b) * hw;
        let area = 0;
        let lung = 0;
        let infected = 0;
        if (forced) {
          for (let i = b * hw, e = (b + 1) * hw; i < e; i++) {
            const m = forced[i]!;
            lung_mask[o + i - b * hw] = m;
            area += m;
            if (m > 0) {
              lung++;
              if (inf[i]! > ti) infected++;
            }
          }
        } else {
          // Branch-free (the mask is 0 or 1): on 16 slices of 512 x 512, Node 20 ran this 3 to 4 times faster
          // than branching on the mask, and `bool | 0` twice as fast as `+bool`.
          const c = b * hw;
          for (let i = 0; i < hw; i++) {
            const m = ((prob[c + i]! > t) as unknown as number) | 0;
            lung_mask[o + i] = m;
            lung += m;
            infected += m & (((inf[c + i]! > ti) as unknown as number) | 0);
          }
          area = lung;
        }
        lung_area[start + b] = area / hw;
        infected_fraction[start + b] = lung ? infected / lung : NaN;
      }
      const logits = got.slice_logits!;
      const emb = got.slice_embedding!;
      if (!slice_logits.length) {
        slice_logits = new Float32Array(B * (logits.length / batch));
        slice_embedding = new Float32Array(B * (emb.length / batch));
      }
      slice_logits.set(logits.subarray(0, n * (logits.length / batch)), start * (logits.length / batch));
      slice_embedding.set(emb.subarray(0, n * (emb.length / batch)), start * (emb.length / batch));
      for (const [name, v] of Object.entries(got))
        if (!['lung_prob', 'infection_prob', 'slice_logits', 'slice_embedding', 'lung_logits'].includes(name)) (inter[name] ??= []).push(v.slice(0, n * (v.length / batch)));
    }
    const cat = (xs: Float32Array[]) => {
      const out = new Float32Array(xs.reduce((s, x) => s + x.length, 0));
      let o = 0;
      for (const x of xs) {
        out.set(x, o);
        o += x.length;
      }
      return out;
    };
    const used = sliceUsed(lung_area, pre);
    const patient = opts.patientHead === false ? { ids: [], logits: new Float32Array(0), noLung: [], slicesUsed: [] } : runPatientHead(this.pipeline.patient, slice_embedding, used, opts.patientIds);
    const result: TwoStageResult = {
      adapter: this.gpu.adapterName,
      batch: B,
      height: H,
      width: W,
      lung_prob,
      lung_mask,
      lung_area,
      infection_prob,
      infected_fraction,
      slice_logits,
      slice_probs: softmaxRows(slice_logits, k),
      slice_embedding,
      slice_used: used,
      patient_ids: patient.ids,
      patient_logits: patient.logits,
      patient_probs: softmaxRows(patient.logits, k),
      patient_no_lung: patient.noLung,
      patient_slices_used: patient.slicesUsed,
      host,
    };
    if (Object.keys(inter).length) result.intermediates = Object.fromEntries(Object.entries(inter).map(([n, v]) => [n, cat(v)]));
    return result;
  }

  /**
   * The patient head on the CPU over all slices of one patient: slice embeddings [S, E] (from
   * {@link runWindowed}) and which slices are used. Logits and softmax probabilities [K] (uncalibrated: the
   * calibration of src/analysis/calibration.ts applies on top) and the head's input, the pooled feature
   * concat(mean, max) [2E] (the OOD score's input), or null when no slice is used (no lung found).
   */
  patientHead(embeddings: Float32Array, used: readonly boolean[]): { logits: Float32Array; probs: Float32Array; pooled: Float32Array; slicesUsed: number } | null {
    const r = runPatientHead(this.pipeline.patient, embeddings, [...used]);
    if (r.ids.length === 0 || r.noLung[0]) return null;
    const k = this.config.cls.num_classes;
    const logits = r.logits.slice(0, k);
    return { logits, probs: softmaxRows(logits, k), pooled: r.pooled.get(r.ids[0]!)!, slicesUsed: r.slicesUsed[0]! };
  }

  /** Frees the compiled graphs. */
  destroy(): void {
    this.twoStage.destroy();
    this.stage2Alone?.destroy();
    this.stage2Alone = null;
  }
}
