/**
 * The static memory plan.
 *
 * Contract (as ggml's allocator states its own):
 *  - graph inputs get their own buffers, graph outputs get their own buffers: neither is ever aliased by or
 *    reused for another tensor, so a caller may read outputs while the next run's inputs upload;
 *  - weights live in their own buffers for the life of the compiled graph;
 *  - every other tensor (and each node's scratch) gets an offset in one arena; two tensors share bytes only
 *    when their lifetimes (first write .. last read, in node order) do not overlap;
 *  - a concat's inputs are placed inside the concat's buffer at their channel offset when their producer can
 *    write there (a "view"), so the concat costs nothing; the others are copied by the concat node.
 * Offsets are 256-byte aligned (minStorageBufferOffsetAlignment).
 */
import type { BufferNeed } from '../gpu/limits.js';
import { halfWords } from '../ops/half.js';
import { denseView, numel, type GpuCaps, type OpContext, type View } from '../ops/op.js';
import { getOp } from '../ops/registry.js';
import { GraphError, type Graph, type NodeInfo } from './ir.js';
import { nodeHalf } from './storage.js';

/** Offset alignment of arena placements. */
export const PLAN_ALIGN = 256;

/** Where a base tensor lives. */
export type Placement =
  | { where: 'arena'; offset: number; bytes: number }
  | { where: 'input' | 'output' | 'weight'; bytes: number };

/** A placed buffer region and the node interval during which it is live. */
export interface PlannedBuffer {
  /** Tensor id of the base, or -1 - k for the scratch buffer k of a node. */
  key: number;
  label: string;
  bytes: number;
  offset: number;
  firstStep: number;
  lastStep: number;
}

/** Result of {@link planMemory}. */
export interface MemoryPlan {
  /** For every tensor that is a view: its base tensor and channel offset. */
  views: Map<number, { base: number; cOff: number }>;
  /** Placement of every base tensor. */
  placements: Map<number, Placement>;
  /** Arena regions, with lifetimes (what the overlap test checks). */
  arena: PlannedBuffer[];
  /** Scratch regions per node id: offsets in the arena. */
  scratch: Map<number, PlannedBuffer[]>;
  /** Arena size in bytes (the peak of simultaneously live tensors, after packing). */
  arenaBytes: number;
  /** Sum of the arena tensors' sizes: what a plan without reuse would need. */
  unpackedBytes: number;
  /** Bytes of graph inputs, outputs and weights (outside the arena). */
  dedicatedBytes: number;
  /** Tensors stored as packed f16 (half storage, src/graph/storage.ts): half the bytes. */
  half: ReadonlySet<number>;
}

/** Resolves a tensor to its base and channel view. */
export function resolveView(plan: MemoryPlan, graph: Graph, t: number): { base: number; view: View } {
  let base = t;
  let cOff = 0;
  for (let v = plan.views.get(base); v; v = plan.views.get(base)) {
    cOff += v.cOff;
    base = v.base;
  }
  const s = graph.tensors[base]!.shape;
  return { base, view: { cOff, cTot: s.length > 1 ? s[1]! : 1 } };
}

const align = (n: number) => Math.ceil(n / PLAN_ALIGN) * PLAN_ALIGN;

/**
 * Plans memory for a (fused, compacted) graph. `scratchBytes(nodeId)` gives each node's scratch sizes in bytes;
 * `half` the tensors stored as packed f16 (src/graph/storage.ts; activations only, never a concat's).
 * Concat nodes get `attrs.inPlace` set for the inputs placed as views.
 */
