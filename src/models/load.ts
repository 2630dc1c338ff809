/**
 * Loading weights into model graphs.
 *
 * {@link bindWeights} resolves the {@link WeightBinding}s of one or more graphs against a safetensors file and
 * fills `graph.weightData`. It checks everything first and reports all problems in ONE {@link WeightsError}:
 * every missing tensor, every unexpected tensor (in the file but used by none of the graphs; BatchNorm
 * `num_batches_tracked` counters are ignored, whatever their dtype), every shape mismatch, every tensor with a
 * dtype other than F32 / F16 / BF16 and every tensor holding NaN or infinite values (named, with the count).
 * Shapes are compared up to trailing 1s (a squeeze-excite fc weight is
 * [S, C, 1, 1] in a state dict and [S, C] as a linear weight). F16 and BF16 convert exactly to f32; F32 data
 * is used in place (a view on the file's bytes, no copy). Derived weights (see builder.ts) are computed from
 * their source tensor.
 *
 * {@link readConfig} reads and validates `covidct.format`, `covidct.config` and `covidct.preprocess`;
 * {@link loadPipeline} builds the pipeline graphs from that config and binds the weights. When the file's
 * tensors do not fit the config (a different width, depth or variant), the error says which config fields
 * probably differ, from the hints the model builders attach to every dimension.
 */
import { numel } from '../ops/op.js';
import { parseSafetensors, readSafetensorsFile, SafetensorsError, type SafetensorsFile } from '../io/safetensors.js';
import type { ModelGraph, WeightBinding } from './builder.js';
import { ConfigError, FORMAT_VERSION, parseModelConfig, parsePreprocessConfig, type ModelConfig, type PreprocessConfig } from './config.js';
import { buildPipeline, type Pipeline, type StageShape } from './pipeline.js';

/** One problem found while loading. */
export interface WeightIssue {
  kind: 'file' | 'config' | 'missing' | 'unexpected' | 'shape' | 'dtype' | 'nonfinite';
  /** The tensor concerned (absent for file / config problems). */
  tensor?: string;
  message: string;
  /** Config fields that probably explain the problem. */
  fields?: string[];
}

/** Raised when a weights file cannot be loaded; the message lists every problem, `issues` has them one by one. */
export class WeightsError extends Error {
  override name = 'WeightsError';
  /** Config fields that probably differ between the file's config and its tensors, most frequent first. */
  readonly configFields: string[];
  constructor(
    readonly file: string,
    readonly issues: WeightIssue[],
    options?: { cause?: unknown },
  ) {
    super(WeightsError.format(file, issues), options);
    this.configFields = rankFields(issues);
  }

  private static format(file: string, issues: WeightIssue[]): string {
    const count = (k: WeightIssue['kind']) => issues.filter((i) => i.kind === k).length;
    const summary = (['file', 'config', 'missing', 'unexpected', 'shape', 'dtype', 'nonfinite'] as const)
      .filter((k) => count(k))
      .map((k) => `${count(k)} ${k === 'shape' ? 'shape mismatch' : k === 'dtype' ? 'unsupported dtype' : k === 'nonfinite' ? 'with NaN or infinite values' : k}`)
      .join(', ');
    const shown = issues.slice(0, 60).map((i) => `  - ${i.message}`);
    if (issues.length > 60) shown.push(`  ... and ${issues.length - 60} more`);
    const fields = rankFields(issues);
    const hint = fields.length ? `\nThe config (covidct.config) probably does not match the weights; check ${fields.join(', ')}.` : '';
    return `${file}: cannot load weights (${summary}):\n${shown.join('\n')}${hint}`;
  }
}

function rankFields(issues: WeightIssue[]): string[] {
  const n = new Map<string, number>();
  for (const i of issues) for (const f of i.fields ?? []) n.set(f, (n.get(f) ?? 0) + 1);
  return [...n.entries()].sort((a, b) => b[1] - a[1]).map(([f]) => f);
}

