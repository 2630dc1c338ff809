// The model graphs (src/models) against the PyTorch reference (weights/reference), on the CPU references of the
// ops: fixtures from weights/make_fixtures.py (test/fixtures/). Every output and intermediate must match with a
// relative L2 error <= 1e-4. Also: the EfficientNet scaling table against torchvision, the weights loader and
// its errors, the preprocessing functions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runGraphOnCpu } from '../src/graph/cpu.js';
import { fuseGraph } from '../src/graph/fuse.js';
import { f32ToBf16, f32ToF16, f16ToF32, bf16ToF32, serializeSafetensors, type SafetensorsFile, type TensorToWrite } from '../src/io/safetensors.js';
import { ConfigError, parseModelConfig, parsePreprocessConfig, tinyModelConfig, defaultModelConfig, defaultPreprocessConfig } from '../src/models/config.js';
import { EFFICIENTNET_VARIANTS, efficientnet, efficientNetSpec, makeDivisible, type EfficientNetVariant } from '../src/models/efficientnet.js';
import { bindWeights, loadPipeline, openWeights, readConfig, WeightsError } from '../src/models/load.js';
import { buildStage1, buildStage2, runPatientHead } from '../src/models/pipeline.js';
import { lungArea, lungMask, maskedInput, normalise, preprocessHU, sliceUsed } from '../src/analysis/preprocess.js';
import { argmax, codeHash, compareOutputs, efficientnetHeadOnly, expectAllBelow, F16_TOL, f16Cases, FIX, Fixture, loadFixture, outputError, recipeTensors, relL2, RERUN, sha256, TOL, weightsOf, type WeightsRecipe } from './fixtures.js';

// Helpers (fixture loading, the deterministic weight generator, relL2) live in test/fixtures.ts, shared with
// test/parity.test.ts (the same fixtures on the GPU).

const measured: Record<string, number> = {};
function record(prefix: string, errs: Record<string, number>): void {
  for (const [k, v] of Object.entries(errs)) measured[`${prefix}${k}`] = v;
}

// ---------------------------------------------------------------------------------------------

let tiny: Fixture;
let b0: Fixture;
let tinyBytes: Uint8Array;
let tinyRecipe: WeightsRecipe;
let specs: { code_sha256: string; variants: Record<string, { bn_eps: number; feature_channels: number[]; blocks: Array<Array<[number, number, number, number, number, number, boolean]>>; state: Array<[string, number[]]> }> };

beforeAll(async () => {
  tiny = await loadFixture('tiny.fixture.safetensors');
  b0 = await loadFixture('efficientnet_b0.fixture.safetensors');
  specs = JSON.parse(readFileSync(join(FIX, 'efficientnet_specs.json'), 'utf8'));
  tinyRecipe = tiny.meta<WeightsRecipe>('fixture.weights');
  tinyBytes = serializeSafetensors(recipeTensors(tinyRecipe), tinyRecipe.metadata!);
});

describe('fixtures', () => {
  it('were generated from the current reference code', () => {
    const h = codeHash();
    expect(tiny.file.metadata['fixture.code_sha256'], RERUN).toBe(h);
    expect(b0.file.metadata['fixture.code_sha256'], RERUN).toBe(h);
    expect(specs.code_sha256, RERUN).toBe(h);
  });

  it('rebuild the exporter weights files byte for byte', () => {
    expect(tinyBytes.length).toBe(tinyRecipe.size);
    expect(sha256(tinyBytes), 'tiny weights differ from what weights/export.py wrote').toBe(tinyRecipe.sha256);
    const r = b0.meta<WeightsRecipe>('fixture.weights');
    const bytes = serializeSafetensors(recipeTensors(r));
    expect(sha256(bytes), 'b0 weights differ from what safetensors_io.save wrote').toBe(r.sha256);
  });
});

