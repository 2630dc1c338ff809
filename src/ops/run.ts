/**
 * Runs one op on the GPU outside any graph, with guard words after every buffer and sentinels in the channels
 * outside a view. The op test suite uses it to compare each op with its CPU reference.
 *
 * Every binding covers its buffer's guard words too (the kernel learns the tensor's true size from its params
 * only, as in a graph), so a write past the end lands in the guard words rather than being clamped away by
 * WebGPU's robust buffer access. Every buffer is read back after the run: outputs and scratch buffers for their
 * guard words, inputs and prepared operands whole (all bindings are read_write, so an op that writes into an input
 * would otherwise go unseen).
 */
import type { GpuContext } from '../gpu/device.js';
import { encodeDispatches, prepareDispatch, type BufferRange } from '../gpu/dispatch.js';
import type { PipelineCache } from '../gpu/pipelines.js';
import { encodeReadback, mapStaging, withErrorScopes } from '../gpu/readback.js';
import { UniformArena } from '../gpu/uniforms.js';
import { halfWords, packHalf, unpackHalf } from './half.js';
import { capsFor, checkHalfIO, denseView, makePrepared, halfIn, halfOut, innerSize, numel, type DispatchSpec, type GpuCaps, type HalfIO, type OpContext, type OpDef, type Shape, type View } from './op.js';

/** Words written after every buffer; they must survive the dispatches. */
export const GUARD_WORDS = 64;
/** Bit pattern of the sentinel (a quiet NaN with a payload no kernel produces). */
export const SENTINEL_BITS = 0x7fc0dead;

/** Result of {@link runOp}. */
export interface RunOpResult {
  outputs: Float32Array[];
  /** Problems found with guard words or sentinel channels, empty when none. */
  violations: string[];
  /** The scratch buffers' words after the run. */
  scratch: Uint32Array[];
}

function viewedSize(shape: Shape, v: View): number {
  return shape[0]! * v.cTot * innerSize(shape);
}

/** Copies a dense tensor into its slice of a viewed buffer (or back out when `extract`). */
export function copyView(dense: Float32Array, viewed: Float32Array, shape: Shape, v: View, extract: boolean): void {
  const n = shape[0]!;
  const c = shape.length > 1 ? shape[1]! : 1;
  const inner = innerSize(shape);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++) {
      const src = (b * c + ch) * inner;
      const dst = (b * v.cTot + v.cOff + ch) * inner;
      if (extract) dense.set(viewed.subarray(dst, dst + inner), src);
      else viewed.set(dense.subarray(src, src + inner), dst);
    }
}

