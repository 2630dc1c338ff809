// 2-D convolution (NCHW, groups = 1) as an implicit GEMM with a fused epilogue:
//   Y[m, col] = act(sum_k A[m, k] * B[k, col] + bias[m]) + residual[m, col]
// with M = Cout rows, NC = N * Ho * Wo columns (the batch is folded into the columns so small images still
// give many tiles) and K = Cin * kh * kw. A is the weight tensor read as a row-major [Cout, K] matrix; B is the
// im2col matrix of x, never materialised: B[k, col] with k = (ci, ky, kx) and col = (n, oy, ox) is gathered on
// load as inScale[n, ci] * x[n, ci, oy*sh - ph + ky*dh, ox*sw - pw + kx*dw], zero outside the image.
//
// Thread mapping: a workgroup owns a TM x TN output tile (rows m0.., columns n0..) and has TY x TX threads,
// TY = TM / RM, TX = TN / RN. Thread (ty, tx) (local index t = ty * TX + tx) accumulates an RM x RN register
// block: rows m0 + ty + i * TY (i < RM) and columns n0 + tx + j * TX (j < RN). The strided layout makes
// neighbouring threads read neighbouring words of the staged tiles (broadcast along A, consecutive along B)
// and write neighbouring output columns (contiguous pixels). K is walked in chunks of TK: every thread first
// stages part of the TK x TM slice of A (a fixed k = t % TK, consecutive threads reading consecutive weights)
// and part of the TK x TN slice of B (a fixed column t % TN, whose (n, oy, ox) decomposition is computed once
// before the K loop) in workgroup memory, then the workgroup synchronises and every thread does TK rank-1
// updates of its block. Workgroup y is the row tile; the column tile is workgroup x + z * (number of
// workgroups in x), so column tiles are folded into z when they exceed the per-dimension limit. Tiles that
// fall past the last column tile exit before the first barrier (uniformly, per workgroup).
//
// Defines (the tile shape is a define, every size is a uniform, so one pipeline serves all shapes):
//   TM, TN, TK, RM, RN  tile rows / columns / K chunk and register block (see src/ops/conv2d.ts CONV_TILES)
//                       (big 64 x 64, 4 x 4 per thread; wide 16 x 128; tall 64 x 16)
//   POINTWISE           1x1, stride 1, no padding: B[k, col] = x[n, k, pixel], no divisions in the gather
//   ACT                 epilogue activation (apply_act in common.wgsl)
//   HAS_BIAS, HAS_RES, HAS_SCALE  optional inputs; BIND_BIAS, BIND_RES, BIND_SCALE, BIND_Y their bindings
//   X_F16, RES_F16, Y_F16  half storage (src/graph/storage.ts): x / residual read as packed f16 pairs, y written
//                       so; with Y_F16 (never with SPLITK) a thread's columns come in pairs (2 tx, 2 tx + 1),
//                       strided by 2 TX, so that it owns both halves of every word it writes
// Epilogue order: acc + bias -> act -> + residual (MBConv adds the skip after the activation-free projection).
//
// Direct (DIRECT = 1, the software adapters' tiles): no workgroup memory and no barrier. Every thread walks K
// itself, reading its RM weights and gathering its RN im2col values straight from the buffers; the im2col
// decomposition of k is kept as counters (ci, ky, kx) stepped with k, so the K loop has no division. On a CPU
// (SwiftShader, lavapipe) workgroup memory is ordinary memory and a barrier makes the compiler run the
// workgroup's invocations as coroutines switching at every barrier, so the staged kernel pays for what only helps
// a GPU. Threads of a workgroup share their columns only when TY > 1 (then each of them gathers them again).
//
// Split K (SPLITK = 1, for GEMMs with few tiles and a long K): workgroup y = split * row_tiles + row tile; the
// workgroup sums only k in [split * k_chunk, min(K, (split + 1) * k_chunk)) and writes its raw sums to
// y = partial[split, m, col]; then ENTRY_REDUCE (one thread per output) adds the slices in order (deterministic)
// and applies the epilogue.
#include "common.wgsl"

