/**
 * The model config and the preprocessing parameters, exactly as weights/export.py writes them into the weights
 * file's `__metadata__` (`covidct.config` = `ModelConfig.to_dict()` without `preprocess`, `covidct.preprocess` =
 * `PreprocessConfig.to_dict()`; see weights/README.md and weights/reference/config.py). Field names are the JSON
 * keys (snake_case), so a parsed config serialises back to the same JSON.
 *
 * Parsing mirrors the Python dataclasses: a missing key takes the Python default, an unknown key is an error,
 * and `encoder_bn_eps` / `backbone_bn_eps` given as null (or missing) become torchvision's eps for the variant.
 * On top of the Python checks, the engine rejects values it cannot run (non-integer widths, even kernels,
 * antialiased resizing, ...). Every error names the offending field by its JSON path.
 */
import { EFFICIENTNET_VARIANTS, torchvisionBnEps, type EfficientNetVariant } from './efficientnet.js';

/** Version of the weights-file layout this engine reads (`covidct.format`, `reference.FORMAT_VERSION`). */
export const FORMAT_VERSION = '1';

/** Per-slice preprocessing (`covidct.preprocess`). */
export interface PreprocessConfig {
  /** HU window: clip to [window_min, window_max], then scale to [0, 1]. */
  window_min: number;
  window_max: number;
  /** DICOM pixel-padding values map to this HU before windowing. */
  padding_hu: number;
  /** In-plane resize to the model size; only 'bilinear' exists. */
  resize_mode: 'bilinear';
  resize_align_corners: boolean;
  /** Must be false: the engine has no antialiased resize. */
  resize_antialias: boolean;
  /** Per-channel ImageNet normalisation of the 3 replicated channels: (x - mean) / std. */
  mean: [number, number, number];
  std: [number, number, number];
  /** Lung mask = sigmoid(logit) > lung_threshold. */
  lung_threshold: number;
  /** A slice is used by the patient head when its mask covers at least this fraction of the slice. */
  lung_area_threshold: number;
  /** Infected pixel = P > infection_threshold (reporting only). */
  infection_threshold: number;
  /** Stage-2 input value outside the lung mask, in window units (before normalisation). */
  outside_mask_value: number;
}

/** Stage 1, GR-U-Net (`covidct.config` key `seg`). */
export interface SegConfig {
  encoder: EfficientNetVariant;
  /** BatchNorm eps inside the torchvision encoder (1e-5 for B0..B4, 1e-3 for B5..B7 in torchvision). */
  encoder_bn_eps: number;
  dense_blocks: number;
  bottleneck_channels: number;
  /** Decoder widths for stages k = 3, 2, 1 (strides 8, 4, 2). */
  decoder_channels: [number, number, number];
  head_channels: number;
  /** scSE squeeze width = max(C // se_reduction, se_min_channels). */
  se_reduction: number;
  se_min_channels: number;
  /** ConvGRU kernel (odd; padding kernel // 2). */
  gru_kernel: number;
}

/** Stage 2, classifier (`covidct.config` key `cls`). */
export interface ClsConfig {
  backbone: EfficientNetVariant;
  backbone_bn_eps: number;
  /** features[i] outputs fused by MsFF, increasing, ending with 8; the first one sets the grid. */
  msff_features: number[];
  fused_channels: number;
  /** Always 2 (background, infection). */
  infection_classes: number;
  /** Linear-BN1d-SiLU widths; the last one is the embedding size. */
  slice_head_widths: number[];
  num_classes: number;
  class_names: string[];
  patient_hidden: number;
  /** Training only. */
  dropout: number;
}

/** The model config (`covidct.config`). */
export interface ModelConfig {
  seg: SegConfig;
  cls: ClsConfig;
  /** eps of every BatchNorm the project adds (bottleneck, decoder, heads, MsFF, BN1d). */
  bn_eps: number;
  /** Slices are resized to input_size x input_size; the graphs accept any size. */
  input_size: number;
}

