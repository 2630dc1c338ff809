/**
 * The engine's other commands: `info` (the adapter), `demo` (a small network on the GPU against the CPU
 * references) and `run` (the conformance command, docs/conformance.md).
 * @module
 */
import { parseArgs } from 'node:util';
import { CONFORMANCE_MODELS, runConformance } from '../analysis/conformance.js';
import type { GpuContext } from '../gpu/device.js';
import { runGraphOnCpu } from '../graph/cpu.js';
import { compileGraph } from '../graph/executor.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors.js';
import { demoNet } from '../models/demo.js';
import { readWeightsFile } from '../models/load.js';
import { mulberry32, nmse, uniform } from '../ops/random.js';
import { EXIT, positiveInt, UsageError, type CliIO } from './common.js';

export const GPU_OPTIONS = { software: { type: 'string' }, 'dawn-flags': { type: 'string' }, debug: { type: 'boolean' } } as const;

/** `covidct info`. */
export async function info(gpu: GpuContext, io: CliIO): Promise<number> {
  const l = gpu.limits;
  io.stdout(
    [
      `adapter: ${gpu.adapterName}${gpu.isSoftware ? ' (software: timings are CPU timings)' : ''}`,
      `features: ${[...gpu.features].sort().join(', ')}`,
      `limits: maxStorageBufferBindingSize ${l.maxStorageBufferBindingSize}, maxBufferSize ${l.maxBufferSize}, maxComputeWorkgroupStorageSize ${l.maxComputeWorkgroupStorageSize}, maxComputeInvocationsPerWorkgroup ${l.maxComputeInvocationsPerWorkgroup}`,
      `subgroup size: ${gpu.subgroupMinSize}..${gpu.subgroupMaxSize}`,
    ].join('\n') + '\n',
  );
  return EXIT.ok;
}

/** `covidct demo [--batch N]`. */
export async function demo(gpu: GpuContext, argv: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({ args: argv, strict: true, options: { ...GPU_OPTIONS, batch: { type: 'string' } } });
  const batch = positiveInt(values.batch, 'batch', 2);
  const x = uniform(mulberry32(1), batch * 3 * 7 * 9);
  const t0 = performance.now();
  const compiled = await compileGraph(gpu, demoNet(batch));
  const t1 = performance.now();
  const r = await compiled.run({ x });
  const t2 = performance.now();
  const ref = runGraphOnCpu(demoNet(batch), { x });
  const lines = [
    `adapter: ${r.adapter}`,
    `demo network, batch ${batch}: ${compiled.stats.nodes} nodes, ${compiled.stats.dispatches} dispatches, arena ${compiled.stats.arenaBytes} B (unpacked ${compiled.stats.unpackedBytes} B)`,
    `fusion: ${JSON.stringify(compiled.stats.fusion)}`,
    `compile ${(t1 - t0).toFixed(1)} ms, first run ${(t2 - t1).toFixed(1)} ms`,
  ];
  let worst = 0;
  for (const [name, v] of Object.entries(r.outputs)) {
    const e = nmse(v, ref[name]!);
    worst = Math.max(worst, e);
    lines.push(`output ${name} [${v.length} values]: first ${Array.from(v.slice(0, 4), (a) => a.toFixed(5)).join(' ')}, NMSE vs CPU reference ${e.toExponential(2)}`);
  }
  compiled.destroy();
  io.stdout(lines.join('\n') + '\n');
  if (!(worst <= 1e-7)) {
    io.stderr(`covidct: FAILED: GPU and CPU differ (NMSE ${worst})\n`);
    return EXIT.other;
  }
  io.stdout('GPU result matches the CPU reference\n');
  return EXIT.ok;
}

/** `covidct run --model M --weights W --input IN --output OUT [--dump]`. */
export async function conformance(gpu: GpuContext, argv: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: { ...GPU_OPTIONS, model: { type: 'string' }, weights: { type: 'string' }, input: { type: 'string' }, output: { type: 'string' }, dump: { type: 'boolean' } },
  });
  const need = (k: 'model' | 'weights' | 'input' | 'output') => {
    const v = values[k];
    if (!v) throw new UsageError(`covidct run needs --${k} (models: ${CONFORMANCE_MODELS.join(', ')})`);
    return v;
  };
  const model = need('model');
  const [weightsPath, inputPath, outputPath] = [need('weights'), need('input'), need('output')];
  const weights = await readWeightsFile(weightsPath);
  const inputs = await readSafetensorsFile(inputPath);
  const t0 = performance.now();
  const { tensors, adapter } = await runConformance(gpu, model, weights, inputs, { dump: !!values.dump });
  const ms = performance.now() - t0;
  await writeSafetensorsFile(
    outputPath,
    tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: t.data })),
    { 'covidct.adapter': adapter, 'covidct.model': model, 'covidct.weights': weightsPath },
  );
  io.stdout([`adapter: ${adapter}`, `${model}: wrote ${tensors.length} tensors to ${outputPath} (${ms.toFixed(0)} ms including compilation)`, ...tensors.map((t) => `  ${t.name} [${t.shape.join(', ')}]`)].join('\n') + '\n');
  return EXIT.ok;
}
