#!/usr/bin/env node
/**
 * The covidct command line.
 *   covidct analyze [--weights W] [--input IN] [--batch N] [--size S] [--json]
 *                              the main job: two-stage analysis of a CT volume (default: an embedded synthetic
 *                              phantom and seeded random weights of the tiny config, clearly labelled as such)
 *   covidct info               the adapter, its features and limits
 *   covidct demo [--batch N]   runs the demo network on the GPU and checks it against the CPU references
 *   covidct run --model <name> --weights <file> --input <in.safetensors> --output <out.safetensors> [--dump]
 *                              the conformance command: any built-in model on tensors from a file (docs/conformance.md)
 */
import { createGpu, parseDawnFlags, parseSoftwareOption, type GpuContext } from '../gpu/device.js';
import { runGraphOnCpu } from '../graph/cpu.js';
import { compileGraph } from '../graph/executor.js';
import { demoNet } from '../models/demo.js';
import { CONFORMANCE_MODELS, runConformance } from '../analysis/conformance.js';
import { readWeightsFile } from '../models/load.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors.js';
import { defaultPreprocessConfig, tinyModelConfig } from '../models/config.js';
import { TwoStageEngine } from '../analysis/engine.js';
import { chestPhantom } from '../analysis/phantom.js';
import { randomPipelineWeights } from '../models/random-weights.js';
import { mulberry32, nmse, uniform } from '../ops/random.js';

/** Parses `--name value` and `--flag` arguments. */
export function parseArgs(argv: string[]): { positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--')) {
      const [k, v] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (v !== undefined) flags.set(k, v);
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags.set(k, argv[++i]!);
      else flags.set(k, 'true');
    } else positional.push(a);
  }
  return { positional, flags };
}

function gpuOptions(flags: Map<string, string>) {
  return {
    forceSoftware: parseSoftwareOption(flags.get('software')),
    dawnFlags: flags.has('dawn-flags') ? parseDawnFlags(flags.get('dawn-flags')!) : [],
  };
}

async function info(gpu: GpuContext): Promise<void> {
  console.log(`adapter: ${gpu.adapterName}${gpu.isSoftware ? ' (software: timings are CPU timings)' : ''}`);
  console.log(`features: ${[...gpu.features].sort().join(', ')}`);
  const l = gpu.limits;
  console.log(`limits: maxStorageBufferBindingSize ${l.maxStorageBufferBindingSize}, maxBufferSize ${l.maxBufferSize}, maxComputeWorkgroupStorageSize ${l.maxComputeWorkgroupStorageSize}, maxComputeInvocationsPerWorkgroup ${l.maxComputeInvocationsPerWorkgroup}`);
  console.log(`subgroup size: ${gpu.subgroupMinSize}..${gpu.subgroupMaxSize}`);
}