export function planMemory(graph: Graph, scratchBytes: (nodeId: number) => number[] = () => [], half: ReadonlySet<number> = new Set()): MemoryPlan {
  const nodes = graph.liveNodes();
  const outputs = new Set(graph.outputs.values());
  const views = new Map<number, { base: number; cOff: number }>();

  // 1. Concats become views where possible.
  for (const n of nodes) {
    if (n.op !== 'concat') continue;
    const inPlace: boolean[] = [];
    const seen = new Set<number>();
    let off = 0;
    for (const t of n.inputs) {
      const info = graph.tensors[t]!;
      const ok = info.kind === 'value' && !views.has(t) && !outputs.has(t) && !seen.has(t) && info.producer >= 0;
      seen.add(t);
      if (ok) views.set(t, { base: n.outputs[0]!, cOff: off });
      inPlace.push(ok);
      off += info.shape[1]!;
    }
    n.attrs = { ...n.attrs, inPlace };
  }

  const viewBases = new Set([...views.values()].map((v) => v.base));
  for (const t of half) if (views.has(t) || viewBases.has(t)) throw new GraphError(`tensor '${graph.tensors[t]!.name}' cannot be both f16 and part of a concat`);
  const plan: MemoryPlan = { views, placements: new Map(), arena: [], scratch: new Map(), arenaBytes: 0, unpackedBytes: 0, dedicatedBytes: 0, half };
  const baseOf = (t: number) => resolveView(plan, graph, t).base;

  // 2. Lifetimes of base tensors.
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  const touch = (t: number, step: number) => {
    const b = baseOf(t);
    first.set(b, Math.min(first.get(b) ?? step, step));
    last.set(b, Math.max(last.get(b) ?? step, step));
  };
  nodes.forEach((n, step) => {
    for (const t of n.outputs) touch(t, step);
    for (const t of n.inputs) if (graph.tensors[t]!.kind === 'value') touch(t, step);
  });

  const regions: PlannedBuffer[] = [];
  for (const t of graph.tensors) {
    if (views.has(t.id)) continue;
    const bytes = (half.has(t.id) ? halfWords(numel(t.shape)) : numel(t.shape)) * 4;
    if (t.kind === 'input' || t.kind === 'weight') {
      plan.placements.set(t.id, { where: t.kind, bytes });
      plan.dedicatedBytes += bytes;
    } else if (outputs.has(t.id)) {
      plan.placements.set(t.id, { where: 'output', bytes });
      plan.dedicatedBytes += bytes;
    } else if (first.has(t.id)) {
      regions.push({ key: t.id, label: t.name, bytes: align(bytes), offset: -1, firstStep: first.get(t.id)!, lastStep: last.get(t.id)! });
    }
  }
  nodes.forEach((n, step) => {
    const sizes = scratchBytes(n.id);
    const list = sizes.map((b, k) => ({ key: -1 - k, label: `${n.name}/scratch${k}`, bytes: align(Math.max(4, b)), offset: -1, firstStep: step, lastStep: step }));
    if (list.length) plan.scratch.set(n.id, list);
    regions.push(...list);
  });

  // 3. Greedy placement, largest first, lowest offset that fits beside every time-overlapping region.
  const order = [...regions].sort((a, b) => b.bytes - a.bytes || a.firstStep - b.firstStep);
  const placed: PlannedBuffer[] = [];
  for (const r of order) {
    const busy = placed.filter((p) => p.firstStep <= r.lastStep && r.firstStep <= p.lastStep).sort((a, b) => a.offset - b.offset);
    let offset = 0;
    for (const p of busy) {
      if (offset + r.bytes <= p.offset) break;
      offset = Math.max(offset, p.offset + p.bytes);
    }
    r.offset = offset;
    placed.push(r);
    plan.arenaBytes = Math.max(plan.arenaBytes, offset + r.bytes);
    plan.unpackedBytes += r.bytes;
  }
  for (const r of regions) if (r.key >= 0) plan.placements.set(r.key, { where: 'arena', offset: r.offset, bytes: r.bytes });
  plan.arena = regions;
  return plan;
}

/**
 * The buffers and bindings a plan makes the executor create: every tensor's binding (inputs, weights, outputs,
 * arena tensors), every scratch binding, the arena itself, and the inputs' staging and outputs' readback buffers.
 * Checked against the device's limits before anything is created (src/gpu/limits.ts).
 */
export function planBufferNeeds(graph: Graph, plan: MemoryPlan): BufferNeed[] {
  const needs: BufferNeed[] = [];
  for (const [id, p] of plan.placements) {
    const t = graph.tensors[id]!;
    const what = `tensor '${t.name}' [${t.shape.join(', ')}]`;
    needs.push({ what, bytes: p.bytes, kind: 'binding' });
    if (p.where === 'input') needs.push({ what: `the upload staging buffer of ${what}`, bytes: p.bytes, kind: 'buffer' });
    if (p.where === 'output') needs.push({ what: `the readback buffer of ${what}`, bytes: p.bytes, kind: 'buffer' });
  }
  for (const [id, list] of plan.scratch) for (const s of list) needs.push({ what: `scratch '${s.label}' of node '${graph.nodes[id]?.name ?? id}'`, bytes: s.bytes, kind: 'binding' });
  needs.push({ what: 'the activation arena', bytes: plan.arenaBytes, kind: 'buffer' });
  return needs;
}

/** Sanity check used by tests and debug builds: no two regions live at the same time overlap. */
export function findOverlaps(plan: MemoryPlan): string[] {
  const bad: string[] = [];
  const r = plan.arena;
  for (let i = 0; i < r.length; i++)
    for (let j = i + 1; j < r.length; j++) {
      const a = r[i]!;
      const b = r[j]!;
      const timeOverlap = a.firstStep <= b.lastStep && b.firstStep <= a.lastStep;
      const spaceOverlap = a.offset < b.offset + b.bytes && b.offset < a.offset + a.bytes;
      if (timeOverlap && spaceOverlap) bad.push(`${a.label} and ${b.label}`);
    }
  return bad;
}

/** Scratch sizes in bytes of a node, from its op (views are not planned yet: dense ones are assumed). */
export function opScratchBytes(graph: Graph, caps: GpuCaps, half: ReadonlySet<number> = new Set()): (nodeId: number) => number[] {
  return (id) => {
    const n = graph.nodes[id];
    if (!n) return [];
    const op = getOp(n.op);
    return op.scratch ? op.scratch(nodeContext(graph, n, caps, half)).map((e) => e * 4) : [];
  };
}

/**
 * What a node's op sees ({@link OpContext}): shapes, channel views (from `plan`, else dense), caps, which tensors
 * are f16 and which inputs are constants (its weights). The executor, the scratch plan and the bench's work sums
 * all ask the ops through this, so they ask the same question.
 */
export function nodeContext(graph: Graph, n: NodeInfo, caps: GpuCaps, half: ReadonlySet<number>, plan?: MemoryPlan): OpContext<unknown> {
  const view = (t: number) => (plan ? resolveView(plan, graph, t).view : denseView(graph.tensors[t]!.shape));
  return {
    attrs: n.attrs,
    inputs: n.inputs.map((t) => graph.tensors[t]!.shape),
    outputs: n.outputs.map((t) => graph.tensors[t]!.shape),
    inViews: n.inputs.map(view),
    outViews: n.outputs.map(view),
    caps,
    half: nodeHalf(n, half),
    constant: n.inputs.map((t) => graph.tensors[t]!.kind === 'weight'),
  };
}

export { GraphError };