const SUPPORTED = new Set(['F32', 'F16', 'BF16']);
const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/** Shapes equal after dropping trailing 1s (beyond the shorter rank). */
export function sameShapeUpToTrailingOnes(a: readonly number[], b: readonly number[]): boolean {
  const strip = (s: readonly number[]) => {
    let n = s.length;
    while (n > 1 && s[n - 1] === 1) n--;
    return s.slice(0, n);
  };
  const x = strip(a);
  const y = strip(b);
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

function fieldFor(models: ModelGraph[], name: string): string | undefined {
  for (const m of models) for (const [p, f] of m.fieldHints) if (name.startsWith(p)) return f;
  return undefined;
}

/** Options of {@link bindWeights}. */
export interface BindOptions {
  /** Tensors in the file that no graph uses are an error (default) or ignored. */
  allowUnexpected?: boolean;
}

/**
 * Fills the weights of `models` from `file`; see the module comment. All graphs are checked together, so a
 * tensor is "unexpected" only if none of them uses it.
 * @throws {WeightsError} listing every missing, unexpected, mis-shaped, unsupported or non-finite tensor.
 */
export function bindWeights(file: SafetensorsFile, models: ModelGraph | ModelGraph[], opts: BindOptions = {}): void {
  const list = Array.isArray(models) ? models : [models];
  const issues: WeightIssue[] = [];
  // Expected source tensors (first binding wins for the expected shape).
  const wanted = new Map<string, WeightBinding>();
  for (const m of list) for (const w of m.weights) if (!wanted.has(w.source)) wanted.set(w.source, w);
  for (const [name, w] of wanted) {
    if (!file.has(name)) {
      const field = fieldFor(list, name);
      issues.push({ kind: 'missing', tensor: name, message: `missing tensor ${name} ${fmt(w.sourceShape)}${field ? ` (present when ${field} matches)` : ''}`, ...(field ? { fields: [field] } : {}) });
      continue;
    }
    const info = file.info(name);
    if (!sameShapeUpToTrailingOnes(info.shape, w.sourceShape)) {
      const fields = shapeFields(w, info.shape);
      issues.push({
        kind: 'shape',
        tensor: name,
        message: `${name}: shape ${fmt(info.shape)} in the file, the model expects ${fmt(w.sourceShape)}${fields.length ? ` (probably differs: ${fields.join(', ')})` : ''}`,
        fields,
      });
    }
    if (!SUPPORTED.has(info.dtype)) {
      issues.push({ kind: 'dtype', tensor: name, message: `${name}: unsupported dtype ${info.dtype} (weights must be F32, F16 or BF16)` });
    }
  }
  if (!opts.allowUnexpected) {
    for (const name of file.names()) {
      if (wanted.has(name) || name.endsWith('num_batches_tracked')) continue;
      const field = fieldFor(list, name);
      issues.push({ kind: 'unexpected', tensor: name, message: `unexpected tensor ${name} ${fmt(file.info(name).shape)} (not used by the model${field ? `; exists when ${field} differs` : ''})`, ...(field ? { fields: [field] } : {}) });
    }
  }
  const cache = new Map<string, Float32Array>();
  const get = (name: string) => {
    let d = cache.get(name);
    if (!d) cache.set(name, (d = file.getF32(name)));
    return d;
  };
  // NaN or infinite weights would spread NaN through every output: refused, naming the tensor.
  for (const name of wanted.keys()) {
    if (!file.has(name) || issues.some((i) => i.tensor === name)) continue;
    const d = get(name);
    let bad = 0;
    let first = -1;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i]!)) {
        if (first < 0) first = i;
        bad++;
      }
    }
    if (bad) issues.push({ kind: 'nonfinite', tensor: name, message: `${name}: ${bad} NaN or infinite value${bad === 1 ? '' : 's'} (first at element ${first})` });
  }
  if (issues.length) throw new WeightsError(file.name, issues);

  for (const m of list) {
    for (const w of m.weights) {
      const src = get(w.source);
      const data = w.derive ? derive(src, w) : src;
      if (data.length !== numel(w.shape)) throw new Error(`internal: ${w.name} has ${data.length} values for ${fmt(w.shape)}`);
      m.graph.weightData.set(w.id, data);
    }
  }
}

/** Config fields hinted for the dimensions where the file's shape differs from the expected one. */
function shapeFields(w: WeightBinding, got: readonly number[]): string[] {
  const out = new Set<string>();
  const want = w.sourceShape;
  if (got.length !== want.length && !sameShapeUpToTrailingOnes(got, want)) {
    // Rank differs: every hinted dimension is suspect.
    for (const h of w.hints ?? []) if (h) out.add(h);
  }
  for (let i = 0; i < Math.min(got.length, want.length); i++) {
    if (got[i] !== want[i]) {
      const h = w.hints?.[i];
      if (h) for (const part of h.split(' / ')) out.add(part.replace(/ \(.*\)$/, ''));
    }
  }
  return [...out];
}