/** Raised for an invalid config; `problems` lists every bad field, each named by its JSON path (e.g. `seg.decoder_channels`). */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly problems: string[],
    readonly where: string,
  ) {
    super(`${where}: invalid config: ${problems.join('; ')}`);
  }
}

/** The defaults of weights/reference/config.py (the full-size model, docs/model.md). */
export function defaultPreprocessConfig(): PreprocessConfig {
  return {
    window_min: -1150.0,
    window_max: 350.0,
    padding_hu: -1024.0,
    resize_mode: 'bilinear',
    resize_align_corners: false,
    resize_antialias: false,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    lung_threshold: 0.5,
    lung_area_threshold: 0.01,
    infection_threshold: 0.5,
    outside_mask_value: 0.0,
  };
}

/** The default model config of weights/reference/config.py (GR-U-Net on B0, classifier on B7, 512 x 512). */
export function defaultModelConfig(): ModelConfig {
  return {
    seg: {
      encoder: 'efficientnet_b0',
      encoder_bn_eps: 1e-5,
      dense_blocks: 3,
      bottleneck_channels: 256,
      decoder_channels: [128, 64, 32],
      head_channels: 16,
      se_reduction: 8,
      se_min_channels: 4,
      gru_kernel: 3,
    },
    cls: {
      backbone: 'efficientnet_b7',
      backbone_bn_eps: 1e-3,
      msff_features: [3, 5, 8],
      fused_channels: 256,
      infection_classes: 2,
      slice_head_widths: [512, 256],
      num_classes: 3,
      class_names: ['COVID-19', 'CAP', 'no infection'],
      patient_hidden: 128,
      dropout: 0.5,
    },
    bn_eps: 1e-5,
    input_size: 512,
  };
}

/** scSE squeeze width for a decoder stage of width c: max(c // se_reduction, se_min_channels). */
export function seHidden(seg: SegConfig, c: number): number {
  return Math.max(Math.floor(c / seg.se_reduction), seg.se_min_channels);
}

/** Embedding size E = the last slice-head width. */
export function embeddingDim(cls: ClsConfig): number {
  return cls.slice_head_widths[cls.slice_head_widths.length - 1]!;
}

// ---------------------------------------------------------------------------------------------
// validation

type Obj = Record<string, unknown>;

