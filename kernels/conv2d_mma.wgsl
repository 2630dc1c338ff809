// Pointwise convolution (1x1, stride 1, no padding) with f16 operands on the matrix units (subgroup matrices,
// f32 accumulation), for compileGraph precision 'f16' (src/ops/conv2d.ts picks it; see docs/engine.md):
//   Y[n, m, p] = act(sum_k W[m, k] * (scale[n, k] * X[n, k, p]) + bias[m]) + residual[n, m, p]
// Two entry points:
//   ENTRY_CONVERT  rounds an f32 matrix to a zero-padded f16 copy in scratch: dst[r, k, p] (r < rows_p, k < Kp,
//                  p < HoWo) = f16(x[(r * x_tot + x_off + k) * HoWo + p] * scale[r, k]) for r < rows, k < K, else 0,
//                  written as packed pairs with pack_half2 (core WGSL: this entry needs no f16 or subgroup
//                  feature, so it runs, and is tested, on any adapter).
//                  Used for the input (r = image, with its channel view and the squeeze-excite scale folded in)
//                  and, where they are not constants, the weights (r = output channel, HoWo = 1); constant
//                  weights get the same copy made once on the CPU when the graph is compiled (conv2d's prepare).
//   GEMM           the matrix units read both copies straight from storage (no workgroup staging, no barriers in
//                  the K loop): a workgroup of SG_WR x SG_WC subgroups owns (SG_WR * SG_FM * 16) output channels x
//                  (SG_WC * SG_FN * 16) pixels; each subgroup multiplies SG_FM x SG_FN 16 x 16 blocks over Kp (K
//                  rounded up to 16). A 16-pixel block never straddles two images (HoWo % 16 == 0, checked on the
//                  host). Results go through a 16 x 16 slot of workgroup memory to the epilogue (bias -> act ->
//                  + residual, through the output's and residual's channel views).
// Half storage (src/graph/storage.ts): X_F16 (ENTRY_CONVERT) reads the source as packed f16 pairs; RES_F16 and
// Y_F16 (GEMM) read the residual and write the output so (lane pairs of columns, HoWo even). A dense f16 input
// with K a multiple of 16 and no scale already is the [N, Kp, HoWo] copy: the host then binds it as xh directly
// and skips its conversion pass.
// Why not through workgroup memory like kernels/conv2d.wgsl: measured on an H200 (bench/RESULTS.md, f16 experiments),
// staging f32 operands into f16 tiles by the threads cost more than the whole f32 kernel.
#if !ENTRY_CONVERT
enable f16;
enable subgroups;
enable chromium_experimental_subgroup_matrix;
#endif
#include "common.wgsl"

struct Params {
  M: u32,         // output channels
  NC: u32,        // N * HoWo (GEMM columns)
  Kp: u32,        // input channels rounded up to 16 (row length of both f16 copies)
  HoWo: u32,      // pixels per image (ENTRY_CONVERT: of the source; 1 for the weights)
  y_off: u32, y_tot: u32, // output's channel view
  r_off: u32, r_tot: u32, // residual's channel view
  col_tiles: u32, // ceil(NC / columns per workgroup)
  // ENTRY_CONVERT
  K: u32,         // valid k (input channels)
  rows: u32,      // valid r
  x_off: u32, x_tot: u32, // source's channel view (weights: 0, K)
  cin: u32,       // scale row length
  total: u32,     // elements of the f16 copy
};

@group(0) @binding(0) var<uniform> P: Params;
#if ENTRY_CONVERT
#include "load_x.wgsl"
#if HAS_SCALE
@group(0) @binding(2) var<storage, read_write> scale: array<f32>;
#endif
@group(0) @binding(BIND_DST) var<storage, read_write> dst: array<u32>; // f16 pairs (the GEMM reads array<f16>)

// Element i of the copy, as an f32 (already scaled; zero in the padding).
fn copy_value(i: u32) -> f32 {
  let plane = P.Kp * P.HoWo;
  let r = i / plane;
  let rest = i - r * plane;
  let k = rest / P.HoWo;
  let p = rest - k * P.HoWo;
  var v = 0.0;
  if (r < P.rows && k < P.K) {
    v = load_x((r * P.x_tot + P.x_off + k) * P.HoWo + p);
#if HAS_SCALE
    v *= scale[r * P.cin + k];
#endif
  }
  return v;
}

// One thread per word: elements 2 w and 2 w + 1 (total is even: Kp is a multiple of 16).
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = linear_id(gid, nwg, WG);
  if (2u * w >= P.total) {
    return;
  }
  dst[w] = pack_half2(copy_value(2u * w), copy_value(2u * w + 1u));
}
#else
@group(0) @binding(1) var<storage, read_write> wh: array<f16>; // [ceil(M / 16) * 16, Kp]
@group(0) @binding(2) var<storage, read_write> xh: array<f16>; // [N, Kp, HoWo]
#include "bind_y.wgsl"

