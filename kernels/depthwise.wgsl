// Depthwise KxK convolution (groups = C, weight [C, 1, K, K]) + bias + activation, with an optional fused
// per-channel mean of the output (the "squeeze" of squeeze-excite), x [N, C, H, W] -> y [N, C, Ho, Wo].
//
// Thread mapping (ENTRY_CONV): one workgroup per (output tile, channel c, image n) = workgroup_id (x, y, z).
// A workgroup is TW x WGY threads and covers an output tile of TW columns x TH = WGY * RPT rows; thread
// (tx, ty) computes the RPT consecutive output rows ty * RPT .. ty * RPT + RPT - 1 of column tx. The workgroup
// first copies the input patch the tile needs (IN_H x IN_W, halo included, zeros outside the image) into
// workgroup memory with coalesced reads, and each thread loads the K*K weights of its channel into registers;
// every output then reads only workgroup memory. Tiles are row-major in the plane (tiles_x per row).
// With POOL, each thread also sums the activated outputs it wrote, the workgroup combines those sums in a tree
// (fixed order, so the result is deterministic), and thread 0 writes either the plane's mean (POOL == 2, one
// tile per plane) or the tile's partial sum to scratch[(n * C + c) * tiles + tile] (POOL == 1); then
// ENTRY_FINISH (one thread per (n, c) plane) sums a plane's partials in tile order and writes the mean.
// x and y may be channel views of larger buffers; the pooled output [N, C] may be a channel view of [N, F].
//
// Half storage (src/graph/storage.ts): X_F16 reads x as packed f16 pairs; Y_F16 writes y so (Wo even, so a pair
// never straddles two rows): the workgroup puts its outputs in workgroup memory (reusing the input patch) and
// the threads of even columns write (column, column + 1) pairs. The pool sums the f32 values before rounding.
//
// Defines: K (odd kernel size), STRIDE, TW, WGY, RPT (tile shape; TW * WGY a power of two), ACT (epilogue,
// see common.wgsl), HAS_BIAS, POOL (0 none, 1 partial sums to scratch, 2 mean written directly), X_F16, Y_F16;
// ENTRY_FINISH selects the second-pass entry instead (with WG threads per workgroup); DIRECT (with WG, no tile
// shape) the software adapters' entry at the end of the file, one invocation per plane.
#include "common.wgsl"

#if ENTRY_FINISH

struct Params {
  planes: u32,            // N * C
  channels: u32,          // C
  tiles: u32,             // partial sums per plane
  p_off: u32, p_tot: u32, // pooled output's channel view
  inv_area: f32,          // 1 / (Ho * Wo)
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let plane = linear_id(gid, nwg, WG);
  if (plane >= P.planes) { return; }
  var acc = 0.0;
  for (var t = 0u; t < P.tiles; t++) {
    acc += partial[plane * P.tiles + t];
  }
  let c = plane % P.channels;
  let n = plane / P.channels;
  pooled[n * P.p_tot + P.p_off + c] = acc * P.inv_area;
}

#else

struct Params {
  channels: u32,          // C
  h: u32, w: u32,         // input plane
  ho: u32, wo: u32,       // output plane
  pad: u32,               // zero padding on every side
  tiles_x: u32,           // output tiles per tile row
  tiles: u32,             // output tiles per plane
  x_off: u32, x_tot: u32, // input's channel view
  y_off: u32, y_tot: u32, // output's channel view
  p_off: u32, p_tot: u32, // pooled output's channel view (POOL == 2)
  inv_area: f32,          // 1 / (Ho * Wo)
};

#if DIRECT
const IR: u32 = (RR - 1u) * STRIDE + K; // input rows per pass (RR output rows per pass, a define: 2)
#else
const TH: u32 = WGY * RPT;
const THREADS: u32 = TW * WGY;
const IN_W: u32 = (TW - 1u) * STRIDE + K;
const IN_H: u32 = (TH - 1u) * STRIDE + K;
#endif

@group(0) @binding(0) var<uniform> P: Params;
#include "load_x.wgsl"
@group(0) @binding(2) var<storage, read_write> wt: array<f32>;
#if HAS_BIAS
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
#endif
#include "bind_y.wgsl"
#if POOL
@group(0) @binding(BIND_POOL) var<storage, read_write> pooled: array<f32>; // the mean (POOL 2) or partial sums (POOL 1)
#endif

