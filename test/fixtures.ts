// Shared helpers of the parity tests (test/models.test.ts on the CPU references, test/parity.test.ts on the GPU):
// the fixtures written by weights/make_fixtures.py (test/fixtures/), the staleness hash, the deterministic weight
// generator that make_fixtures.py uses (reimplemented here, so weights are never committed) and the error measures.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { f32ToF16, readSafetensorsFile, serializeSafetensors, type SafetensorsFile, type TensorToWrite } from '../src/io/safetensors.js';
import { weightValues } from '../src/models/random-weights.js';
import { nmse } from '../src/ops/random.js';
import { bindWeights, loadPipeline, openWeights } from '../src/models/load.js';
import { addEfficientNetFeatures, efficientnet, type EfficientNetVariant } from '../src/models/efficientnet.js';
import { ModelBuilder, type ModelGraph } from '../src/models/builder.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const FIX = join(ROOT, 'test', 'fixtures');
export const RERUN = 'fixtures are stale: rerun `/usr/bin/python3 weights/make_fixtures.py`';
/** Relative L2 tolerance of every parity comparison. */
export const TOL = 1e-4;

// ---------------------------------------------------------------------------------------------
// error measures

/** sqrt(sum (a - ref)^2 / sum ref^2), in double precision: the square root of the op tests' NMSE. */
export function relL2(a: Float32Array, ref: Float32Array): number {
  return Math.sqrt(nmse(a, ref));
}

/** relL2 after subtracting the reference's mean (for probabilities near a constant, e.g. sigmoid ~ 0.5). */
export function relL2Centered(a: Float32Array, ref: Float32Array): number {
  let m = 0;
  for (const v of ref) m += v;
  m /= ref.length;
  return relL2(a.map((v) => v - m), ref.map((v) => v - m));
}

/**
 * The error of an output against its reference: relL2, and for probabilities (name contains "prob") the larger
 * of relL2 and the mean-centred relL2. A sigmoid of small logits sits near 0.5 everywhere, so its plain relL2
 * is dominated by that constant and would hide an error in the varying part; centring removes it.
 */
export function outputError(name: string, v: Float32Array, ref: Float32Array): number {
  return /prob/.test(name) ? Math.max(relL2(v, ref), relL2Centered(v, ref)) : relL2(v, ref);
}

/** Compares every graph output that the fixture has under `prefix`; returns the errors by name. */
export function compareOutputs(out: Record<string, Float32Array>, fx: Fixture, prefix: string, rename: Record<string, string> = {}): Record<string, number> {
  const errs: Record<string, number> = {};
  for (const [name, v] of Object.entries(out)) {
    const key = `${prefix}${rename[name] ?? name}`;
    if (!fx.file.has(key)) continue;
    errs[name] = outputError(name, v, fx.get(key));
  }
  return errs;
}

export function expectAllBelow(errs: Record<string, number>, tol = TOL): void {
  const bad = Object.entries(errs).filter(([, e]) => !(e <= tol));
  expect(bad.map(([n, e]) => `${n}: ${e.toExponential(2)}`), 'relative L2 errors above tolerance').toEqual([]);
}

// ---------------------------------------------------------------------------------------------
// fixtures

/** The hash make_fixtures.py records: sha256 over (path NUL bytes NUL) of the reference code. */
export function codeHash(): string {
  const files = readdirSync(join(ROOT, 'weights', 'reference'))
    .filter((f) => f.endsWith('.py'))
    .sort()
    .map((f) => `weights/reference/${f}`);
  files.push('weights/make_fixtures.py', 'weights/export.py', 'weights/safetensors_io.py');
  const h = createHash('sha256');
  for (const f of files) {
    h.update(Buffer.from(`${f}\0`));
    h.update(readFileSync(join(ROOT, f)));
    h.update(Buffer.from('\0'));
  }
  return h.digest('hex');
}

/** A fixture file: tensors by name plus parsed metadata. */
export class Fixture {
  constructor(readonly file: SafetensorsFile) {}
  get(name: string): Float32Array {
    return this.file.getF32(name);
  }
  shape(name: string): readonly number[] {
    return this.file.info(name).shape;
  }
  meta<T>(key: string): T {
    return JSON.parse(this.file.metadata[key]!) as T;
  }
  /** Names under a case prefix, without the prefix. */
  names(prefix: string): string[] {
    return this.file.names().filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length));
  }
}