describe('efficientnet table', () => {
  it('_make_divisible', () => {
    expect(makeDivisible(32 * 1.1)).toBe(32);
    expect(makeDivisible(40 * 1.2)).toBe(48);
    expect(makeDivisible(16 * 1.8)).toBe(32);
    expect(makeDivisible(3)).toBe(8);
    expect(makeDivisible(12)).toBe(16);
  });

  it.each([...EFFICIENTNET_VARIANTS])('%s matches torchvision 0.14 (blocks, eps, state-dict names and shapes)', (v) => {
    const tv = specs.variants[v]!;
    const spec = efficientNetSpec(v as EfficientNetVariant);
    expect(spec.bnEps).toBe(tv.bn_eps);
    expect(spec.featureChannels).toEqual(tv.feature_channels);
    expect(spec.stages.map((s) => s.blocks.map((b) => [b.inChannels, b.outChannels, b.expanded, b.kernel, b.stride, b.squeeze, b.residual]))).toEqual(tv.blocks);
    const g = efficientnet(v as EfficientNetVariant, { batch: 1, height: 32, width: 32, intermediates: false });
    const ours = new Map(g.weights.map((w) => [w.source, w.sourceShape]));
    const theirs = new Map(tv.state.map(([n, s]) => [n, s]));
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    const strip = (s: readonly number[]) => [...s].join('x').replace(/(x1)+$/, '');
    const badShapes = [...ours].filter(([n, s]) => strip(s) !== strip(theirs.get(n)!)).map(([n]) => n);
    expect(badShapes).toEqual([]);
  });
});

describe('efficientnet_b0 (torchvision checkpoint, F32, no metadata)', () => {
  let file: SafetensorsFile;
  beforeAll(() => {
    file = openWeights(serializeSafetensors(recipeTensors(b0.meta<WeightsRecipe>('fixture.weights'))), 'efficientnet_b0.safetensors');
  });

  it.each(['A', 'B'])('case %s: logits and features.0..8', (c) => {
    const [, , h, w] = b0.shape(`${c}/input`) as number[];
    const g = efficientnet('efficientnet_b0', { batch: 1, height: h!, width: w! });
    bindWeights(file, g);
    const out = runGraphOnCpu(g.graph, { input: b0.get(`${c}/input`) });
    const errs = compareOutputs(out, b0, `${c}/`);
    expect(Object.keys(errs).sort()).toEqual(['features.0', 'features.1', 'features.2', 'features.3', 'features.4', 'features.5', 'features.6', 'features.7', 'features.8', 'logits']);
    record(`b0.${c}.`, errs);
    expectAllBelow(errs);
  });

  it('fused graph (BN folded, activations, residuals, SE fused) gives the same logits', () => {
    const g = efficientnet('efficientnet_b0', { batch: 1, height: 64, width: 64, intermediates: false });
    bindWeights(file, g);
    const report = fuseGraph(g.graph);
    expect(report.foldedBatchNorm).toBe(49);
    expect(report.fusedSqueezeExcite).toBe(16);
    expect(report.fusedResidual).toBe(9);
    const out = runGraphOnCpu(g.graph, { input: b0.get('A/input') });
    const e = relL2(out.logits!, b0.get('A/logits'));
    measured['b0.A.fused.logits'] = e;
    expect(e).toBeLessThanOrEqual(TOL);
  });
});

describe('EfficientNet B1..B7 on the CPU references (fixture case A, 64x64)', () => {
  // test/parity.test.ts runs case B (48x80) of each on the GPU, and case A of B7.
  it.each(EFFICIENTNET_VARIANTS.filter((v) => v !== 'efficientnet_b0'))('%s: logits and features.8, fused', async (v) => {
    const fx = await loadFixture(`${v}.fixture.safetensors`);
    const [, , h, w] = fx.shape('A/input') as number[];
    const g = efficientnetHeadOnly(v, h!, w!);
    bindWeights(weightsOf(fx, `${v}.safetensors`), g);
    fuseGraph(g.graph);
    const errs = compareOutputs(runGraphOnCpu(g.graph, { input: fx.get('A/input') }), fx, 'A/');
    expect(Object.keys(errs).sort()).toEqual(['features.8', 'logits']);
    record(`${v}.A.`, errs);
    expectAllBelow(errs);
  });
});