#if !DIRECT
var<workgroup> tile_in: array<f32, IN_W * IN_H>;
#if POOL
var<workgroup> red: array<f32, THREADS>;
#endif

@compute @workgroup_size(TW, WGY)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tile = wid.x;
  let c = wid.y;
  let n = wid.z;
  let ox0 = (tile % P.tiles_x) * TW;
  let oy0 = (tile / P.tiles_x) * TH;
  let ix0 = i32(ox0 * STRIDE) - i32(P.pad);
  let iy0 = i32(oy0 * STRIDE) - i32(P.pad);
  let x_base = tensor_index(n, c, 0u, P.x_off, P.x_tot, P.h * P.w);

  for (var i = li; i < IN_W * IN_H; i += THREADS) {
    let iy = iy0 + i32(i / IN_W);
    let ix = ix0 + i32(i % IN_W);
    var v = 0.0;
    if (iy >= 0 && iy < i32(P.h) && ix >= 0 && ix < i32(P.w)) {
      v = load_x(x_base + u32(iy) * P.w + u32(ix));
    }
    tile_in[i] = v;
  }

  var wk: array<f32, K * K>;
  for (var j = 0u; j < K * K; j++) {
    wk[j] = wt[c * K * K + j];
  }
#if HAS_BIAS
  let b0 = bias[c];
#else
  let b0 = 0.0;
#endif
  workgroupBarrier();

  let ox = ox0 + lid.x;
  let y_base = tensor_index(n, c, 0u, P.y_off, P.y_tot, P.ho * P.wo);
  var sum = 0.0;
#if Y_F16
  var vals: array<f32, RPT>;
#endif
  for (var r = 0u; r < RPT; r++) {
    let ly = lid.y * RPT + r;
    let oy = oy0 + ly;
    var acc = b0;
    for (var ky = 0u; ky < K; ky++) {
      let row = (ly * STRIDE + ky) * IN_W + lid.x * STRIDE;
      for (var kx = 0u; kx < K; kx++) {
        acc += wk[ky * K + kx] * tile_in[row + kx];
      }
    }
    let v = apply_act(acc);
#if Y_F16
    vals[r] = v;
#endif
    if (ox < P.wo && oy < P.ho) {
#if !Y_F16
      y[y_base + oy * P.wo + ox] = v;
#endif
      sum += v;
    }
  }
#if Y_F16
  workgroupBarrier(); // every thread is done with the input patch: it now holds the TH x TW outputs
  for (var r = 0u; r < RPT; r++) {
    tile_in[(lid.y * RPT + r) * TW + lid.x] = vals[r];
  }
  workgroupBarrier();
  if (lid.x % 2u == 0u && ox < P.wo) {
    for (var r = 0u; r < RPT; r++) {
      let ly = lid.y * RPT + r;
      let oy = oy0 + ly;
      if (oy < P.ho) {
        let o = ly * TW + lid.x;
        y[(y_base + oy * P.wo + ox) >> 1u] = pack_half2(tile_in[o], tile_in[o + 1u]);
      }
    }
  }
#endif

#if POOL
  red[li] = sum;
  for (var stride = THREADS / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (li < stride) {
      red[li] += red[li + stride];
    }
  }
  if (li == 0u) {
#if POOL == 2
    pooled[n * P.p_tot + P.p_off + c] = red[0] * P.inv_area;
#else
    pooled[(n * P.channels + c) * P.tiles + tile] = red[0];
#endif
  }
#endif
}

