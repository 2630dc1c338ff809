/**
 * What a software driver's shader compiler spends on each of our pipelines (docs/performance.md, "Without a
 * GPU"). lavapipe compiles a pipeline's LLVM code when its first dispatch executes, inside that dispatch's
 * timestamps: this runs the two-stage graph twice with a timestamp per dispatch and charges each pipeline the
 * first run's extra time over the second's. Run it with an empty Mesa shader cache for the cold figures:
 *
 *   MESA_SHADER_CACHE_DIR=$(mktemp -d) npx vite-node --config vitest.config.ts bench/compile-cost.ts -- --config tiny --size 64 --batch 4
 *
 * (or MESA_SHADER_CACHE_DISABLE=true); with the same directory again for the warm figures. Options: --config
 * tiny|default, --size S, --batch N, --software lavapipe|swiftshader, --top N.
 */
import { createGpu } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { randomPipelineWeights } from '../src/models/random-weights.js';
import { defaultModelConfig, defaultPreprocessConfig, tinyModelConfig } from '../src/models/config.js';
import type { PreparedDispatch } from '../src/gpu/dispatch.js';
import { syntheticWindowed } from './inputs.js';
import { loadavg } from 'node:os';
import { benchDriverMessages, argValue, softwareArg } from './driver.js';

const config = argValue('config', 'tiny');
const size = Number(argValue('size', '64'));
const batch = Number(argValue('batch', '4'));
const top = Number(argValue('top', '25'));
const software = softwareArg(undefined);

const t0 = performance.now();
const gpu = await createGpu({ forceSoftware: software, driverMessages: benchDriverMessages });
const cache = new PipelineCache(gpu.device);
const cfg = config === 'default' ? defaultModelConfig() : tinyModelConfig();
const engine = await TwoStageEngine.load(gpu, randomPipelineWeights(cfg, defaultPreprocessConfig(), 1), { batch, height: size, width: size, cache });
const t1 = performance.now();
const windowed = syntheticWindowed(batch, size, size);
// The executor's dispatches in encoding order (the order of RunResult.timings); their pipelines are labelled by key.
const nodes = (engine.twoStage as unknown as { nodes: Array<{ dispatches: PreparedDispatch[] }> }).nodes;
const pipelineOf = nodes.flatMap((n) => n.dispatches.map((d) => d.pipeline.label));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const loadCpuMs = cpuMs();
const runs: Array<{ wallMs: number; cpuMs: number; ns: number[] }> = [];
for (let i = 0; i < 3; i++) {
  const s = performance.now();
  const c = cpuMs();
  const r = await engine.twoStage.run({ windowed }, { profile: true });
  runs.push({ wallMs: performance.now() - s, cpuMs: cpuMs() - c, ns: (r.timings ?? []).map((t) => t.ns) });
  console.error(`run ${i + 1}: ${runs[i]!.wallMs.toFixed(0)} ms wall, ${runs[i]!.cpuMs.toFixed(0)} ms CPU (load average ${loadavg()[0]!.toFixed(1)})`);
}
engine.destroy();

const [cold, warm, warm2] = runs as [(typeof runs)[0], (typeof runs)[0], (typeof runs)[0]];
const steady = warm.ns.map((v, i) => Math.min(v, warm2.ns[i]!));
const byPipeline = new Map<string, { dispatches: number; coldMs: number; extraMs: number }>();
pipelineOf.forEach((key, i) => {
  const e = byPipeline.get(key) ?? { dispatches: 0, coldMs: 0, extraMs: 0 };
  e.dispatches++;
  e.coldMs += cold.ns[i]! / 1e6;
  e.extraMs += Math.max(0, cold.ns[i]! - steady[i]!) / 1e6;
  byPipeline.set(key, e);
});
const rows = [...byPipeline.entries()].sort((a, b) => b[1].extraMs - a[1].extraMs);
const total = rows.reduce((s, [, e]) => s + e.extraMs, 0);
const byKernel = new Map<string, { pipelines: number; extraMs: number }>();
for (const [key, e] of rows) {
  const k = key.split(':').slice(0, 2).join(':');
  const x = byKernel.get(k) ?? { pipelines: 0, extraMs: 0 };
  x.pipelines++;
  x.extraMs += e.extraMs;
  byKernel.set(k, x);
}
console.log(`adapter: ${gpu.adapterName}`);
console.log(`${config} config, ${size} x ${size}, batch ${batch}: ${pipelineOf.length} dispatches, ${rows.length} pipelines; load + compile ${(t1 - t0).toFixed(0)} ms (${loadCpuMs.toFixed(0)} ms CPU)`);
console.log(`runs (profiled, one pass per dispatch): first ${cold.wallMs.toFixed(0)} ms (${cold.cpuMs.toFixed(0)} ms CPU), then ${warm.wallMs.toFixed(0)} ms (${warm.cpuMs.toFixed(0)} CPU), ${warm2.wallMs.toFixed(0)} ms (${warm2.cpuMs.toFixed(0)} CPU); load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
console.log(`first-use cost (first run minus steady, summed): ${total.toFixed(0)} ms`);
console.log('\n| kernel:entry | pipelines | first-use ms |\n| --- | --- | --- |');
for (const [k, x] of [...byKernel.entries()].sort((a, b) => b[1].extraMs - a[1].extraMs)) console.log(`| ${k} | ${x.pipelines} | ${x.extraMs.toFixed(0)} |`);
console.log(`\n| pipeline (kernel:entry:defines) | dispatches | first-use ms |\n| --- | --- | --- |`);
for (const [key, e] of rows.slice(0, top)) console.log(`| ${key} | ${e.dispatches} | ${e.extraMs.toFixed(0)} |`);
gpu.destroy();
process.exit(0);