struct Params {
  M: u32,        // Cout (GEMM rows)
  NC: u32,       // N * Ho * Wo (GEMM columns)
  K: u32,        // Cin * kh * kw (reduction length)
  cin: u32,      // Cin (inScale row length)
  H: u32,        // input height
  W: u32,        // input width
  HW: u32,       // H * W (x channel stride)
  Wo: u32,       // output width
  HoWo: u32,     // Ho * Wo (output / residual channel stride)
  kw: u32,       // kernel width
  khkw: u32,     // kh * kw (weights per input channel)
  sh: u32, sw: u32, // stride
  ph: u32, pw: u32, // zero padding (top/left; the bottom/right is implied by Ho, Wo)
  dh: u32, dw: u32, // dilation
  x_off: u32, x_tot: u32, // x's channel view
  y_off: u32, y_tot: u32, // output's channel view
  r_off: u32, r_tot: u32, // residual's channel view
  col_tiles: u32, // ceil(NC / TN): column tiles in the (folded) x/z grid
  row_tiles: u32, // ceil(M / TM): row tiles (workgroup y = split * row_tiles + row tile)
  k_chunk: u32,   // SPLITK: K elements per slice (a multiple of TK)
  splits: u32,    // SPLITK: slices of K
};

@group(0) @binding(0) var<uniform> P: Params;
#if ENTRY_REDUCE
@group(0) @binding(1) var<storage, read_write> partial: array<f32>; // [splits, M, NC]
#else
#include "load_x.wgsl"
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
#endif
#if HAS_SCALE
@group(0) @binding(BIND_SCALE) var<storage, read_write> in_scale: array<f32>;
#endif
// y (SPLITK: the scratch of [splits, M, NC] partial sums)
#include "bind_y.wgsl"

#if !SPLITK
#include "conv_epilogue.wgsl"
#endif

#if ENTRY_REDUCE
// Split-K second pass: one thread per output (m, c) adds the slices in order, then the epilogue.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg, WG);
  if (i >= P.M * P.NC) {
    return;
  }
  let m = i / P.NC;
  let c = i - m * P.NC;
  var acc = 0.0;
  for (var sp = 0u; sp < P.splits; sp++) {
    acc += partial[(sp * P.M + m) * P.NC + c];
  }
  epilogue(m, c, acc);
}
#else

const TY: u32 = TM / RM;          // thread rows
const TX: u32 = TN / RN;          // thread columns
const WG: u32 = TY * TX;          // threads per workgroup
const RMN: u32 = RM * RN;         // accumulators per thread
const A_LOADS: u32 = TM * TK / WG; // A words staged per thread per chunk
const A_STEP: u32 = WG / TK;      // A rows between a thread's loads
const B_LOADS: u32 = TK * TN / WG; // B words staged per thread per chunk
const B_STEP: u32 = WG / TN;      // B rows (k) between a thread's loads

#if !DIRECT
const AS: u32 = TM + 1u;          // As row stride, padded: the A staging writes (TK threads on one m, at
                                  // consecutive k) then fall in different banks
var<workgroup> As: array<f32, TK * AS>; // As[k * AS + m]
var<workgroup> Bs: array<f32, TK * TN>; // Bs[k * TN + col]
#endif

