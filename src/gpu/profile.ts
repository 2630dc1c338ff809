/**
 * Per-dispatch GPU times with timestamp queries: every dispatch in a compute pass of its own, whose beginning and
 * end write a timestamp; the queries are resolved and copied to a mappable buffer in the same encoder.
 */
import { GpuDeviceError, type GpuContext } from './device.js';
import { encodeDispatches, type PreparedDispatch } from './dispatch.js';
import { settle } from './wait.js';

/** Dispatches per query set (4096 queries). */
const PER_SET = 2048;

/** The query sets and buffers of one profiled submission; read with {@link readTimestamps}. */
export interface TimestampQueries {
  sets: GPUQuerySet[];
  resolve: GPUBuffer;
  staging: GPUBuffer;
  dispatches: number;
}

/** Encodes `dispatches` into `enc`, one timed pass each, and the copy of the timestamps to a mappable buffer. */
export function encodeTimed(device: GPUDevice, enc: GPUCommandEncoder, dispatches: PreparedDispatch[]): TimestampQueries {
  const sets: GPUQuerySet[] = [];
  for (let i = 0; i < dispatches.length; i += PER_SET) sets.push(device.createQuerySet({ type: 'timestamp', count: Math.min(PER_SET, dispatches.length - i) * 2 }));
  dispatches.forEach((d, i) => {
    const pass = enc.beginComputePass({
      timestampWrites: { querySet: sets[Math.floor(i / PER_SET)]!, beginningOfPassWriteIndex: (i % PER_SET) * 2, endOfPassWriteIndex: (i % PER_SET) * 2 + 1 },
    });
    encodeDispatches(pass, [d]);
    pass.end();
  });
  const bytes = Math.max(16, dispatches.length * 16);
  const resolve = device.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
  const staging = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  sets.forEach((s, k) => enc.resolveQuerySet(s, 0, s.count, resolve, k * PER_SET * 16));
  enc.copyBufferToBuffer(resolve, 0, staging, 0, bytes);
  return { sets, resolve, staging, dispatches: dispatches.length };
}

/**
 * Maps the timestamps of a submitted {@link encodeTimed} and returns each dispatch's ns; frees the queries.
 * `boundMs`: how long the host thread's sleeping wait on a software adapter lasts at most (src/gpu/wait.ts).
 */
export async function readTimestamps(gpu: GpuContext, q: TimestampQueries, boundMs = Infinity): Promise<number[]> {
  try {
    await settle(gpu, q.staging.mapAsync(GPUMapMode.READ), boundMs);
    const ts = new BigInt64Array(q.staging.getMappedRange().slice(0));
    return Array.from({ length: q.dispatches }, (_, i) => Number(ts[2 * i + 1]! - ts[2 * i]!));
  } catch (e) {
    throw new GpuDeviceError(`reading timestamps failed: ${gpu.lostReason ?? (e as Error).message}`);
  } finally {
    q.staging.destroy();
    q.resolve.destroy();
    for (const s of q.sets) s.destroy();
  }
}
