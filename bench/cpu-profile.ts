/**
 * Where the time of one forward goes on a CPU-run adapter, in CPU time (docs/performance.md, "lavapipe against
 * PyTorch"). On a shared machine the wall time of a dispatch (the bench's --profile timestamps) counts the waiting
 * for a core; the CPU time of the process (user + system, the driver's threads included) does not. This runs the
 * two-stage graph once (warm), then every node's dispatches R times in one command buffer, and charges each node
 * the process CPU time of its submission divided by R (the best of a few tries), by node and by op. A node's
 * figure includes what the driver spends per dispatch (setting up the workgroups on its threads).
 *
 *   npx vite-node --config vitest.config.ts bench/cpu-profile.ts -- --config tiny --size 128 --batch 4
 *       [--software lavapipe|swiftshader] [--tiles software|auto] [--reps R] [--tries T] [--top N] [--json FILE]
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { createGpu } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { TwoStageEngine } from '../src/analysis/engine.js';
import { randomPipelineWeights } from '../src/models/random-weights.js';
import { defaultModelConfig, defaultPreprocessConfig, tinyModelConfig } from '../src/models/config.js';
import type { PreparedDispatch } from '../src/gpu/dispatch.js';
import type { TilePolicy } from '../src/gpu/caps.js';
import { settle } from '../src/gpu/wait.js';
import { syntheticWindowed } from './inputs.js';
import { benchDriverMessages, argValue, softwareArg } from './driver.js';

const config = argValue('config', 'tiny');
const size = Number(argValue('size', '128'));
const batch = Number(argValue('batch', '4'));
const reps = Number(argValue('reps', '5'));
const tries = Number(argValue('tries', '3'));
const top = Number(argValue('top', '25'));
const tiles = argValue('tiles', '') as TilePolicy | '';
const software = softwareArg('lavapipe');
const jsonOut = argValue('json', '');

const gpu = await createGpu({ forceSoftware: software, driverMessages: benchDriverMessages });
const cache = new PipelineCache(gpu.device);
const cfg = config === 'default' ? defaultModelConfig() : tinyModelConfig();
const engine = await TwoStageEngine.load(gpu, randomPipelineWeights(cfg, defaultPreprocessConfig(), 1), { batch, height: size, width: size, cache, ...(tiles ? { tiles } : {}) });
const windowed = syntheticWindowed(batch, size, size);
await engine.twoStage.run({ windowed });
await engine.twoStage.run({ windowed });
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const nodes = (engine.twoStage as unknown as { nodes: Array<{ name: string; op: string; dispatches: PreparedDispatch[] }> }).nodes;
const { device } = gpu;

/** CPU ms of `r` back-to-back runs of some dispatches, in one compute pass, one submit. */
async function cpuOf(ds: PreparedDispatch[], r: number): Promise<number> {
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  for (let i = 0; i < r; i++)
    for (const d of ds) {
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
    }
  pass.end();
  const cb = enc.finish();
  await settle(gpu, device.queue.onSubmittedWorkDone());
  const c0 = cpuMs();
  device.queue.submit([cb]);
  await settle(gpu, device.queue.onSubmittedWorkDone());
  return cpuMs() - c0;
}

// The cost of an empty submission (subtracted from every node's figure).
let empty = Infinity;
for (let i = 0; i < 5; i++) empty = Math.min(empty, await cpuOf([], 0));
const rows: Array<{ name: string; op: string; dispatches: number; cpuMs: number; flops: number }> = [];
const load0 = loadavg()[0]!;
for (const n of nodes) {
  let best = Infinity;
  for (let t = 0; t < tries; t++) best = Math.min(best, (await cpuOf(n.dispatches, reps)) - empty);
  rows.push({ name: n.name, op: n.op, dispatches: n.dispatches.length, cpuMs: Math.max(0, best) / reps, flops: n.dispatches.reduce((s, d) => s + d.flops, 0) });
}
// The whole forward, the same way (all dispatches in order, once per rep).
let whole = Infinity;
for (let t = 0; t < tries; t++) whole = Math.min(whole, ((await cpuOf(nodes.flatMap((n) => n.dispatches), reps)) - empty) / reps);
const load1 = loadavg()[0]!;
engine.destroy();

const total = rows.reduce((s, r) => s + r.cpuMs, 0);
const byOp = new Map<string, { dispatches: number; cpuMs: number; flops: number }>();
for (const r of rows) {
  const e = byOp.get(r.op) ?? { dispatches: 0, cpuMs: 0, flops: 0 };
  e.dispatches += r.dispatches;
  e.cpuMs += r.cpuMs;
  e.flops += r.flops;
  byOp.set(r.op, e);
}
const f = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));
console.log(`# CPU-time profile: ${config} ${size}x${size} batch ${batch}, ${gpu.adapterName}${tiles ? `, tiles ${tiles}` : ''}`);
console.log(`reps ${reps}, best of ${tries}; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}; empty submission ${f(empty)} ms CPU`);
console.log(`sum over nodes ${f(total)} ms CPU per forward; the whole forward in one pass ${f(whole)} ms CPU\n`);
console.log('| op | dispatches | CPU ms / forward | share | GFLOP per CPU-s |');
console.log('| --- | --- | --- | --- | --- |');
for (const [op, e] of [...byOp].sort((a, b) => b[1].cpuMs - a[1].cpuMs))
  console.log(`| ${op} | ${e.dispatches} | ${f(e.cpuMs)} | ${((100 * e.cpuMs) / total).toFixed(1)}% | ${e.flops ? (e.flops / 1e6 / e.cpuMs).toFixed(2) : '-'} |`);
console.log(`\n| node | op | CPU ms | share | GFLOP per CPU-s |\n| --- | --- | --- | --- | --- |`);
for (const r of [...rows].sort((a, b) => b.cpuMs - a.cpuMs).slice(0, top))
  console.log(`| ${r.name} | ${r.op} | ${f(r.cpuMs)} | ${((100 * r.cpuMs) / total).toFixed(1)}% | ${r.flops ? (r.flops / 1e6 / r.cpuMs).toFixed(2) : '-'} |`);
if (jsonOut) writeFileSync(jsonOut, JSON.stringify({ config, size, batch, adapter: gpu.adapterName, tiles: tiles || 'default', reps, tries, load: [load0, load1], emptyMs: empty, totalMs: total, wholeMs: whole, byOp: Object.fromEntries(byOp), nodes: rows }, null, 1));
process.exit(0);