function derive(src: Float32Array, w: WeightBinding): Float32Array {
  const d = w.derive!;
  const s = w.sourceShape;
  if (d.kind === 'sliceIn') {
    const [o, i] = [s[0]!, s[1]!];
    const inner = numel(s.slice(2));
    const out = new Float32Array(o * d.count * inner);
    for (let r = 0; r < o; r++) out.set(src.subarray((r * i) * inner, (r * i + d.count) * inner), r * d.count * inner);
    return out;
  }
  const row = numel(s.slice(1));
  const out = new Float32Array(row);
  for (let j = 0; j < row; j++) out[j] = src[d.plus * row + j]! - src[d.minus * row + j]!;
  return out;
}

/** The config stored in a weights file. */
export interface FileConfig {
  config: ModelConfig;
  preprocess: PreprocessConfig;
}

/**
 * Reads `covidct.format`, `covidct.config` and `covidct.preprocess` from the file's metadata.
 * @throws {WeightsError} (kind 'config') when a key is missing, not JSON, or not a valid config (naming the fields).
 */
export function readConfig(file: SafetensorsFile): FileConfig {
  const md = file.metadata;
  const fail = (message: string, cause?: unknown): never => {
    throw new WeightsError(file.name, [{ kind: 'config', message }], cause === undefined ? undefined : { cause });
  };
  const fmtV = md['covidct.format'];
  if (fmtV === undefined) fail('no covidct.format in the metadata: not a covidct weights file (export it with weights/export.py)');
  if (fmtV !== FORMAT_VERSION) fail(`covidct.format is ${JSON.stringify(fmtV)}, this engine reads format ${JSON.stringify(FORMAT_VERSION)}`);
  const parse = <T>(key: string, fn: (j: unknown, where: string) => T, optional: boolean): T => {
    const raw = md[key];
    if (raw === undefined) {
      if (optional) return fn({}, key);
      return fail(`no ${key} in the metadata`);
    }
    let j: unknown;
    try {
      j = JSON.parse(raw);
    } catch (e) {
      return fail(`${key} is not valid JSON (${(e as Error).message})`, e);
    }
    try {
      return fn(j, key);
    } catch (e) {
      if (e instanceof ConfigError) return fail(e.message, e);
      throw e;
    }
  };
  return { config: parse('covidct.config', parseModelConfig, false), preprocess: parse('covidct.preprocess', parsePreprocessConfig, true) };
}

/**
 * Builds the pipeline graphs from the file's config and binds the weights (all three graphs together, so every
 * tensor of a covidct file must be used).
 * @throws {WeightsError} on a bad config or any weights problem.
 */
export function loadPipeline(file: SafetensorsFile, shape: StageShape): Pipeline {
  const { config, preprocess } = readConfig(file);
  const p = buildPipeline(config, preprocess, shape);
  bindWeights(file, [p.stage1, p.stage2, p.twoStage, p.patient]);
  return p;
}

/**
 * Checks that `file` holds covidct weights that load: its config (as {@link readConfig}) and every tensor
 * against the graphs that config builds (as {@link loadPipeline}, at batch 1 and the config's input size), on
 * the CPU, before any GPU work. Returns the file.
 * @throws {WeightsError} naming the file: not covidct weights, a bad config, or tensors that do not fit it.
 */
export function checkWeights(file: SafetensorsFile): SafetensorsFile {
  const { config } = readConfig(file);
  loadPipeline(file, { batch: 1, height: config.input_size, width: config.input_size });
  return file;
}

/**
 * Parses weights bytes, turning a malformed or truncated file into a {@link WeightsError} (kind 'file').
 * @param name used in messages.
 */
export function openWeights(bytes: Uint8Array | ArrayBuffer, name = '<weights>'): SafetensorsFile {
  try {
    return parseSafetensors(bytes, name);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new WeightsError(name, [{ kind: 'file', message: `not a readable safetensors file: ${stDetail(e)}` }], { cause: e });
    throw e;
  }
}

/** Node only: reads a weights file from disk like {@link openWeights}. */
export async function readWeightsFile(path: string): Promise<SafetensorsFile> {
  try {
    return await readSafetensorsFile(path);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new WeightsError(path, [{ kind: 'file', message: `not a readable safetensors file: ${stDetail(e)}` }], { cause: e });
    throw e;
  }
}

function stDetail(e: SafetensorsError): string {
  return `${e.tensor !== undefined ? `tensor ${e.tensor}: ` : ''}${e.detail}`;
}
