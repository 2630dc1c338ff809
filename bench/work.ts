/**
 * Work of a graph from its DispatchSpecs, without a device: every live node's op is asked for its dispatches
 * exactly as the executor asks (same views from the memory plan, same caps), and their `flops` (2 x multiply-
 * adds) and `bytes` (minimum traffic: each input read once, each output written once) are summed, in total and
 * by op. This is the roofline's numerator; the executor's `stats.flops` is the same sum over the compiled graph.
 */
import { fuseGraph } from '../src/graph/fuse.js';
import type { Graph } from '../src/graph/ir.js';
import { nodeContext, opScratchBytes, planMemory, type MemoryPlan } from '../src/graph/plan.js';
import { halfTensors, type Storage } from '../src/graph/storage.js';
import type { GpuCaps } from '../src/ops/op.js';
import { getOp } from '../src/ops/registry.js';

/** Summed work of a graph. */
export interface GraphWork {
  dispatches: number;
  flops: number;
  bytes: number;
  /** Constants on the device: the weights a dispatch binds and the prepared operands (OpDef.prepare), unaligned. */
  weightBytes: number;
  /** By op name: dispatches, flops, bytes. */
  byOp: Record<string, { dispatches: number; flops: number; bytes: number }>;
  /** By model part ({@link moduleOf} of the node name): dispatches, flops, bytes. */
  byModule: Record<string, { dispatches: number; flops: number; bytes: number }>;
  /**
   * With ceilings: the least time the graph can take under them, summed per dispatch
   * (max(flops / peak FLOP/s, bytes / peak B/s) each), in seconds.
   */
  rooflineS?: number;
}

/** Device limits the ops read when choosing grids and tiles; `WEBGPU_DEFAULT_CAPS` when no device is at hand. */
export function capsOf(limits: Partial<Record<keyof GPUSupportedLimits, number>>, features: string[] = [], subgroupMinSize = 0): GpuCaps {
  const base: Record<string, number> = {
    maxComputeWorkgroupsPerDimension: 65535,
    maxComputeWorkgroupStorageSize: 16384,
    maxComputeInvocationsPerWorkgroup: 256,
    maxStorageBufferBindingSize: 134217728,
    maxBufferSize: 268435456,
  };
  return { limits: { ...base, ...limits } as unknown as GPUSupportedLimits, features: new Set(features), subgroupMinSize };
}

/** SwiftShader's limits as the engine's device gets them (GPU.md), for planning without a device. */
export const SWIFTSHADER_CAPS = capsOf({ maxComputeWorkgroupStorageSize: 32768, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 32 }, ['subgroups', 'timestamp-query'], 4);

/**
 * The model part a node belongs to, from its name: an EfficientNet stage (`seg.encoder.features.3`,
 * `cls.backbone.features.5`, `features.5`), a decoder stage's block (`seg.dec1.gru`), else the first two
 * name components (`seg.bottleneck`, `cls.msff`).
 */
export function moduleOf(node: string): string {
  const p = node.split('.');
  const f = p.indexOf('features');
  if (f >= 0 && f + 1 < p.length) return p.slice(0, f + 2).join('.');
  if (/^dec\d$/.test(p[1] ?? '') && p.length > 2) return p.slice(0, 3).join('.');
  return p.slice(0, 2).join('.');
}

/** The work of a graph that is already fused and planned (e.g. `compiled.graph`, `compiled.plan`). */
export function graphWork(graph: Graph, plan: MemoryPlan, caps: GpuCaps, ceilings?: { gflops: number; gbs: number }): GraphWork {
  const w: GraphWork = { dispatches: 0, flops: 0, bytes: 0, weightBytes: 0, byOp: {}, byModule: {}, ...(ceilings ? { rooflineS: 0 } : {}) };
  const bound = new Set<number>();
  for (const n of graph.liveNodes()) {
    const op = getOp(n.op);
    const ctx = nodeContext(graph, n, caps, plan.half, plan);
    const specs = op.dispatch(ctx);
    for (const s of specs) for (const b of s.bindings) if ('input' in b && ctx.constant![b.input]) bound.add(n.inputs[b.input]!);
    for (const p of op.prepare?.(ctx) ?? []) w.weightBytes += p.words * 4;
    const e = (w.byOp[n.op] ??= { dispatches: 0, flops: 0, bytes: 0 });
    const mod = (w.byModule[moduleOf(n.name)] ??= { dispatches: 0, flops: 0, bytes: 0 });
    for (const s of specs) {
      w.dispatches++;
      w.flops += s.flops ?? 0;
      w.bytes += s.bytes ?? 0;
      for (const x of [e, mod]) {
        x.dispatches++;
        x.flops += s.flops ?? 0;
        x.bytes += s.bytes ?? 0;
      }
      if (ceilings) w.rooflineS! += Math.max((s.flops ?? 0) / (ceilings.gflops * 1e9), (s.bytes ?? 0) / (ceilings.gbs * 1e9));
    }
  }
  for (const id of bound) w.weightBytes += graph.weightData.get(id)!.length * 4;
  return w;
}

/**
 * Fuses (unless `fuse` is false) and plans a graph as `compileGraph` would, then sums its work. The graph is
 * modified in place by the fusion passes, which need its weights' data (BatchNorm folding).
 */
export function planWork(graph: Graph, caps: GpuCaps = SWIFTSHADER_CAPS, fuse = true, ceilings?: { gflops: number; gbs: number }, storage: Storage = 'f32'): GraphWork & { arenaBytes: number } {
  if (fuse) fuseGraph(graph);
  else graph.compact();
  const half = storage === 'f16' ? halfTensors(graph, caps.tiles) : new Set<number>();
  const plan = planMemory(graph, opScratchBytes(graph, caps, half), half);
  return { ...graphWork(graph, plan, caps, ceilings), arenaBytes: plan.arenaBytes };
}

/** H100-like limits for planning (GPU.md: 2 GiB storage bindings, 48 KiB workgroup storage). */
export const H100_CAPS = capsOf({ maxComputeWorkgroupStorageSize: 49152, maxStorageBufferBindingSize: 2 ** 31, maxBufferSize: 2 ** 34 }, ['shader-f16', 'subgroups', 'timestamp-query'], 32);