/** Reads test/fixtures/<name>. */
export async function loadFixture(name: string): Promise<Fixture> {
  return new Fixture(await readSafetensorsFile(join(FIX, name)));
}

/** The case table `fixture.cases` of a two-stage fixture. */
export interface TwoStageCase {
  batch: number;
  hu_size: number[];
  size: number[];
  patient_ids: number[];
}

// ---------------------------------------------------------------------------------------------
// deterministic weights (make_fixtures.py `weight_values`, `fill_weights`)

/** `fixture.weights`: how to regenerate the weights file a fixture's reference outputs were computed with. */
export interface WeightsRecipe {
  seed: number;
  dtype: 'F16' | 'F32';
  sha256: string;
  size: number;
  metadata: Record<string, string> | null;
  /** [name, shape, center, bits, q] per tensor, in file (state-dict) order. */
  manifest: Array<[string, number[], number, number, number]>;
}

const recipeCache = new Map<WeightsRecipe, TensorToWrite[]>();

/** The tensors of a recipe, in export order (cached; treat as read-only). */
export function recipeTensors(r: WeightsRecipe): TensorToWrite[] {
  let ts = recipeCache.get(r);
  if (!ts) recipeCache.set(r, (ts = makeRecipeTensors(r)));
  return ts;
}

/** The tensors of a recipe, not cached (for the large networks: the caller drops them after use). */
export function makeRecipeTensors(r: WeightsRecipe): TensorToWrite[] {
  return r.manifest.map(([name, shape, c, bits, q], i) => {
    const v = weightValues(r.seed, i, shape.reduce((a, d) => a * d, 1), c, bits, q);
    return { name, shape, dtype: r.dtype, data: r.dtype === 'F16' ? toF16(v) : v };
  });
}

/**
 * f32 -> f16 bits, as f32ToF16 but fast for the values the recipes make (exact in f16): a value in the f16
 * normal range whose low 13 mantissa bits are zero converts by rebiasing the exponent; anything else (zero,
 * subnormals, values that need rounding) goes through f32ToF16. The default model has 74 M weights.
 */
function toF16(v: Float32Array): Uint16Array {
  const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
  const out = new Uint16Array(v.length);
  for (let i = 0; i < u.length; i++) {
    const x = u[i]!;
    const exp = (x >>> 23) & 0xff;
    out[i] = exp >= 113 && exp <= 142 && (x & 0x1fff) === 0 ? ((x >>> 16) & 0x8000) | ((exp - 112) << 10) | ((x >>> 13) & 0x3ff) : f32ToF16(v[i]!);
  }
  return out;
}