// Tile column of a thread's j-th accumulator column (see Y_F16 above).
fn tile_col(tx: u32, j: u32) -> u32 {
#if Y_F16
  return (j / 2u) * (2u * TX) + 2u * tx + (j % 2u);
#else
  return tx + j * TX;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let col_tile = wid.x + wid.z * nwg.x;
  if (col_tile >= P.col_tiles) {
    return;
  }
#if SPLITK
  let split = wid.y / P.row_tiles;
  let m0 = (wid.y - split * P.row_tiles) * TM;
  let k_begin = split * P.k_chunk;
  let k_end = min(P.K, k_begin + P.k_chunk);
#else
  let m0 = wid.y * TM;
  let k_begin = 0u;
  let k_end = P.K;
#endif
  let n0 = col_tile * TN;
  let tx = t % TX;
  let ty = t / TX;

#if !DIRECT
  // B staging role: one column, rows bk0, bk0 + B_STEP, ...
  let bcol = t % TN;
  let bk0 = t / TN;
  let col = n0 + bcol;
  let col_ok = col < P.NC;
  let img = col / P.HoWo;
  let pix = col - img * P.HoWo;
#if POINTWISE
  let xbase = (img * P.x_tot + P.x_off) * P.HW + pix;
#else
  let oy = pix / P.Wo;
  let ox = pix - oy * P.Wo;
  let iy0 = i32(oy * P.sh) - i32(P.ph);
  let ix0 = i32(ox * P.sw) - i32(P.pw);
  let xbase = (img * P.x_tot + P.x_off) * P.HW;
#endif
#if HAS_SCALE
  let sbase = img * P.cin;
#endif

  // A staging role: one k within the chunk, rows am0, am0 + A_STEP, ...
  let ak = t % TK;
  let am0 = t / TK;

  var acc: array<f32, RMN>;
  for (var k0 = k_begin; k0 < k_end; k0 += TK) {
    let ka = k0 + ak;
    for (var l = 0u; l < A_LOADS; l++) {
      let mm = am0 + l * A_STEP;
      let m = m0 + mm;
      var v = 0.0;
      if (m < P.M && ka < k_end) {
        v = w[m * P.K + ka];
      }
      As[ak * AS + mm] = v;
    }
    for (var l = 0u; l < B_LOADS; l++) {
      let kk = bk0 + l * B_STEP;
      let k = k0 + kk;
      var v = 0.0;
      if (col_ok && k < k_end) {
#if POINTWISE
        let ci = k;
        v = load_x(xbase + ci * P.HW);
#else
        let ci = k / P.khkw;
        let r = k - ci * P.khkw;
        let ky = r / P.kw;
        let kx = r - ky * P.kw;
        let iy = u32(iy0 + i32(ky * P.dh));
        let ix = u32(ix0 + i32(kx * P.dw));
        if (iy < P.H && ix < P.W) {
          v = load_x(xbase + ci * P.HW + iy * P.W + ix);
        }
#endif
#if HAS_SCALE
        v *= in_scale[sbase + ci];
#endif
      }
      Bs[kk * TN + bcol] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      var a: array<f32, RM>;
      var b: array<f32, RN>;
      for (var i = 0u; i < RM; i++) {
        a[i] = As[kk * AS + ty + i * TY];
      }
      for (var j = 0u; j < RN; j++) {
        b[j] = Bs[kk * TN + tile_col(tx, j)];
      }
      for (var i = 0u; i < RM; i++) {
        for (var j = 0u; j < RN; j++) {
          acc[i * RN + j] = fma(a[i], b[j], acc[i * RN + j]);
        }
      }
    }
    workgroupBarrier();
  }

#else
  // DIRECT (RM 4 or 8, RN 4): the thread's 4 columns and its rows in vec4 lanes, one vec4 accumulator per row, no
  // arrays (a software adapter keeps an indexed array in memory and indexes it per invocation).
  var col_ok: vec4<bool>;
  var xbase: vec4<u32>;
#if !POINTWISE
  var iy0: vec4<i32>;
  var ix0: vec4<i32>;
#endif
#if HAS_SCALE
  var sbase: vec4<u32>;
#endif
  for (var j = 0u; j < 4u; j++) {
    let col = n0 + tile_col(tx, j);
    let ok = col < P.NC;
    let img = select(0u, col / P.HoWo, ok);
    let pix = select(0u, col - img * P.HoWo, ok);
    col_ok[j] = ok;
#if POINTWISE
    xbase[j] = (img * P.x_tot + P.x_off) * P.HW + pix;
#else
    let oy = pix / P.Wo;
    let ox = pix - oy * P.Wo;
    iy0[j] = i32(oy * P.sh) - i32(P.ph);
    ix0[j] = i32(ox * P.sw) - i32(P.pw);
    xbase[j] = (img * P.x_tot + P.x_off) * P.HW;
#endif
#if HAS_SCALE
    sbase[j] = img * P.cin;
#endif
  }
  // The thread's rows' weight offsets; rows past M read row 0 and are never written.
  let mrow = vec4<u32>(m0 + ty) + vec4<u32>(0u, TY, 2u * TY, 3u * TY);
  let wrow = select(vec4<u32>(0u), mrow * P.K, mrow < vec4<u32>(P.M));
#if RM == 8
  let mrow2 = mrow + vec4<u32>(4u * TY);
  let wrow2 = select(vec4<u32>(0u), mrow2 * P.K, mrow2 < vec4<u32>(P.M));
  var acc4 = vec4<f32>(0.0);
  var acc5 = vec4<f32>(0.0);
  var acc6 = vec4<f32>(0.0);
  var acc7 = vec4<f32>(0.0);
#endif
  // k's im2col decomposition (ci, ky, kx), stepped with k.
  var ci = k_begin;
#if !POINTWISE
  ci = k_begin / P.khkw;
  let r0 = k_begin - ci * P.khkw;
  var ky = r0 / P.kw;
  var kx = r0 - ky * P.kw;
#endif
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k = k_begin; k < k_end; k++) {
    let a = vec4<f32>(w[wrow.x + k], w[wrow.y + k], w[wrow.z + k], w[wrow.w + k]);
#if POINTWISE
    let xi = xbase + vec4<u32>(ci * P.HW);
    let ok = col_ok;
#else
    let iy = vec4<u32>(iy0 + vec4<i32>(i32(ky * P.dh)));
    let ix = vec4<u32>(ix0 + vec4<i32>(i32(kx * P.dw)));
    let ok = col_ok & (iy < vec4<u32>(P.H)) & (ix < vec4<u32>(P.W));
    let xi = select(vec4<u32>(0u), xbase + vec4<u32>(ci * P.HW) + iy * P.W + ix, ok);
#endif
    var b = vec4<f32>(load_x(xi.x), load_x(xi.y), load_x(xi.z), load_x(xi.w));
#if HAS_SCALE
    let si = select(vec4<u32>(0u), sbase + vec4<u32>(ci), col_ok);
    b *= vec4<f32>(in_scale[si.x], in_scale[si.y], in_scale[si.z], in_scale[si.w]);
#endif
    b = select(vec4<f32>(0.0), b, ok);
    acc0 = fma(vec4<f32>(a.x), b, acc0);
    acc1 = fma(vec4<f32>(a.y), b, acc1);
    acc2 = fma(vec4<f32>(a.z), b, acc2);
    acc3 = fma(vec4<f32>(a.w), b, acc3);
#if RM == 8
    let a2 = vec4<f32>(w[wrow2.x + k], w[wrow2.y + k], w[wrow2.z + k], w[wrow2.w + k]);
    acc4 = fma(vec4<f32>(a2.x), b, acc4);
    acc5 = fma(vec4<f32>(a2.y), b, acc5);
    acc6 = fma(vec4<f32>(a2.z), b, acc6);
    acc7 = fma(vec4<f32>(a2.w), b, acc7);
#endif
#if POINTWISE
    ci++;
#else
    kx++;
    if (kx == P.kw) {
      kx = 0u;
      ky++;
      if (ky * P.kw == P.khkw) {
        ky = 0u;
        ci++;
      }
    }
#endif
  }
  var acc: array<f32, RMN>;
  for (var j = 0u; j < 4u; j++) {
    acc[j] = acc0[j];
    acc[4u + j] = acc1[j];
    acc[8u + j] = acc2[j];
    acc[12u + j] = acc3[j];
#if RM == 8
    acc[16u + j] = acc4[j];
    acc[20u + j] = acc5[j];
    acc[24u + j] = acc6[j];
    acc[28u + j] = acc7[j];
#endif
  }
#endif
  // Epilogue (or, split K, this slice's partial sums).
#if Y_F16
  for (var j = 0u; j < RN; j += 2u) {
    let c = n0 + tile_col(tx, j); // even; c + 1 is in the same image (HoWo even)
    if (c >= P.NC) {
      break;
    }
    for (var i = 0u; i < RM; i++) {
      let m = m0 + ty + i * TY;
      if (m >= P.M) {
        break;
      }
      epilogue2(m, c, acc[i * RN + j], acc[i * RN + j + 1u]);
    }
  }
#else
  for (var j = 0u; j < RN; j++) {
    let c = n0 + tile_col(tx, j);
    if (c >= P.NC) {
      break; // later j are further right
    }
    for (var i = 0u; i < RM; i++) {
      let m = m0 + ty + i * TY;
      if (m >= P.M) {
        break; // later i are further down
      }
#if SPLITK
      y[(split * P.M + m) * P.NC + c] = acc[i * RN + j];
#else
      epilogue(m, c, acc[i * RN + j]);
#endif
    }
  }
#endif
}
#endif