const NSG: u32 = SG_WR * SG_WC;
const SR: u32 = SG_WR * SG_FM * 16u; // output channels per workgroup
const SC: u32 = SG_WC * SG_FN * 16u; // pixels per workgroup
var<workgroup> Cs: array<f32, NSG * 512u>; // two 16 x 16 slots per subgroup

// Start of 16-row block i of subgroup row wr in the weights copy (block 0 for blocks past the padded rows:
// their results are dropped, but every subgroup must run the same loads).
fn row_offset(m0: u32, wr: u32, i: u32) -> u32 {
  let m = m0 + (wr * SG_FM + i) * 16u;
  return select(0u, m * P.Kp, m < P.M);
}

// Start of 16-column block j of subgroup column wc in the input copy (image n, pixel p -> n * Kp * HoWo + p).
fn col_offset(n0: u32, wc: u32, j: u32) -> u32 {
  let c = n0 + (wc * SG_FN + j) * 16u;
  let n = c / P.HoWo;
  return select(0u, n * P.Kp * P.HoWo + (c - n * P.HoWo), c < P.NC);
}

#include "conv_epilogue.wgsl"

// Result block (i, j) of subgroup sg: into one of its two Cs slots, then lane l applies the epilogue to column
// l % 16, rows l / 16, l / 16 + 2, ... (Y_F16: to columns 2 (l % 8) and 2 (l % 8) + 1, rows l / 8, l / 8 + 4, ...)
// (alternating slots: one barrier per block). Uniform control flow.
fn emit(c: subgroup_matrix_result<f32, 16, 16>, i: u32, j: u32, sg: u32, wr: u32, wc: u32, lane: u32, m0: u32, n0: u32) {
  let slot = sg * 512u + ((i * SG_FN + j) % 2u) * 256u;
  subgroupMatrixStore(&Cs, slot, c, false, 16u);
  workgroupBarrier();
#if Y_F16
  let lc = 2u * (lane % 8u);
  let col = n0 + (wc * SG_FN + j) * 16u + lc;
  if (col < P.NC) {
    for (var r = lane / 8u; r < 16u; r += 4u) {
      let m = m0 + (wr * SG_FM + i) * 16u + r;
      if (m < P.M) {
        epilogue2(m, col, Cs[slot + r * 16u + lc], Cs[slot + r * 16u + lc + 1u]);
      }
    }
  }
#else
  let col = n0 + (wc * SG_FN + j) * 16u + lane % 16u;
  if (col < P.NC) {
    for (var r = lane / 16u; r < 16u; r += 2u) {
      let m = m0 + (wr * SG_FM + i) * 16u + r;
      if (m < P.M) {
        epilogue(m, col, Cs[slot + r * 16u + lane % 16u]);
      }
    }
  }
#endif
}

@compute @workgroup_size(NSG * 32u)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(subgroup_id) sg: u32, @builtin(subgroup_invocation_id) lane: u32) {
  let col_tile = wid.x + wid.z * nwg.x;
  if (col_tile >= P.col_tiles) {
    return;
  }
  let m0 = wid.y * SR;
  let n0 = col_tile * SC;
  let wr = sg / SG_WC; // subgroup-uniform (WGSL language feature subgroup_uniformity)
  let wc = sg - wr * SG_WC;
  // Unrolled by hand up to 4 x 4 blocks (the #if blocks below): arrays of subgroup matrices indexed in loops
  // compiled to slower code on NVIDIA's Vulkan driver (measured: docs/performance.md, f16 section).
  let a_off0 = row_offset(m0, wr, 0u);
#if SG_FM > 1
  let a_off1 = row_offset(m0, wr, 1u);
#endif
#if SG_FM > 2
  let a_off2 = row_offset(m0, wr, 2u);
#endif
#if SG_FM > 3
  let a_off3 = row_offset(m0, wr, 3u);
#endif
  let b_off0 = col_offset(n0, wc, 0u);
#if SG_FN > 1
  let b_off1 = col_offset(n0, wc, 1u);
#endif
#if SG_FN > 2
  let b_off2 = col_offset(n0, wc, 2u);
#endif
#if SG_FN > 3
  let b_off3 = col_offset(n0, wc, 3u);
#endif
  var c00 = subgroup_matrix_result<f32, 16, 16>();
#if SG_FN > 1
  var c01 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FN > 2
  var c02 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FN > 3
  var c03 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 1
  var c10 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 1 && SG_FN > 1
  var c11 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 1 && SG_FN > 2
  var c12 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 1 && SG_FN > 3
  var c13 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 2
  var c20 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 2 && SG_FN > 1
  var c21 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 2 && SG_FN > 2
  var c22 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 2 && SG_FN > 3
  var c23 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 3
  var c30 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 3 && SG_FN > 1
  var c31 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 3 && SG_FN > 2
  var c32 = subgroup_matrix_result<f32, 16, 16>();
#endif
#if SG_FM > 3 && SG_FN > 3
  var c33 = subgroup_matrix_result<f32, 16, 16>();
#endif
  for (var k = 0u; k < P.Kp; k += 16u) {
    let a0 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, a_off0 + k, false, P.Kp);
#if SG_FM > 1
    let a1 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, a_off1 + k, false, P.Kp);