/** The weights file bytes of a recipe, exactly as make_fixtures.py wrote them (not cached). */
export function recipeFileBytes(r: WeightsRecipe): Uint8Array {
  return serializeSafetensors(makeRecipeTensors(r), r.metadata ?? undefined);
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// precision 'f16'

/**
 * Stated tolerances of precision 'f16' and of half storage (relative L2 against the f32 PyTorch reference,
 * outputError for probabilities), per output, set at 2.3 to 3.6 times what rounding the matrix-unit convolutions'
 * operands to f16 did to these random-weight fixtures, emulated on the CPU (B7 logits 1.4e-4 / 3.0e-4, default
 * model lung outputs 2.8e-3, infection and slice outputs 1.0e-2 to 1.3e-2). With half storage as well
 * (test/models.test.ts measures it on every run; 2026-11-26): B7 2.7e-4 / 5.4e-4, lung 3.9e-3, infection and slice
 * outputs 7.3e-3 to 2.2e-2, 1.4 to 4.1 times below. The predicted classes must not change.
 */
export const F16_TOL: Record<string, number> = {
  'b7.logits': 1e-3,
  lung_logits: 1e-2,
  lung_prob: 1e-2,
  infection_logits_s8: 3e-2,
  infection_prob_s8: 3e-2,
  infection_prob: 3e-2,
  slice_embedding: 3e-2,
  slice_logits: 3e-2,
};

/** One model run of the f16 checks: an unfused graph with its weights bound, its inputs, its fixture outputs. */
export interface F16Case {
  name: string;
  graph: ModelGraph;
  inputs: Record<string, Float32Array>;
  /** Fixture (f32 PyTorch) outputs by graph output name. */
  refs: Record<string, Float32Array>;
  /** Output holding class logits, with the number of classes (one row per slice). */
  classes: { output: string; n: number };
  /** F16_TOL key of each output. */
  tolKey: (output: string) => string;
}

/** The f16 cases: EfficientNet-B7 fixture cases A and B, the default model's case A (stage 1 and stage 2). */
export async function f16Cases(b7Cases: string[] = ['A', 'B'], withDefault = true): Promise<F16Case[]> {
  const cases: F16Case[] = [];
  const b7 = await loadFixture('efficientnet_b7.fixture.safetensors');
  const b7File = openWeights(recipeFileBytes(b7.meta<WeightsRecipe>('fixture.weights')), 'efficientnet_b7.safetensors');
  for (const c of b7Cases) {
    const [, , h, w] = b7.shape(`${c}/input`) as number[];
    const g = efficientnet('efficientnet_b7', { batch: 1, height: h!, width: w!, intermediates: false });
    bindWeights(b7File, g);
    cases.push({ name: `b7.${c}`, graph: g, inputs: { input: b7.get(`${c}/input`) }, refs: { logits: b7.get(`${c}/logits`) }, classes: { output: 'logits', n: 1000 }, tolKey: () => 'b7.logits' });
  }
  if (!withDefault) return cases;
  const d = await loadFixture('default.fixture.safetensors');
  const info = d.meta<Record<string, TwoStageCase>>('fixture.cases')['A']!;
  const [height, width] = info.size as [number, number];
  const p = loadPipeline(openWeights(recipeFileBytes(d.meta<WeightsRecipe>('fixture.weights')), 'default.safetensors'), { batch: info.batch, height, width });
  const refsOf = (names: string[]) => Object.fromEntries(names.map((n) => [n, d.get(`A/${n}`)]));
  cases.push({ name: 'default.A.stage1', graph: p.stage1, inputs: { 'seg.input': d.get('A/seg.input') }, refs: refsOf(['lung_logits', 'lung_prob']), classes: { output: '', n: 0 }, tolKey: (o) => o });
  cases.push({
    name: 'default.A.stage2',
    graph: p.stage2,
    inputs: { 'cls.input': d.get('A/cls_input') },
    refs: refsOf(['infection_logits_s8', 'infection_prob_s8', 'infection_prob', 'slice_embedding', 'slice_logits']),
    classes: { output: 'slice_logits', n: p.config.cls.num_classes },
    tolKey: (o) => o,
  });
  return cases;
}

/** Index of the largest of v[from .. from + n) minus `from`. */
export function argmax(v: Float32Array, from: number, n: number): number {
  let best = from;
  for (let i = from; i < from + n; i++) if (v[i]! > v[best]!) best = i;
  return best - from;
}

/** The weights file of a fixture's recipe, rebuilt and checked byte for byte (size, sha256) against the file make_fixtures.py wrote. */
export function weightsOf(fx: Fixture, name: string): SafetensorsFile {
  const r = fx.meta<WeightsRecipe>('fixture.weights');
  const bytes = recipeFileBytes(r);
  expect(bytes.length, `${name}: rebuilt weights size`).toBe(r.size);
  expect(sha256(bytes), `${name}: rebuilt weights differ from the file make_fixtures.py wrote`).toBe(r.sha256);
  return openWeights(bytes, name);
}

/** torchvision EfficientNet with just the outputs the B1..B7 fixtures hold: `features.8` and `logits`. */
export function efficientnetHeadOnly(variant: EfficientNetVariant, height: number, width: number): ModelGraph {
  const m = new ModelBuilder();
  const x = m.b.input('input', [1, 3, height, width]);
  const feats = addEfficientNetFeatures(m, x, { variant, prefix: '', last: 8 });
  m.output('features.8', feats[8]!);
  m.output('logits', m.linear(m.pool(feats[8]!, 'avg', 'avgpool'), 'classifier.1', 1000, { bias: true }));
  return m.finish();
}