async function demo(gpu: GpuContext, flags: Map<string, string>): Promise<number> {
  const batch = Number(flags.get('batch') ?? 2);
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a positive integer, got ${flags.get('batch')}`);
  const x = uniform(mulberry32(1), batch * 3 * 7 * 9);
  const t0 = performance.now();
  const compiled = await compileGraph(gpu, demoNet(batch));
  const t1 = performance.now();
  const r = await compiled.run({ x });
  const t2 = performance.now();
  const ref = runGraphOnCpu(demoNet(batch), { x });
  console.log(`adapter: ${r.adapter}`);
  console.log(`demo network, batch ${batch}: ${compiled.stats.nodes} nodes, ${compiled.stats.dispatches} dispatches, arena ${compiled.stats.arenaBytes} B (unpacked ${compiled.stats.unpackedBytes} B)`);
  console.log(`fusion: ${JSON.stringify(compiled.stats.fusion)}`);
  console.log(`compile ${(t1 - t0).toFixed(1)} ms, first run ${(t2 - t1).toFixed(1)} ms`);
  let worst = 0;
  for (const [name, v] of Object.entries(r.outputs)) {
    const e = nmse(v, ref[name]!);
    worst = Math.max(worst, e);
    console.log(`output ${name} [${v.length} values]: first ${Array.from(v.slice(0, 4), (a) => a.toFixed(5)).join(' ')}, NMSE vs CPU reference ${e.toExponential(2)}`);
  }
  compiled.destroy();
  if (!(worst <= 1e-7)) {
    console.error(`FAILED: GPU and CPU differ (NMSE ${worst})`);
    return 1;
  }
  console.log('GPU result matches the CPU reference');
  return 0;
}

async function conformance(gpu: GpuContext, flags: Map<string, string>): Promise<number> {
  const need = (k: string) => {
    const v = flags.get(k);
    if (!v || v === 'true') throw new Error(`covidct run needs --${k} (models: ${CONFORMANCE_MODELS.join(', ')})`);
    return v;
  };
  const model = need('model');
  const [weightsPath, inputPath, outputPath] = [need('weights'), need('input'), need('output')];
  const weights = await readWeightsFile(weightsPath);
  const inputs = await readSafetensorsFile(inputPath);
  const t0 = performance.now();
  const { tensors, adapter } = await runConformance(gpu, model, weights, inputs, { dump: flags.get('dump') === 'true' });
  const ms = performance.now() - t0;
  await writeSafetensorsFile(
    outputPath,
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
    { 'covidct.adapter': adapter, 'covidct.model': model, 'covidct.weights': weightsPath },
  );
  console.log(`adapter: ${adapter}`);
  console.log(`${model}: wrote ${tensors.length} tensors to ${outputPath} (${ms.toFixed(0)} ms including compilation)`);
  for (const t of tensors) console.log(`  ${t.name} [${t.shape.join(', ')}]`);
  return 0;
}

function positiveInt(flags: Map<string, string>, key: string, fallback: number): number {
  const raw = flags.get(key);
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${key} must be a positive integer, got '${raw}'`);
  return v;
}

async function analyze(gpu: GpuContext, flags: Map<string, string>): Promise<number> {
  const weights = flags.has('weights') ? await readWeightsFile(flags.get('weights')!) : randomPipelineWeights(tinyModelConfig(), defaultPreprocessConfig(), 1);
  let hu: Float32Array;
  let shape: [number, number, number, number];
  let what: string;
  let spacing: Float32Array | undefined;
  if (flags.has('input')) {
    const f = await readSafetensorsFile(flags.get('input')!);
    if (!f.has('hu')) throw new Error(`${f.name}: no tensor 'hu' [slices, 1, H, W] of Hounsfield units (has: ${f.names().join(', ')})`);
    const s = f.info('hu').shape;
    if (s.length !== 4 || s[1] !== 1) throw new Error(`${f.name}: 'hu' must be [slices, 1, H, W], got [${s.join(', ')}]`);
    hu = f.getF32('hu');
    shape = [s[0]!, 1, s[2]!, s[3]!];
    if (f.has('voxel_volume')) spacing = f.getF32('voxel_volume');
    what = f.name;
  } else {
    const p = chestPhantom({ slices: 4, height: 96, width: 96 });
    hu = p.hu;
    shape = p.shape;
    what = `synthetic chest phantom (${shape[0]} slices of ${shape[2]} x ${shape[3]})`;
  }
  const size = flags.has('size') ? positiveInt(flags, 'size', 64) : undefined;
  const t0 = performance.now();
  const precision = flags.get('precision') ?? 'f32';
  if (precision !== 'f32' && precision !== 'f16') throw new Error(`--precision must be f32 or f16, got ${precision}`);
  const storage = flags.get('storage') ?? precision;
  if (storage !== 'f32' && storage !== 'f16') throw new Error(`--storage must be f32 or f16, got ${storage}`);
  const engine = await TwoStageEngine.load(gpu, weights, { batch: positiveInt(flags, 'batch', Math.min(4, shape[0])), precision, storage, ...(size ? { height: size, width: size } : {}) });
  const t1 = performance.now();
  try {
    const report = await engine.analyzeHU(hu, shape, spacing);
    const t2 = performance.now();
    if (flags.get('json') === 'true') {
      const { result, ...rest } = report;
      console.log(JSON.stringify({ ...rest, input: what, compileMs: t1 - t0, runMs: t2 - t1 }, null, 2));
      void result;
      return 0;
    }
    console.log(`adapter: ${report.adapter}${gpu.isSoftware ? ' (software)' : ''}`);
    console.log(`input: ${what}`);
    console.log(`weights: ${weights.name}${report.weightsSource ? ` (${report.weightsSource})` : ''}`);
    console.log(`model size ${engine.height} x ${engine.width}, batch ${engine.batch}; compile ${(t1 - t0).toFixed(0)} ms, analysis ${(t2 - t1).toFixed(0)} ms`);
    console.log('slice  lung area  infected  ' + report.classNames.map((n) => n.padStart(13)).join('') + '  used');
    report.slices.forEach((s, i) =>
      console.log(
        `${String(i).padStart(5)}  ${(s.lungArea * 100).toFixed(1).padStart(8)}%  ${Number.isNaN(s.infectedFraction) ? '      -' : `${(s.infectedFraction * 100).toFixed(1).padStart(6)}%`}  ` +
          s.probs.map((p) => p.toFixed(3).padStart(13)).join('') +
          `  ${s.used ? 'yes' : 'no'}`,
      ),
    );
    const p = report.patient;
    if (p.lungFound) {
      console.log(`patient: ${p.label} (${p.probs.map((v, i) => `${report.classNames[i]} ${v.toFixed(3)}`).join(', ')}), ${p.slicesUsed} slices used, lung involvement ${p.lungInvolvementPct.toFixed(1)}%, uncertainty (normalised entropy) ${p.uncertainty.toFixed(3)}`);
    } else {
      console.log(`patient: no lung found (${p.message})`);
    }
    return 0;
  } finally {
    engine.destroy();
  }
}