#else
// DIRECT (tile policy 'software', for CPU-run adapters): one invocation per (image, channel) plane walks the
// whole plane, reading x and the weights straight from the buffers (no workgroup memory, no barrier), and, with
// POOL (always 2 here), writes the plane's mean itself. P.tiles is then the number of planes N * C. On a CPU
// driver each invocation is one SIMD lane and every load is that lane's own (a bounds-checked scalar load), so the
// invocation keeps the K x K weights and a window of the input in registers and slides the window along the
// output rows: each step loads only the STRIDE new input columns of each input row, for two output rows at a time
// (RR = 2, sharing K - STRIDE input rows): with stride 1, K + 1 loads for 2 K^2 multiply-adds, where a direct walk
// loads 2 K^2. The workgroup is one SIMD group (WG = the subgroup size).
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let plane = linear_id(gid, nwg, WG);
  if (plane >= P.tiles) {
    return;
  }
  let c = plane % P.channels;
  let n = plane / P.channels;
  let x_base = tensor_index(n, c, 0u, P.x_off, P.x_tot, P.h * P.w);
  let y_base = tensor_index(n, c, 0u, P.y_off, P.y_tot, P.ho * P.wo);
  var wk: array<f32, K * K>;
  for (var j = 0u; j < K * K; j++) {
    wk[j] = wt[c * K * K + j];
  }
#if HAS_BIAS
  let b0 = bias[c];
#else
  let b0 = 0.0;
#endif
  var sum = 0.0;
  // RR output rows per pass (2: they share K - STRIDE input rows), IR input rows.
  for (var oy0 = 0u; oy0 < P.ho; oy0 += RR) {
    // The IR input rows of these output rows: their offsets, and whether each lies inside the plane.
    var row: array<u32, IR>;
    var row_ok: array<bool, IR>;
    for (var r = 0u; r < IR; r++) {
      let iy = i32(oy0 * STRIDE + r) - i32(P.pad);
      row_ok[r] = iy >= 0 && iy < i32(P.h);
      row[r] = x_base + select(0u, u32(iy), row_ok[r]) * P.w;
    }
    // win[r * K + kx] = input (row r, column ix0 + kx) for the outputs being computed, ix0 = ox * STRIDE - pad.
    // Primed with the columns before the first outputs' window, so every step shifts by STRIDE and loads STRIDE.
    var win = array<f32, IR * K>();
    for (var r = 0u; r < IR; r++) {
      for (var kx: u32 = STRIDE; kx < K; kx++) {
        win[r * K + kx] = dw_load(row[r], row_ok[r], i32(kx) - i32(STRIDE) - i32(P.pad));
      }
    }
    let two = RR == 2 && oy0 + 1u < P.ho;
#if Y_F16
    var prev = vec2<f32>(0.0);
#endif
    for (var ox = 0u; ox < P.wo; ox++) {
      let ix0 = i32(ox * STRIDE) - i32(P.pad);
      for (var r = 0u; r < IR; r++) {
        for (var kx = 0u; kx < K - STRIDE; kx++) {
          win[r * K + kx] = win[r * K + kx + STRIDE];
        }
        for (var kx: u32 = K - STRIDE; kx < K; kx++) {
          win[r * K + kx] = dw_load(row[r], row_ok[r], ix0 + i32(kx));
        }
      }
      var acc = vec2<f32>(b0);
      for (var ky = 0u; ky < K; ky++) {
        for (var kx = 0u; kx < K; kx++) {
          acc.x += wk[ky * K + kx] * win[ky * K + kx];
#if RR == 2
          acc.y += wk[ky * K + kx] * win[(ky + STRIDE) * K + kx];
#endif
        }
      }
      let v = vec2<f32>(apply_act(acc.x), apply_act(acc.y));
      sum += v.x + select(0.0, v.y, two);
#if Y_F16
      // Pairs of columns (Wo even): the even column waits for the odd one.
      if ((ox & 1u) == 1u) {
        y[(y_base + oy0 * P.wo + ox - 1u) >> 1u] = pack_half2(prev.x, v.x);
        if (two) {
          y[(y_base + (oy0 + 1u) * P.wo + ox - 1u) >> 1u] = pack_half2(prev.y, v.y);
        }
      }
      prev = v;
#else
      y[y_base + oy0 * P.wo + ox] = v.x;
      if (two) {
        y[y_base + (oy0 + 1u) * P.wo + ox] = v.y;
      }
#endif
    }
  }
#if POOL
  pooled[n * P.p_tot + P.p_off + c] = sum * P.inv_area;
#endif
}

// Input (row at offset `base`, column ix), zero outside the plane.
fn dw_load(base: u32, ok: bool, ix: i32) -> f32 {
  var v = 0.0;
  if (ok && ix >= 0 && ix < i32(P.w)) {
    v = load_x(base + u32(ix));
  }
  return v;
}
#endif
#endif
