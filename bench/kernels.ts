/**
 * Kernel microbench: times single-op graphs on the adapter, one line per (case, tile policy), with timestamp
 * queries (best of R profiled runs after a warm run) and the process's CPU time per run. For comparing kernel
 * variants on a software adapter (docs/performance.md, "lavapipe against PyTorch"):
 *
 *   npx vite-node --config vitest.config.ts bench/kernels.ts -- [--software lavapipe|swiftshader] [--tiles software,auto]
 *       [--only SUBSTRING] [--repeats R] [--ab NAME=VALUE,...] [--ablate b,x,w]
 *
 * --ab compiles every case a second time with those kernel defines overridden (e.g. WSTAGE=0) and runs the two
 * alternately, R times each, reporting the median of the per-pair CPU-time ratios: on a shared machine the
 * contention hits both sides of a pair alike, where separate runs minutes apart differ by 2x. --ablate (implies an
 * A/B) takes parts out of conv2d_sg's second compile (ablateConvSg: the broadcasts, input loads, weight loads) to see
 * what each costs; the figure is the process's CPU time per run, the run's upload and readback included.
 */
import { createGpu } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { compileGraph } from '../src/graph/executor.js';
import { GraphBuilder } from '../src/graph/builder.js';
import type { TilePolicy } from '../src/gpu/caps.js';
import type { DefineValue } from '../src/wgsl/preprocess.js';
import { benchDriverMessages, argValue, softwareArg } from './driver.js';
import { ablateConvSg } from './ablate.js';

/** A pipeline cache that compiles every kernel with some defines overridden, and conv2d_sg ablated (the --ab variant). */
class OverrideCache extends PipelineCache {
  /** Whether a conv2d_sg pipeline was compiled ablated (a case that never uses conv2d_sg has nothing to ablate). */
  ablated = false;
  constructor(device: GPUDevice, private readonly over: Record<string, DefineValue>, private readonly ablate = '') {
    super(device);
  }
  protected override source(kernel: string, defines: Record<string, DefineValue>): string {
    const src = super.source(kernel, { ...defines, ...this.over });
    if (kernel !== 'conv2d_sg' || !this.ablate) return src;
    this.ablated = true;
    return ablateConvSg(src, this.ablate);
  }
}

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return a;
}

interface Case {
  name: string;
  build: (g: GraphBuilder) => void;
  inputs: Record<string, Float32Array>;
}

function conv(name: string, N: number, Cin: number, Cout: number, S: number, k: number, stride = 1, act: 'none' | 'silu' = 'silu'): Case {
  return {
    name: `conv ${name} ${N}x${Cin}->${Cout} ${S}x${S} k${k}s${stride}`,
    build: (g) => {
      const x = g.input('x', [N, Cin, S, S]);
      const w = g.weight('w', [Cout, Cin, k, k], fill(Cout * Cin * k * k, 2));
      const b = g.weight('b', [Cout], fill(Cout, 3));
      g.output('y', g.op1('conv2d', [x, w, b], { kernel: [k, k], stride: [stride, stride], pad: [(k - 1) >> 1, (k - 1) >> 1], act, hasBias: true }, 'conv'));
    },
    inputs: { x: fill(N * Cin * S * S, 1) },
  };
}

function dw(name: string, N: number, C: number, S: number, k: number, stride = 1, pool = false): Case {
  return {
    name: `dw ${name} ${N}x${C} ${S}x${S} k${k}s${stride}${pool ? ' pool' : ''}`,
    build: (g) => {
      const x = g.input('x', [N, C, S, S]);
      const w = g.weight('w', [C, 1, k, k], fill(C * k * k, 2));
      const b = g.weight('b', [C], fill(C, 3));
      const outs = g.op('depthwise', [x, w, b], { kernel: k, stride, act: 'silu', pool }, 'dw');
      g.output('y', outs[0]!);
      if (pool) g.output('p', outs[1]!);
    },
    inputs: { x: fill(N * C * S * S, 1) },
  };
}

function copy(C: number, S: number): Case {
  return {
    name: `unary copy 1x${C} ${S}x${S}`,
    build: (g) => {
      const x = g.input('x', [1, C, S, S]);
      g.output('y', g.op1('unary', [x], { act: 'none' }, 'copy'));
    },
    inputs: { x: fill(C * S * S, 1) },
  };
}