async function main(argv: string[]): Promise<number> {
  const { positional, flags } = parseArgs(argv);
  const cmd = positional[0] ?? 'analyze';
  if (cmd === 'help' || flags.has('help')) {
    console.log(
      [
        'usage: covidct <command> [--software[=lavapipe|swiftshader]] [--dawn-flags a,b]',
        '  (adapter: a hardware GPU, else lavapipe, else SwiftShader; --software: a software driver even with a GPU)',
        '  analyze [--weights W.safetensors] [--input CT.safetensors] [--batch N] [--size S] [--precision f32|f16] [--storage f32|f16] [--json]',
        "                            two-stage analysis; default: embedded phantom + seeded random weights (tiny config)",
        "                            (CT.safetensors holds 'hu' [slices, 1, H, W] in HU, optional 'voxel_volume' [slices])",
        '                            f16: pointwise convolutions on the matrix units (needs shader-f16 and subgroup matrices)',
        '                            --storage f16: activations kept as f16 between layers, any adapter (default: the precision)',
        '  info                      adapter, features, limits',
        '  demo [--batch N]          demo network on the GPU vs the CPU references',
        '  run --model M --weights W.safetensors --input IN.safetensors --output OUT.safetensors [--dump]',
        `                            models: ${CONFORMANCE_MODELS.join(', ')}`,
      ].join('\n'),
    );
    return 0;
  }
  const gpu = await createGpu(gpuOptions(flags));
  try {
    switch (cmd) {
      case 'analyze':
        return await analyze(gpu, flags);
      case 'info':
        await info(gpu);
        return 0;
      case 'demo':
        return await demo(gpu, flags);
      case 'run':
        return await conformance(gpu, flags);
      default:
        console.error(`unknown command '${cmd}' (try: covidct help)`);
        return 2;
    }
  } finally {
    gpu.destroy();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`covidct: ${(e as Error).name}: ${(e as Error).message}`);
    process.exit(1);
  },
);