#endif
#if SG_FM > 2
    let a2 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, a_off2 + k, false, P.Kp);
#endif
#if SG_FM > 3
    let a3 = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>(&wh, a_off3 + k, false, P.Kp);
#endif
    let b0 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&xh, b_off0 + k * P.HoWo, false, P.HoWo);
#if SG_FN > 1
    let b1 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&xh, b_off1 + k * P.HoWo, false, P.HoWo);
#endif
#if SG_FN > 2
    let b2 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&xh, b_off2 + k * P.HoWo, false, P.HoWo);
#endif
#if SG_FN > 3
    let b3 = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>(&xh, b_off3 + k * P.HoWo, false, P.HoWo);
#endif
    c00 = subgroupMatrixMultiplyAccumulate(a0, b0, c00);
#if SG_FN > 1
    c01 = subgroupMatrixMultiplyAccumulate(a0, b1, c01);
#endif
#if SG_FN > 2
    c02 = subgroupMatrixMultiplyAccumulate(a0, b2, c02);
#endif
#if SG_FN > 3
    c03 = subgroupMatrixMultiplyAccumulate(a0, b3, c03);
#endif
#if SG_FM > 1
    c10 = subgroupMatrixMultiplyAccumulate(a1, b0, c10);
#endif
#if SG_FM > 1 && SG_FN > 1
    c11 = subgroupMatrixMultiplyAccumulate(a1, b1, c11);
#endif
#if SG_FM > 1 && SG_FN > 2
    c12 = subgroupMatrixMultiplyAccumulate(a1, b2, c12);
#endif
#if SG_FM > 1 && SG_FN > 3
    c13 = subgroupMatrixMultiplyAccumulate(a1, b3, c13);
#endif
#if SG_FM > 2
    c20 = subgroupMatrixMultiplyAccumulate(a2, b0, c20);
#endif
#if SG_FM > 2 && SG_FN > 1
    c21 = subgroupMatrixMultiplyAccumulate(a2, b1, c21);
#endif
#if SG_FM > 2 && SG_FN > 2
    c22 = subgroupMatrixMultiplyAccumulate(a2, b2, c22);
#endif
#if SG_FM > 2 && SG_FN > 3
    c23 = subgroupMatrixMultiplyAccumulate(a2, b3, c23);
#endif
#if SG_FM > 3
    c30 = subgroupMatrixMultiplyAccumulate(a3, b0, c30);
#endif
#if SG_FM > 3 && SG_FN > 1
    c31 = subgroupMatrixMultiplyAccumulate(a3, b1, c31);
#endif
#if SG_FM > 3 && SG_FN > 2
    c32 = subgroupMatrixMultiplyAccumulate(a3, b2, c32);
#endif
#if SG_FM > 3 && SG_FN > 3
    c33 = subgroupMatrixMultiplyAccumulate(a3, b3, c33);
#endif
  }
  emit(c00, 0u, 0u, sg, wr, wc, lane, m0, n0);
#if SG_FN > 1
  emit(c01, 0u, 1u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FN > 2
  emit(c02, 0u, 2u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FN > 3
  emit(c03, 0u, 3u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 1
  emit(c10, 1u, 0u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 1 && SG_FN > 1
  emit(c11, 1u, 1u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 1 && SG_FN > 2
  emit(c12, 1u, 2u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 1 && SG_FN > 3
  emit(c13, 1u, 3u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 2
  emit(c20, 2u, 0u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 2 && SG_FN > 1
  emit(c21, 2u, 1u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 2 && SG_FN > 2
  emit(c22, 2u, 2u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 2 && SG_FN > 3
  emit(c23, 2u, 3u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 3
  emit(c30, 3u, 0u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 3 && SG_FN > 1
  emit(c31, 3u, 1u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 3 && SG_FN > 2
  emit(c32, 3u, 2u, sg, wr, wc, lane, m0, n0);
#endif
#if SG_FM > 3 && SG_FN > 3
  emit(c33, 3u, 3u, sg, wr, wc, lane, m0, n0);
#endif
}
#endif