describe('tiny two-stage model', () => {
  const cases = ['A', 'B'] as const;
  let file: SafetensorsFile;
  beforeAll(() => {
    file = openWeights(tinyBytes, 'tiny.safetensors');
  });

  it('reads the config from the metadata', () => {
    const { config, preprocess } = readConfig(file);
    expect(config).toEqual(tinyModelConfig());
    expect(preprocess).toEqual(defaultPreprocessConfig());
    expect(config.cls.backbone_bn_eps).toBe(1e-5);
  });

  it.each(cases)('case %s: preprocessing (window, resize, normalise, mask, area, stage-2 input)', (c) => {
    const pre = defaultPreprocessConfig();
    const info = tiny.meta<Record<string, { batch: number; hu_size: number[]; size: number[] }>>('fixture.cases')[c]!;
    const [hh, hw] = info.hu_size as [number, number];
    const size = info.size as [number, number];
    const windowed = preprocessHU(tiny.get(`${c}/hu`), [info.batch, 1, hh, hw], pre, size);
    const errs: Record<string, number> = {
      windowed: relL2(windowed, tiny.get(`${c}/windowed`)),
      'seg.input': relL2(normalise(tiny.get(`${c}/windowed`), info.batch, pre), tiny.get(`${c}/seg.input`)),
      cls_input: relL2(maskedInput(tiny.get(`${c}/windowed`), tiny.get(`${c}/lung_mask_given`), info.batch, pre), tiny.get(`${c}/cls_input`)),
      lung_area: relL2(lungArea(tiny.get(`${c}/lung_mask_given`), info.batch), tiny.get(`${c}/lung_area`)),
    };
    record(`tiny.${c}.`, errs);
    expectAllBelow(errs, 1e-6);
    expect(Array.from(lungMask(tiny.get(`${c}/lung_prob`), pre))).toEqual(Array.from(tiny.get(`${c}/lung_mask_pred`)));
    // Strict threshold (prob > t), exercised where the random stage 1 straddles it.
    const prob = tiny.get(`${c}/lung_prob`);
    const t = prob[prob.length >> 1]!;
    const m = lungMask(prob, { ...pre, lung_threshold: t });
    expect(m.every((v, i) => v === (prob[i]! > t ? 1 : 0))).toBe(true);
    expect(m.some((v) => v === 1) && m.some((v) => v === 0)).toBe(true);
    expect(sliceUsed(tiny.get(`${c}/lung_area`), pre)).toEqual(Array.from(tiny.get(`${c}/slice_used`), (v) => v === 1));
  });

  it.each(cases)('case %s: stage 1, stage 2 and patient head match the reference with every intermediate', (c) => {
    const info = tiny.meta<Record<string, { batch: number; size: number[]; patient_ids: number[] }>>('fixture.cases')[c]!;
    const [height, width] = info.size as [number, number];
    const p = loadPipeline(file, { batch: info.batch, height, width, intermediates: true });
    const out1 = runGraphOnCpu(p.stage1.graph, { 'seg.input': tiny.get(`${c}/seg.input`) });
    const out2 = runGraphOnCpu(p.stage2.graph, { 'cls.input': tiny.get(`${c}/cls_input`) });
    const errs = { ...compareOutputs(out1, tiny, `${c}/`), ...compareOutputs(out2, tiny, `${c}/`) };
    // Every reference intermediate must be produced by the graphs.
    const taps = tiny.names(`${c}/`).filter((n) => /^(seg|cls)\./.test(n) && n !== 'seg.input' && n !== 'cls.input');
    expect(taps.filter((n) => !(n in errs))).toEqual([]);
    for (const n of ['lung_logits', 'lung_prob', 'infection_logits_s8', 'infection_prob_s8', 'infection_prob', 'slice_embedding', 'slice_logits']) expect(errs).toHaveProperty(n);
    const pre = p.preprocess;
    const used = sliceUsed(lungArea(tiny.get(`${c}/lung_mask_given`), info.batch), pre);
    const pr = runPatientHead(p.patient, out2.slice_embedding!, used, info.patient_ids);
    expect(pr.ids).toEqual([0]);
    expect(pr.noLung).toEqual([false]);
    expect(pr.slicesUsed).toEqual([info.batch]);
    errs['patient_logits'] = relL2(pr.logits, tiny.get(`${c}/patient_logits`));
    errs['patient.pooled.0'] = relL2(pr.pooled.get(0)!, tiny.get(`${c}/patient.pooled.0`));
    record(`tiny.${c}.`, errs);
    expectAllBelow(errs);
  });

  it.each(cases)('case %s: the two-stage graph (GPU-side normalise and mask) equals stage 1, the CPU mask and stage 2', (c) => {
    const info = tiny.meta<Record<string, { batch: number; size: number[] }>>('fixture.cases')[c]!;
    const [height, width] = info.size as [number, number];
    const p = loadPipeline(file, { batch: info.batch, height, width, intermediates: true });
    const windowed = tiny.get(`${c}/windowed`);
    const out = runGraphOnCpu(p.twoStage.graph, { windowed });
    const pre = p.preprocess;
    // Stage 1 on the graph's own normalisation matches the reference.
    const errs = compareOutputs({ lung_logits: out.lung_logits!, lung_prob: out.lung_prob! }, tiny, `${c}/`);
    expect(Object.keys(errs).length).toBe(2);
    expectAllBelow(errs);
    // The stage-2 input made in the graph is the CPU's maskedInput of the graph's own mask, bit for bit, and
    // stage 2 on it gives the same outputs as the stage-2 graph alone.
    const cls = maskedInput(windowed, lungMask(out.lung_prob!, pre), info.batch, pre);
    expect(Array.from(out['cls.input']!)).toEqual(Array.from(cls));
    const alone = runGraphOnCpu(p.stage2.graph, { 'cls.input': cls });
    for (const n of ['infection_prob', 'infection_prob_s8', 'pooled', 'slice_embedding', 'slice_logits']) expect(Array.from(out[n]!), n).toEqual(Array.from(alone[n]!));
  });

  it('fused stage graphs give the same outputs', () => {
    const s = { batch: 1, height: 64, width: 48 };
    const cfg = tinyModelConfig();
    const g1 = buildStage1(cfg, s);
    const g2 = buildStage2(cfg, s);
    bindWeights(file, [g1, g2], { allowUnexpected: true });
    const r1 = fuseGraph(g1.graph);
    const r2 = fuseGraph(g2.graph);
    expect(r1.fusedSqueezeExcite).toBe(3 + 8); // 3 scSE cSE + 8 MBConv SE in features[1..4]
    expect(r1.fusedSpatialSE).toBe(3);
    expect(r2.fusedSqueezeExcite).toBe(16);
    const out1 = runGraphOnCpu(g1.graph, { 'seg.input': tiny.get('B/seg.input') });
    const out2 = runGraphOnCpu(g2.graph, { 'cls.input': tiny.get('B/cls_input') });
    const errs = { ...compareOutputs(out1, tiny, 'B/'), ...compareOutputs(out2, tiny, 'B/') };
    expect(Object.keys(errs).length).toBe(7);
    record('tiny.B.fused.', errs);
    expectAllBelow(errs);
  });

  it('patient head reports "no lung" instead of a guess when no slice qualifies', () => {
    const p = loadPipeline(file, { batch: 1, height: 64, width: 64 });
    const e = new Float32Array(3 * 16).map((_, i) => Math.sin(i));
    const r = runPatientHead(p.patient, e, [false, true, false], [7, 3, 7]);
    expect(r.ids).toEqual([3, 7]);
    expect(r.noLung).toEqual([false, true]);
    expect(r.slicesUsed).toEqual([1, 0]);
    expect(Array.from(r.logits.subarray(3)).every(Number.isNaN)).toBe(true);
    expect(Array.from(r.logits.subarray(0, 3)).every(Number.isFinite)).toBe(true);
  });

  it('reports the measured errors', () => {
    const worst = Object.entries(measured).sort((a, b) => b[1] - a[1]);
    const show = (l: Array<[string, number]>) => l.slice(0, 5).map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', ');
    console.log(`relative L2 errors: ${worst.length} tensors; worst ${show(worst)}; worst non-probability ${show(worst.filter(([n]) => !/prob/.test(n)))}`);
    expect(worst.length).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// precision 'f16' emulated on the CPU

describe("precision 'f16' emulated on the CPU (matrix-unit convolution operands and half-storage activations rounded to f16)", () => {
  // runGraphOnCpu precision 'f16' on the fused graphs the GPU compiles: the convolutions that take the matrix-unit
  // path round the same operands as the GPU, and the tensors in half storage are rounded when produced. This measures what f16 rounding does to the outputs, independently of
  // any GPU, and holds it to the stated tolerances (F16_TOL); test/parity.test.ts checks the GPU against it.
  it('EfficientNet-B7 (64x64, 48x80) and the default model (64x64, batch 2): within F16_TOL of PyTorch f32, same classes', async () => {
    for (const c of await f16Cases()) {
      fuseGraph(c.graph.graph);
      const out = runGraphOnCpu(c.graph.graph, c.inputs, { precision: 'f16' });
      for (const [name, ref] of Object.entries(c.refs)) {
        const e = outputError(name, out[name]!, ref);
        console.log(`f16 emulated ${c.name}.${name}: ${e.toExponential(2)}`);
        expect(e, `${c.name}.${name}`).toBeLessThanOrEqual(F16_TOL[c.tolKey(name)]!);
        // The f32 CPU references are within 1e-5 of these fixtures (the tests above): f16 must show its rounding.
        expect(e, `${c.name}.${name}: f16 rounding leaves a trace`).toBeGreaterThan(1e-5);
      }
      const { output, n } = c.classes;
      if (!output) continue;
      for (let r = 0; r < out[output]!.length / n; r++) expect(argmax(out[output]!, r * n, n), `${c.name} class ${r}`).toBe(argmax(c.refs[output]!, r * n, n));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// loader errors

/** The tiny weights with edits: tensors dropped / replaced / added, metadata changed. */
function editedTiny(edit: { drop?: string[]; replace?: Record<string, Partial<TensorToWrite>>; add?: TensorToWrite[]; config?: (c: any) => void; metadata?: Record<string, string> }): SafetensorsFile {
  const ts = recipeTensors(tinyRecipe)
    .filter((t) => !edit.drop?.includes(t.name))
    .map((t) => ({ ...t, ...(edit.replace?.[t.name] ?? {}) }) as TensorToWrite);
  ts.push(...(edit.add ?? []));
  const md = { ...tinyRecipe.metadata!, ...(edit.metadata ?? {}) };
  if (edit.config) {
    const c = JSON.parse(md['covidct.config']!);
    edit.config(c);
    md['covidct.config'] = JSON.stringify(c);
  }
  return openWeights(serializeSafetensors(ts, md), 'edited.safetensors');
}

function loadError(f: () => unknown): WeightsError {
  try {
    f();
  } catch (e) {
    if (e instanceof WeightsError) return e;
    throw e;
  }
  throw new Error('expected a WeightsError');
}

const S = { batch: 1, height: 64, width: 64 };

describe('weights loader errors', () => {
  it('truncated file', () => {
    const e = loadError(() => openWeights(tinyBytes.subarray(0, tinyBytes.length - 1000), 'tiny.safetensors'));
    expect(e.issues.map((i) => i.kind)).toEqual(['file']);
    expect(e.message).toMatch(/^tiny\.safetensors: cannot load weights \(1 file\)/);
    expect(e.message).toMatch(/extend past the end of the byte buffer .* file truncated\?/);
    const e2 = loadError(() => openWeights(tinyBytes.subarray(0, 5), 'tiny.safetensors'));
    expect(e2.message).toContain('shorter than the 8-byte header-size prefix');
  });

  it('unsupported dtype', () => {
    const f = editedTiny({ replace: { 'seg.head.out.bias': { dtype: 'I32', data: new Int32Array(1) } } });
    const e = loadError(() => loadPipeline(f, S));
    expect(e.issues).toHaveLength(1);
    expect(e.message).toContain('seg.head.out.bias: unsupported dtype I32 (weights must be F32, F16 or BF16)');
  });

  it('missing tensor', () => {
    const e = loadError(() => loadPipeline(editedTiny({ drop: ['cls.slice_out.weight'] }), S));
    expect(e.issues).toEqual([{ kind: 'missing', tensor: 'cls.slice_out.weight', message: 'missing tensor cls.slice_out.weight [3, 16]' }]);
    expect(e.message).toContain('(1 missing)');
  });

  it('every problem in one error: missing, unexpected, shape, dtype', () => {
    const f = editedTiny({
      drop: ['seg.dec1.conv1.weight', 'patient.fc2.bias'],
      replace: { 'cls.msff.bn.running_var': { shape: [17], data: Uint16Array.from({ length: 17 }, () => f32ToF16(1)) }, 'seg.head.bn.weight': { dtype: 'F32', data: new Float32Array(8).fill(1) }, 'patient.fc1.bias': { dtype: 'U8', data: new Uint8Array(16) } },
      add: [
        { name: 'extra.weight', dtype: 'F16', shape: [2], data: new Uint16Array(2) },
        { name: 'seg.head.bn.num_batches_tracked', dtype: 'I32', shape: [], data: new Int32Array(1) },
      ],
    });
    const e = loadError(() => loadPipeline(f, S));
    expect(e.issues.map((i) => `${i.kind} ${i.tensor}`).sort()).toEqual(['dtype patient.fc1.bias', 'missing patient.fc2.bias', 'missing seg.dec1.conv1.weight', 'shape cls.msff.bn.running_var', 'unexpected extra.weight']);
    expect(e.message).toContain('(2 missing, 1 unexpected, 1 shape mismatch, 1 unsupported dtype)');
    expect(e.message).toContain('cls.msff.bn.running_var: shape [17] in the file, the model expects [16] (probably differs: cls.fused_channels)');
    expect(e.message).toContain('unexpected tensor extra.weight [2] (not used by the model)');
  });

  it('config width does not match the weights: names the field', () => {
    const e = loadError(() => loadPipeline(editedTiny({ config: (c) => (c.seg.decoder_channels = [24, 12, 8]) }), S));
    expect(e.issues.every((i) => i.kind === 'shape')).toBe(true);
    expect(e.message).toContain('seg.dec3.up_conv.weight: shape [16, 32, 3, 3] in the file, the model expects [24, 32, 3, 3] (probably differs: seg.decoder_channels[0])');
    expect(e.configFields[0]).toBe('seg.decoder_channels[0]');
    expect(e.message).toMatch(/probably does not match the weights; check seg\.decoder_channels\[0\]/);
  });

  it('config depth / variant does not match the weights: names the field', () => {
    const e = loadError(() => loadPipeline(editedTiny({ config: (c) => (c.seg.dense_blocks = 2) }), S));
    expect(e.issues.every((i) => i.kind === 'unexpected' && i.tensor!.startsWith('seg.bottleneck.blocks.2.'))).toBe(true);
    expect(e.configFields).toEqual(['seg.dense_blocks']);
    const e2 = loadError(() => loadPipeline(editedTiny({ config: (c) => (c.cls.backbone = 'efficientnet_b1') }), S));
    expect(e2.configFields[0]).toBe('cls.backbone');
    expect(e2.message).toContain('missing tensor cls.backbone.features.2.2.block.0.0.weight [144, 24, 1, 1] (present when cls.backbone matches)');
    const e3 = loadError(() => loadPipeline(editedTiny({ config: (c) => (c.cls.slice_head_widths = [32, 16, 8]) }), S));
    expect(e3.configFields).toContain('cls.slice_head_widths');
  });

  it('invalid config: names the bad fields', () => {
    const e = loadError(() => readConfig(editedTiny({ config: (c) => ((c.seg.decoder_channels = [16, 12]), (c.cls.colour = 1), (c.bn_eps = -1)) })));
    expect(e.issues[0]!.kind).toBe('config');
    expect(e.message).toContain('seg.decoder_channels must have 3 entries, got [16,12]');
    expect(e.message).toContain('cls: unknown key "colour"');
    expect(e.message).toContain('bn_eps must be > 0, got -1');
    const e2 = loadError(() => readConfig(editedTiny({ metadata: { 'covidct.format': '2' } })));
    expect(e2.message).toContain('covidct.format is "2", this engine reads format "1"');
    expect(() => parsePreprocessConfig({ std: [1, 0, 1], resize_antialias: true })).toThrow(/preprocess\.resize_antialias must be false .*preprocess\.std\[1\] must be > 0/);
    expect(() => parseModelConfig({ seg: { encoder: 'efficientnet_b9' } })).toThrow(ConfigError);
  });

  it('config defaults and null eps follow the Python dataclasses', () => {
    const c = parseModelConfig({ seg: { encoder_bn_eps: null }, cls: { backbone: 'efficientnet_b5', backbone_bn_eps: null } });
    expect(c.seg.encoder_bn_eps).toBe(1e-5);
    expect(c.cls.backbone_bn_eps).toBe(1e-3);
    expect(parseModelConfig({})).toEqual(defaultModelConfig());
  });

  it('converts BF16 and F16 to f32 and ignores num_batches_tracked', () => {
    const bf: TensorToWrite[] = recipeTensors(tinyRecipe).map((t) => ({ ...t, dtype: 'BF16' as const, data: Float32Array.from(t.data as Uint16Array, (u) => Math.fround(bf16ToF32(f32ToBf16(f16ToF32(u))))) }));
    bf.push({ name: 'seg.head.bn.num_batches_tracked', dtype: 'I32', shape: [], data: new Int32Array([5]) });
    const f = openWeights(serializeSafetensors(bf, tinyRecipe.metadata!), 'bf16.safetensors');
    const p = loadPipeline(f, S);
    const w = p.stage1.weights.find((b) => b.source === 'seg.head.conv.weight')!;
    const expected = recipeTensors(tinyRecipe).find((t) => t.name === 'seg.head.conv.weight')!;
    const want = Float32Array.from(expected.data as Uint16Array, (u) => bf16ToF32(f32ToBf16(f16ToF32(u))));
    expect(Array.from(p.stage1.graph.weightData.get(w.id)!)).toEqual(Array.from(want));
  });
});

