/**
 * Turns DispatchSpecs into ready-to-encode dispatches (pipeline + bind group + grid). Shared by the graph
 * executor and the single-op runner, so both exercise the same binding code.
 */
import type { DispatchSpec } from './spec.js';
import type { PipelineCache } from './pipelines.js';
import { UNIFORM_SLOT_BYTES, type UniformArena } from './uniforms.js';

/** A storage-buffer range bound to one binding. */
export interface BufferRange {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** A dispatch ready to encode. */
export interface PreparedDispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
  flops: number;
  bytes: number;
}

/** Builds the pipeline and bind group of one dispatch; `resolve` maps each binding to a buffer range. */
export async function prepareDispatch(
  device: GPUDevice,
  cache: PipelineCache,
  uniforms: UniformArena,
  spec: DispatchSpec,
  resolve: (b: DispatchSpec['bindings'][number]) => BufferRange,
  label: string,
): Promise<PreparedDispatch> {
  const entry = spec.entry ?? 'main';
  const pipeline = await cache.get(spec.kernel, entry, spec.defines ?? {});
  const offset = uniforms.push(spec.params);
  const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniforms.buffer, offset, size: UNIFORM_SLOT_BYTES } }];
  spec.bindings.forEach((b, i) => {
    const r = resolve(b);
    entries.push({ binding: i + 1, resource: { buffer: r.buffer, offset: r.offset, size: r.size } });
  });
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries, label });
  const [x, y = 1, z = 1] = spec.grid;
  return { label, pipeline, bindGroup, grid: [x, y, z], flops: spec.flops ?? 0, bytes: spec.bytes ?? 0 };
}

/** Encodes dispatches into one compute pass. */
export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: PreparedDispatch[]): void {
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.grid[0], d.grid[1], d.grid[2]);
  }
}
