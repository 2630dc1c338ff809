/**
 * Roofline ceilings for the bench's per-kernel table. A dispatch with F flops and B minimum bytes cannot take
 * less than max(F / peak FLOP/s, B / peak B/s); its roofline share is that ideal time over its measured time.
 *
 * Ceilings come from, in order: the --peak-gflops / --peak-gbs flags; on an H100 adapter, the figures measured
 * there through dawn.node (measured on an H100: simple 128x128-tile f32 GEMM 32.8 TFLOP/s, vec4 stream kernel
 * 2.95 TB/s); elsewhere (SwiftShader included) two microkernels run through the engine's own ops and timed with
 * timestamp queries: a big 1x1 conv2d (the engine's implicit-GEMM path, compute-bound) and a unary copy
 * (act 'none', memory-bound). These are what the engine's own kernels reach, not the hardware's peak.
 * For precision 'f16' the GEMM ceiling is the f16 one: on an H100 GPU.md's best subgroup-matrix GEMM (51 TFLOP/s),
 * elsewhere the same 1x1 conv2d compiled with precision 'f16' (the matrix-unit path).
 */
import type { GpuContext } from '../src/gpu/device.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { compileGraph } from '../src/graph/executor.js';
import { GraphBuilder } from '../src/graph/builder.js';

/** H100 ceilings measured through dawn.node (GPU.md, 2026-11-25); f16: the subgroup-matrix GEMM's best tile. */
export const H100_CEILINGS = { gflops: 32_800, gbs: 2_950, gflopsF16: 51_000 } as const;

/** One microkernel measurement. */
export interface MicroResult {
  what: string;
  shape: string;
  flops: number;
  bytes: number;
  /** Best GPU time of the timed runs. */
  bestMs: number;
  gflops: number;
  gbs: number;
}

/** The ceilings used for roofline shares and where they came from. */
export interface Ceilings {
  gflops: number;
  gbs: number;
  gflopsSource: string;
  gbsSource: string;
  micro: MicroResult[];
}

/** Ideal time of F flops and B bytes under the ceilings, and its share of `seconds`. */
export function rooflineShare(flops: number, bytes: number, seconds: number, c: { gflops: number; gbs: number }): { idealS: number; share: number } {
  const idealS = Math.max(flops / (c.gflops * 1e9), bytes / (c.gbs * 1e9));
  return { idealS, share: seconds > 0 ? idealS / seconds : 0 };
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

/** Times one single-node graph with timestamp queries: best of `runs` profiled runs after one warm run. */
async function timeSingle(gpu: GpuContext, build: (g: GraphBuilder) => void, inputs: Record<string, Float32Array>, runs: number, precision: 'f32' | 'f16' = 'f32'): Promise<{ ns: number; flops: number; bytes: number }> {
  const g = new GraphBuilder();
  build(g);
  const compiled = await compileGraph(gpu, g.finish(), { cache: new PipelineCache(gpu.device), fuse: false, precision });
  try {
    await compiled.run(inputs);
    let best: { ns: number; flops: number; bytes: number } | null = null;
    for (let i = 0; i < runs; i++) {
      const r = await compiled.run(inputs, { profile: true });
      const t = r.timings ?? [];
      const cur = { ns: t.reduce((s, x) => s + x.ns, 0), flops: t.reduce((s, x) => s + x.flops, 0), bytes: t.reduce((s, x) => s + x.bytes, 0) };
      if (!best || cur.ns < best.ns) best = cur;
    }
    return best!;
  } finally {
    compiled.destroy();
  }
}

/** Measures the two microkernels (sizes scaled to the adapter: small on software, large on hardware). */
export async function measureMicrokernels(gpu: GpuContext, precision: 'f32' | 'f16' = 'f32'): Promise<MicroResult[]> {
  if (!gpu.features.has('timestamp-query')) throw new Error(`${gpu.adapterName} has no timestamp-query: give --peak-gflops and --peak-gbs`);
  const soft = gpu.isSoftware;
  const out: MicroResult[] = [];
  {
    const [N, K, M, S] = soft ? [1, 256, 256, 48] : [4, 1024, 1024, 64];
    const r = await timeSingle(
      gpu,
      (g) => {
        const x = g.input('x', [N, K, S, S]);
        const w = g.weight('w', [M, K, 1, 1], fill(M * K, 2));
        g.output('y', g.op1('conv2d', [x, w], { kernel: [1, 1], stride: [1, 1], pad: [0, 0], act: 'none', hasBias: false }, 'gemm'));
      },
      { x: fill(N * K * S * S, 1) },
      3,
      precision,
    );
    out.push({ what: precision === 'f16' ? 'conv2d 1x1, precision f16 (matrix units)' : 'conv2d 1x1 (implicit GEMM)', shape: `x [${N}, ${K}, ${S}, ${S}], w [${M}, ${K}, 1, 1]`, flops: r.flops, bytes: r.bytes, bestMs: r.ns / 1e6, gflops: r.flops / r.ns, gbs: r.bytes / r.ns });
  }
  {
    const maxElems = Math.floor(gpu.limits.maxStorageBufferBindingSize / 4);
    const [C, S] = soft ? [64, 256] : [256, 512];
    const n = Math.min(maxElems, C * S * S);
    const c = Math.max(1, Math.floor(n / (S * S)));
    const r = await timeSingle(
      gpu,
      (g) => {
        const x = g.input('x', [1, c, S, S]);
        g.output('y', g.op1('unary', [x], { act: 'none' }, 'copy'));
      },
      { x: fill(c * S * S, 3) },
      3,
    );
    out.push({ what: 'unary copy (stream)', shape: `[1, ${c}, ${S}, ${S}] f32`, flops: r.flops, bytes: r.bytes, bestMs: r.ns / 1e6, gflops: r.flops / r.ns, gbs: r.bytes / r.ns });
  }
  return out;
}

/** The ceilings: flags first, then GPU.md's H100 figures on an H100, else measured microkernels. */
export async function measureCeilings(gpu: GpuContext, given: { gflops?: number; gbs?: number } = {}, precision: 'f32' | 'f16' = 'f32'): Promise<Ceilings> {
  const h100 = /h100/i.test(gpu.adapterName);
  let micro: MicroResult[] = [];
  const needMeasure = (given.gflops === undefined || given.gbs === undefined) && !h100;
  if (needMeasure) micro = await measureMicrokernels(gpu, precision);
  const pick = (flag: number | undefined, h: number, measured: number | undefined, what: string): [number, string] => {
    if (flag !== undefined) return [flag, 'flag'];
    if (h100) return [h, `H100 ${what} through dawn.node (GPU.md)`];
    return [measured!, `measured here: ${what.endsWith('GEMM') ? micro[0]!.what : micro[1]!.what}`];
  };
  const [gflops, gflopsSource] =
    precision === 'f16' ? pick(given.gflops, H100_CEILINGS.gflopsF16, micro[0]?.gflops, 'subgroup-matrix f16 GEMM') : pick(given.gflops, H100_CEILINGS.gflops, micro[0]?.gflops, 'GEMM');
  const [gbs, gbsSource] = pick(given.gbs, H100_CEILINGS.gbs, micro[1]?.gbs, 'stream');
  return { gflops, gbs, gflopsSource, gbsSource, micro };
}