const CASES: Case[] = [
  conv('pw-expand', 4, 24, 144, 32, 1),
  conv('pw-project', 4, 144, 24, 32, 1),
  conv('pw-big', 1, 256, 256, 48, 1),
  conv('3x3-gru', 4, 64, 64, 32, 3),
  conv('3x3-small', 4, 32, 32, 64, 3),
  conv('stem', 4, 3, 32, 128, 3, 2),
  conv('head1', 4, 16, 1, 128, 1, 1, 'none'),
  conv('deep', 1, 320, 1280, 4, 1),
  conv('head8', 4, 8, 8, 128, 3),
  conv('gru16', 4, 16, 16, 64, 3),
  conv('up12', 4, 12, 8, 64, 3),
  dw('b0-s1', 4, 96, 64, 3),
  dw('b0-s2', 4, 144, 32, 5, 2, true),
  dw('b0-late', 4, 672, 8, 5, 1, true),
  copy(64, 256),
];

const software = softwareArg('lavapipe');
const policies = argValue('tiles', 'software').split(',') as TilePolicy[];
const only = argValue('only', '');
const repeats = Number(argValue('repeats', '3'));
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const ab = Object.fromEntries(
  argValue('ab', '')
    .split(',')
    .filter(Boolean)
    .map((kv) => kv.split('=') as [string, string])
    .map(([k, v]) => [k, Number.isFinite(Number(v)) ? Number(v) : v]),
) as Record<string, DefineValue>;
const ablate = argValue('ablate', '');
const gpu = await createGpu({ forceSoftware: software, driverMessages: benchDriverMessages });
console.log(`adapter: ${gpu.adapterName}`);
async function abRun(c: Case, tiles: TilePolicy): Promise<void> {
  const make = async (cache: PipelineCache) => {
    const g = new GraphBuilder();
    c.build(g);
    return compileGraph(gpu, g.finish(), { cache, fuse: false, tiles });
  };
  const a = await make(new PipelineCache(gpu.device));
  const override = new OverrideCache(gpu.device, ab, ablate);
  const b = await make(override);
  await a.run(c.inputs);
  await b.run(c.inputs);
  const ratios: number[] = [];
  let ca = Infinity;
  let cb = Infinity;
  for (let i = 0; i < repeats; i++) {
    let t = cpuMs();
    await a.run(c.inputs);
    const ta = cpuMs() - t;
    t = cpuMs();
    await b.run(c.inputs);
    const tb = cpuMs() - t;
    ratios.push(tb / ta);
    ca = Math.min(ca, ta);
    cb = Math.min(cb, tb);
  }
  ratios.sort((x, y) => x - y);
  const med = ratios[ratios.length >> 1]!;
  console.log(`${c.name.padEnd(44)} ${tiles.padEnd(9)} cpu best ${ca.toFixed(1).padStart(7)} ms vs ${cb.toFixed(1).padStart(7)} ms with ${JSON.stringify(ab)}${ablate ? (override.ablated ? ` conv2d_sg without ${ablate}` : ' (no conv2d_sg in this case: nothing ablated)') : ''}: median ratio ${med.toFixed(3)} (quartiles ${ratios[ratios.length >> 2]!.toFixed(3)}..${ratios[(3 * ratios.length) >> 2]!.toFixed(3)})`);
  a.destroy();
  b.destroy();
}

for (const c of CASES) {
  if (only && !c.name.includes(only)) continue;
  for (const tiles of policies) {
    if (Object.keys(ab).length || ablate) {
      await abRun(c, tiles);
      continue;
    }
    const g = new GraphBuilder();
    c.build(g);
    const compiled = await compileGraph(gpu, g.finish(), { cache: new PipelineCache(gpu.device), fuse: false, tiles });
    try {
      await compiled.run(c.inputs);
      let best = Infinity;
      let flops = 0;
      let bytes = 0;
      let bestCpu = Infinity;
      for (let i = 0; i < repeats; i++) {
        const c0 = cpuMs();
        const r = await compiled.run(c.inputs, { profile: true });
        bestCpu = Math.min(bestCpu, cpuMs() - c0);
        const t = r.timings ?? [];
        const ns = t.reduce((s, x) => s + x.ns, 0);
        if (ns < best) {
          best = ns;
          flops = t.reduce((s, x) => s + x.flops, 0);
          bytes = t.reduce((s, x) => s + x.bytes, 0);
        }
      }
      console.log(
        `${c.name.padEnd(44)} ${tiles.padEnd(9)} ${(best / 1e6).toFixed(2).padStart(9)} ms  cpu ${bestCpu.toFixed(1).padStart(8)} ms  ${(flops / best).toFixed(2).padStart(7)} GFLOP/s  ${(bytes / best).toFixed(2).padStart(6)} GB/s`,
      );
    } finally {
      compiled.destroy();
    }
  }
}
process.exit(0);
