// Runs the matrix-unit GEMM of kernels/conv2d_mma.wgsl on adapters without subgroup matrices or f16 (SwiftShader),
// so that its indexing, padding, epilogue and half-storage paths are tested in every CI run, not only on a GPU.
//
// The kernel text is rewritten, not re-implemented: a subgroup matrix becomes each lane's share of the block in a
// private f32 array (lane l owns result elements (l / 16 + 2 t, l % 16), t < 8, and holds what it needs of the
// operands: those 8 rows of the left block, that column of the right one), subgroupMatrixLoad reads that share
// (f16 buffers are read as packed u32 pairs and widened, which is exact), subgroupMatrixMultiplyAccumulate sums
// in f32 (products of f16 values are exact), subgroupMatrixStore writes the share, and the subgroup builtins come
// from local_invocation_index as 32-wide subgroups (the GEMM requires subgroup size 32). The semantics follow
// Dawn's chromium_experimental_subgroup_matrix (row-major: element (r, c) of a block at offset + r * stride + c;
// result = left (M x K) * right (K x N) + acc). What the emulation cannot check is the hardware itself: the
// driver's code, its rounding order within a block, and speed; the hardware tests do (COVIDCT_TEST_HARDWARE=1).
import type { GpuContext } from '../src/gpu/device.js';
import type { DefineValue } from '../src/wgsl/preprocess.js';
import { PipelineCache } from '../src/gpu/pipelines.js';
import { describeAt128 } from './gpu.js';

const HELPERS = `
// ---- test/mma-emulation.ts: subgroup matrices emulated, 32 lanes sharing each 16 x 16 block ----
// Lane l owns result elements (l / 16 + 2 t, l % 16), t < 8: it holds those rows of the left block, that column
// of the right block, and those 8 accumulators.
var<private> sm_lane: u32;
fn sm_load_wh(off: u32, stride: u32) -> array<f32, 128> {
  var m: array<f32, 128>;
  for (var t = 0u; t < 8u; t++) {
    for (var k = 0u; k < 16u; k++) {
      let i = off + (sm_lane / 16u + 2u * t) * stride + k;
      m[t * 16u + k] = half_at(wh[i >> 1u], i);
    }
  }
  return m;
}
fn sm_load_xh(off: u32, stride: u32) -> array<f32, 16> {
  var m: array<f32, 16>;
  for (var k = 0u; k < 16u; k++) {
    let i = off + k * stride + sm_lane % 16u;
    m[k] = half_at(xh[i >> 1u], i);
  }
  return m;
}
fn sm_mma(a_in: array<f32, 128>, b_in: array<f32, 16>, c_in: array<f32, 8>) -> array<f32, 8> {
  var a = a_in;
  var b = b_in;
  var d = c_in;
  for (var t = 0u; t < 8u; t++) {
    var s = d[t];
    for (var k = 0u; k < 16u; k++) {
      s += a[t * 16u + k] * b[k];
    }
    d[t] = s;
  }
  return d;
}
fn sm_store_Cs(off: u32, c_in: array<f32, 8>, stride: u32) {
  var c = c_in;
  for (var t = 0u; t < 8u; t++) {
    Cs[off + (sm_lane / 16u + 2u * t) * stride + sm_lane % 16u] = c[t];
  }
}
`;

/** Each rewrite must apply (at least `min` times): a kernel change the emulation does not know fails loudly. */
const REWRITES: Array<[RegExp, string, number]> = [
  [/^enable (f16|subgroups|chromium_experimental_subgroup_matrix);\n/gm, '', 3],
  [/array<f16>/g, 'array<u32>', 2],
  [/subgroupMatrixLoad<subgroup_matrix_(?:left|right)<f16, 16, 16>>\(&(wh|xh), ([^,()]+), false, ([^,()]+)\)/g, 'sm_load_$1($2, $3)', 2],
  [/subgroupMatrixMultiplyAccumulate\(/g, 'sm_mma(', 1],
  [/subgroupMatrixStore\(&Cs, ([^,()]+), ([^,()]+), false, ([^,()]+)\)/g, 'sm_store_Cs($1, $2, $3)', 1],
  [/subgroup_matrix_result<f32, 16, 16>/g, 'array<f32, 8>', 2],
  [
    /@builtin\(subgroup_id\) sg: u32, @builtin\(subgroup_invocation_id\) lane: u32\) \{/,
    '@builtin(local_invocation_index) sm_lii: u32) {\n  let sg = sm_lii / 32u;\n  let lane = sm_lii % 32u;\n  sm_lane = lane;',
    1,
  ],
];

/** Rewrites the expanded GEMM entry of conv2d_mma.wgsl to run without subgroup matrices, f16 or subgroups. */
export function emulateSubgroupMatrices(code: string): string {
  let out = code;
  for (const [re, to, min] of REWRITES) {
    const n = out.match(re)?.length ?? 0;
    if (n < min) throw new Error(`mma emulation: ${re} matched ${n} times (want >= ${min}); kernels/conv2d_mma.wgsl changed?`);
    out = out.replace(re, to);
  }
  if (/subgroup|\bf16\b/.test(out.replace(/\/\/.*$/gm, ''))) throw new Error('mma emulation: a subgroup or f16 construct is left');
  return out + HELPERS;
}

/** A pipeline cache that compiles conv2d_mma's GEMM through {@link emulateSubgroupMatrices}. */
export class MmaEmulatingCache extends PipelineCache {
  protected override source(kernel: string, defines: Record<string, DefineValue>): string {
    const code = super.source(kernel, defines);
    return kernel === 'conv2d_mma' && !defines.ENTRY_CONVERT ? emulateSubgroupMatrices(code) : code;
  }
}

/**
 * `gpu` presented as having shader-f16 and 32-wide subgroup matrices, so that precision 'f16' compiles on it, with
 * a pipeline cache that emulates the matrix builtins: the executor's whole f16 path runs on any adapter.
 */
export function emulatedF16(gpu: GpuContext): { gpu: GpuContext; cache: PipelineCache } {
  const features = new Set([...gpu.features, 'shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix']);
  const emulated: GpuContext = Object.create(gpu, { features: { value: features }, subgroupMinSize: { value: 32 }, subgroupMaxSize: { value: 32 } });
  return { gpu: emulated, cache: new MmaEmulatingCache(gpu.device) };
}

/** `describe` for the tests that run the emulated GEMM on the adapter: see describeAt128 (test/gpu.ts). */
export function describeEmulated(name: string, body: () => void): void {
  describeAt128(name, body);
}