class Checker {
  problems: string[] = [];
  bad(path: string, msg: string, v: unknown): void {
    this.problems.push(`${path} ${msg}, got ${show(v)}`);
  }
  obj(path: string, v: unknown): Obj | undefined {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      this.bad(path, 'must be a JSON object', v);
      return undefined;
    }
    return v as Obj;
  }
  keys(path: string, o: Obj, known: readonly string[]): void {
    const unknown = Object.keys(o).filter((k) => !known.includes(k));
    if (unknown.length) this.problems.push(`${path}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
  }
  num(path: string, v: unknown, opts: { int?: boolean; min?: number; gt?: number } = {}): boolean {
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.bad(path, 'must be a finite number', v), false;
    if (opts.int && !Number.isInteger(v)) return this.bad(path, 'must be an integer', v), false;
    if (opts.min !== undefined && v < opts.min) return this.bad(path, `must be >= ${opts.min}`, v), false;
    if (opts.gt !== undefined && !(v > opts.gt)) return this.bad(path, `must be > ${opts.gt}`, v), false;
    return true;
  }
  bool(path: string, v: unknown): boolean {
    if (typeof v !== 'boolean') return this.bad(path, 'must be true or false', v), false;
    return true;
  }
  intList(path: string, v: unknown, opts: { min?: number; length?: number; nonEmpty?: boolean } = {}): boolean {
    if (!Array.isArray(v)) return this.bad(path, 'must be an array of integers', v), false;
    if (opts.length !== undefined && v.length !== opts.length) return this.bad(path, `must have ${opts.length} entries`, v), false;
    if (opts.nonEmpty && v.length === 0) return this.bad(path, 'must not be empty', v), false;
    let ok = true;
    v.forEach((x, i) => (ok = this.num(`${path}[${i}]`, x, { int: true, min: opts.min ?? 1 }) && ok));
    return ok;
  }
  variant(path: string, v: unknown): boolean {
    if (!(EFFICIENTNET_VARIANTS as readonly unknown[]).includes(v)) {
      return this.bad(path, `must be one of ${EFFICIENTNET_VARIANTS.join(', ')}`, v), false;
    }
    return true;
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Fills missing keys from `defaults` (a shallow copy; nested objects are handled by the callers). */
function withDefaults<T extends object>(o: Obj, defaults: T): T {
  const out = { ...defaults } as Obj;
  for (const [k, v] of Object.entries(o)) if (k in out) out[k] = v;
  return out as T;
}

function checkSeg(c: Checker, raw: unknown): SegConfig | undefined {
  const o = c.obj('seg', raw ?? {});
  if (!o) return undefined;
  const d = defaultModelConfig().seg;
  c.keys('seg', o, Object.keys(d));
  const s = withDefaults(o, d);
  if (c.variant('seg.encoder', s.encoder) && (o.encoder_bn_eps === null || o.encoder_bn_eps === undefined)) {
    s.encoder_bn_eps = torchvisionBnEps(s.encoder);
  }
  c.num('seg.encoder_bn_eps', s.encoder_bn_eps, { gt: 0 });
  c.num('seg.dense_blocks', s.dense_blocks, { int: true, min: 1 });
  c.num('seg.bottleneck_channels', s.bottleneck_channels, { int: true, min: 1 });
  c.intList('seg.decoder_channels', s.decoder_channels, { length: 3 });
  c.num('seg.head_channels', s.head_channels, { int: true, min: 1 });
  c.num('seg.se_reduction', s.se_reduction, { int: true, min: 1 });
  c.num('seg.se_min_channels', s.se_min_channels, { int: true, min: 1 });
  if (c.num('seg.gru_kernel', s.gru_kernel, { int: true, min: 1 }) && s.gru_kernel % 2 !== 1) c.bad('seg.gru_kernel', 'must be odd (padding kernel // 2 keeps the size)', s.gru_kernel);
  if (Array.isArray(s.decoder_channels)) s.decoder_channels = [...s.decoder_channels] as [number, number, number];
  return s;
}

function checkCls(c: Checker, raw: unknown): ClsConfig | undefined {
  const o = c.obj('cls', raw ?? {});
  if (!o) return undefined;
  const d = defaultModelConfig().cls;
  c.keys('cls', o, Object.keys(d));
  const s = withDefaults(o, d);
  if (c.variant('cls.backbone', s.backbone) && (o.backbone_bn_eps === null || o.backbone_bn_eps === undefined)) {
    s.backbone_bn_eps = torchvisionBnEps(s.backbone);
  }
  c.num('cls.backbone_bn_eps', s.backbone_bn_eps, { gt: 0 });
  if (c.intList('cls.msff_features', s.msff_features, { min: 0, nonEmpty: true })) {
    const f = s.msff_features;
    if (f.some((i) => i > 8)) c.bad('cls.msff_features', 'entries must be feature indices 0..8', f);
    else if (f[f.length - 1] !== 8) c.bad('cls.msff_features', 'must end with 8 (the head conv)', f);
    else if (f.some((v, i) => i > 0 && v <= f[i - 1]!)) c.bad('cls.msff_features', 'must be increasing', f);
    s.msff_features = [...f];
  }
  c.num('cls.fused_channels', s.fused_channels, { int: true, min: 1 });
  if (s.infection_classes !== 2) c.bad('cls.infection_classes', 'must be 2 (background, infection)', s.infection_classes);
  if (c.intList('cls.slice_head_widths', s.slice_head_widths, { nonEmpty: true })) s.slice_head_widths = [...s.slice_head_widths];
  c.num('cls.num_classes', s.num_classes, { int: true, min: 1 });
  if (!Array.isArray(s.class_names) || !s.class_names.every((n) => typeof n === 'string')) c.bad('cls.class_names', 'must be an array of strings', s.class_names);
  else if (s.class_names.length !== s.num_classes) c.bad('cls.class_names', `must have num_classes (${String(s.num_classes)}) entries`, s.class_names);
  else s.class_names = [...s.class_names];
  c.num('cls.patient_hidden', s.patient_hidden, { int: true, min: 1 });
  c.num('cls.dropout', s.dropout, { min: 0 });
  return s;
}

/**
 * Validates a parsed `covidct.config` JSON value and returns the model config (missing keys take the
 * defaults of weights/reference/config.py, null bn eps become torchvision's value).
 * @param where names the source in error messages (e.g. the weights file and metadata key).
 * @throws {ConfigError} listing every bad field by its JSON path.
 */
export function parseModelConfig(json: unknown, where = 'covidct.config'): ModelConfig {
  const c = new Checker();
  const o = c.obj('config', json);
  if (!o) throw new ConfigError(c.problems, where);
  const d = defaultModelConfig();
  c.keys('config', o, ['seg', 'cls', 'bn_eps', 'input_size', 'preprocess']);
  const seg = checkSeg(c, o.seg);
  const cls = checkCls(c, o.cls);
  const bnEps = o.bn_eps ?? d.bn_eps;
  const inputSize = o.input_size ?? d.input_size;
  c.num('bn_eps', bnEps, { gt: 0 });
  c.num('input_size', inputSize, { int: true, min: 1 });
  if (c.problems.length || !seg || !cls) throw new ConfigError(c.problems, where);
  return { seg, cls, bn_eps: bnEps as number, input_size: inputSize as number };
}

/**
 * Validates a parsed `covidct.preprocess` JSON value (missing keys take the defaults).
 * @throws {ConfigError} listing every bad field by its JSON path.
 */
export function parsePreprocessConfig(json: unknown, where = 'covidct.preprocess'): PreprocessConfig {
  const c = new Checker();
  const o = c.obj('preprocess', json);
  if (!o) throw new ConfigError(c.problems, where);
  const d = defaultPreprocessConfig();
  c.keys('preprocess', o, Object.keys(d));
  const p = withDefaults(o, d);
  for (const k of ['window_min', 'window_max', 'padding_hu', 'lung_threshold', 'lung_area_threshold', 'infection_threshold', 'outside_mask_value'] as const) {
    c.num(`preprocess.${k}`, p[k]);
  }
  if (typeof p.window_min === 'number' && typeof p.window_max === 'number' && !(p.window_max > p.window_min)) {
    c.bad('preprocess.window_max', `must be > window_min (${p.window_min})`, p.window_max);
  }
  if (p.resize_mode !== 'bilinear') c.bad('preprocess.resize_mode', "must be 'bilinear'", p.resize_mode);
  c.bool('preprocess.resize_align_corners', p.resize_align_corners);
  if (c.bool('preprocess.resize_antialias', p.resize_antialias) && p.resize_antialias) {
    c.bad('preprocess.resize_antialias', 'must be false (the engine has no antialiased resize)', p.resize_antialias);
  }
  for (const k of ['mean', 'std'] as const) {
    const v = p[k] as unknown;
    if (!Array.isArray(v) || v.length !== 3) c.bad(`preprocess.${k}`, 'must be an array of 3 numbers', v);
    else v.forEach((x, i) => c.num(`preprocess.${k}[${i}]`, x, k === 'std' ? { gt: 0 } : {}));
  }
  if (c.problems.length) throw new ConfigError(c.problems, where);
  return { ...p, mean: [...p.mean], std: [...p.std] };
}

/** The tiny config of weights/reference/config.py (`tiny_config()`), for tests. */
export function tinyModelConfig(): ModelConfig {
  const d = defaultModelConfig();
  return {
    seg: { ...d.seg, bottleneck_channels: 32, decoder_channels: [16, 12, 8], head_channels: 8 },
    cls: { ...d.cls, backbone: 'efficientnet_b0', backbone_bn_eps: 1e-5, fused_channels: 16, slice_head_widths: [32, 16], patient_hidden: 16 },
    bn_eps: 1e-5,
    input_size: 64,
  };
}