/** Runs `op` once on dense inputs and returns dense outputs plus any guard or sentinel violations. */
export async function runOp<A>(
  gpu: GpuContext,
  cache: PipelineCache,
  op: OpDef<A>,
  inputs: Float32Array[],
  inShapes: Shape[],
  attrs: A,
  opts: {
    inViews?: Array<View | undefined>;
    outViews?: Array<View | undefined>;
    precision?: 'f32' | 'f16';
    half?: HalfIO;
    /** Plan the dispatches for these caps instead of the adapter's (with `only`: run parts that need less). */
    caps?: GpuCaps;
    /** Run only the dispatches this accepts (the others' outputs stay sentinels). */
    only?: (spec: DispatchSpec) => boolean;
    /** Inputs to treat as compile-time constants (OpContext.constant: the op may prepare them, OpDef.prepare). */
    constant?: boolean[];
  } = {},
): Promise<RunOpResult> {
  const { device } = gpu;
  const caps = opts.caps ?? capsFor(gpu, opts.precision ?? 'f32');
  const outShapes = op.infer(inShapes, attrs);
  const inViews = inShapes.map((s, i) => opts.inViews?.[i] ?? denseView(s));
  const outViews = outShapes.map((s, i) => opts.outViews?.[i] ?? denseView(s));
  const ctx: OpContext<A> = { attrs, inputs: inShapes, outputs: outShapes, inViews, outViews, caps };
  if (opts.half) ctx.half = opts.half;
  if (opts.constant) ctx.constant = opts.constant;
  checkHalfIO(op, ctx);
  const scratchSizes = op.scratch ? op.scratch(ctx) : [];
  const sentinel = new Float32Array(new Uint32Array([SENTINEL_BITS]).buffer)[0]!;
  const created: GPUBuffer[] = [];
  // A buffer of `words` u32 words (f32 values, or f16 pairs for half-storage tensors) and the guard words.
  const makeBuffer = (words: number, init: Uint32Array | null, label: string) => {
    const data = new Uint32Array(words + GUARD_WORDS).fill(SENTINEL_BITS);
    if (init) data.set(init);
    const buffer = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label });
    device.queue.writeBuffer(buffer, 0, data);
    created.push(buffer);
    return { buffer, words, init: data };
  };
  const bits = (f: Float32Array) => new Uint32Array(f.buffer, f.byteOffset, f.length);
  try {
    const ins = inputs.map((data, i) => {
      const v = inViews[i]!;
      const viewed = new Float32Array(viewedSize(inShapes[i]!, v)).fill(sentinel);
      copyView(data, viewed, inShapes[i]!, v, false);
      const words = halfIn(ctx, i) ? packHalf(viewed) : bits(viewed);
      return makeBuffer(words.length, words, `in${i}`);
    });
    const outs = outShapes.map((s, i) => {
      const n = viewedSize(s, outViews[i]!);
      return makeBuffer(halfOut(ctx, i) ? halfWords(n) : n, null, `out${i}`);
    });
    const scratch = scratchSizes.map((n, i) => makeBuffer(n, new Uint32Array(n), `scratch${i}`));
    const constants = makePrepared(op, ctx, (i) => inputs[i]!).map((data, j) => makeBuffer(data.length, data, `prepared${j}`));
    // The binding includes the guard words: a kernel that writes past `words` must hit them, not be clamped.
    const range = (b: { buffer: GPUBuffer; words: number }): BufferRange => ({ buffer: b.buffer, offset: 0, size: (b.words + GUARD_WORDS) * 4 });
    const specs = op.dispatch(ctx).filter((d) => !opts.only || opts.only(d));
    const uniforms = new UniformArena(device, specs.length, `${op.name} uniforms`);
    try {
      const prepared = await Promise.all(
        specs.map((spec, i) =>
          prepareDispatch(device, cache, uniforms, spec, (b) => range('input' in b ? ins[b.input]! : 'output' in b ? outs[b.output]! : 'scratch' in b ? scratch[b.scratch]! : constants[b.prepared]!), `${op.name}#${i}`),
        ),
      );
      uniforms.upload();
      const staging = await withErrorScopes(device, `running ${op.name}`, () => {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        encodeDispatches(pass, prepared);
        pass.end();
        const st = encodeReadback(device, enc, [...outs, ...scratch, ...ins, ...constants].map((o) => ({ buffer: o.buffer, byteOffset: 0, byteLength: (o.words + GUARD_WORDS) * 4 })));
        device.queue.submit([enc.finish()]);
        return st;
      });
      const raw = await mapStaging(gpu, staging);
      const violations: string[] = [];
      const outputs = outShapes.map((s, i) => {
        const buf = raw[i]!;
        const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length);
        const n = outs[i]!.words;
        for (let g = 0; g < GUARD_WORDS; g++)
          if (words[n + g] !== SENTINEL_BITS) {
            violations.push(`output ${i}: guard word ${g} after the buffer was overwritten`);
            break;
          }
        const half = halfOut(ctx, i);
        const v = outViews[i]!;
        const viewed = half ? unpackHalf(words, viewedSize(s, v)) : buf.subarray(0, n);
        const dense = new Float32Array(numel(s));
        copyView(dense, viewed, s, v, true);
        if (v.cTot !== s[1]) {
          // Every word outside the view (for f16: both of its halves outside) must still hold the sentinel.
          const inner = innerSize(s);
          const outside = (e: number) => {
            const c = Math.floor(e / inner) % v.cTot;
            return c < v.cOff || c >= v.cOff + s[1]!;
          };
          for (let w = 0; w < n; w++) {
            const out = half ? outside(2 * w) && (2 * w + 1 >= viewedSize(s, v) || outside(2 * w + 1)) : outside(w);
            if (out && words[w] !== SENTINEL_BITS) {
              violations.push(`output ${i}: word ${w}, outside the view [${v.cOff}, ${v.cOff + s[1]!}) of ${v.cTot} channels, was written`);
              break;
            }
          }
        }
        return dense;
      });
      const scratchWords = scratch.map((b, i) => {
        const buf = raw[outs.length + i]!;
        const words = new Uint32Array(buf.buffer, buf.byteOffset, b.words + GUARD_WORDS);
        if (words.subarray(b.words).some((w) => w !== SENTINEL_BITS)) violations.push(`scratch ${i}: a guard word after the buffer was overwritten`);
        return words.slice(0, b.words);
      });
      // Inputs and prepared operands must come back exactly as written, guard words included.
      [...ins, ...constants].forEach((b, j) => {
        const buf = raw[outs.length + scratch.length + j]!;
        const words = new Uint32Array(buf.buffer, buf.byteOffset, b.words + GUARD_WORDS);
        const w = words.findIndex((x, k) => x !== b.init[k]);
        const what = j < ins.length ? `input ${j}` : `prepared operand ${j - ins.length}`;
        if (w >= 0) violations.push(`${what}: ${w < b.words ? `word ${w}` : `guard word ${w - b.words} after the buffer`} was overwritten`);
      });
      return { outputs, violations, scratch: scratchWords };
    } finally {
      uniforms.destroy();
    }
  } finally {
    for (const b of created) b.destroy();
  }
}
