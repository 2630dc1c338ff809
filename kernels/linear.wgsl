// Fully connected layer y = ACT(x @ W^T + b), x [M, K] (rows = batch), W [O, K] (PyTorch Linear layout), b [O].
// A workgroup of TN x TM = 32 x 8 threads computes a tile of TM rows x TN outputs, one output per thread
// (local x = output within the tile, local y = row). The K dimension is walked in steps of TK: the workgroup
// stages the TM x TK block of x (one element per thread) and the TN x TK block of W (4 elements per thread,
// consecutive threads reading consecutive k of a W row) in workgroup memory, then every thread accumulates TK
// products in f32. The W block is stored with a row pitch of TK + 1 so the threads of a row, reading
// different outputs at the same k, hit different banks. Workgroup (i, j) covers outputs [i*TN, ...) and rows
// [j*TM, ...). x may be a channel view (its columns start at x_off of x_tot per row); y may be a channel view.
//
// Defines: ACT (epilogue activation, see apply_act), HAS_BIAS (bind b at binding 3; y moves to binding 4).
#include "common.wgsl"

const TN: u32 = 32u; // outputs per tile (workgroup x)
const TM: u32 = 8u;  // rows per tile (workgroup y)
const TK: u32 = 32u; // reduction step
const WPITCH: u32 = 33u; // row pitch of the staged W block

struct Params {
  rows: u32,              // M (batch)
  k: u32,                 // K input features
  outs: u32,              // O output features
  x_off: u32, x_tot: u32, // x's channel (column) view
  y_off: u32, y_tot: u32, // y's channel (column) view
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
#if HAS_BIAS
@group(0) @binding(3) var<storage, read_write> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#endif

#if DIRECT
// DIRECT (tile policy 'software', for CPU-run adapters): one invocation per output (row, o), row-major over the
// M x O outputs, walking K itself; no workgroup memory, no barrier (on a CPU driver those turn the 256-thread
// workgroup into coroutines, 7 of 8 of them idle at batch 1). A workgroup is one SIMD group (WG lanes).
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg, WG);
  if (i >= P.rows * P.outs) {
    return;
  }
  let row = i / P.outs;
  let o = i - row * P.outs;
  let xb = row * P.x_tot + P.x_off;
  let wb = o * P.k;
  var acc = 0.0;
  for (var k = 0u; k < P.k; k++) {
    acc += x[xb + k] * w[wb + k];
  }
#if HAS_BIAS
  acc += bias[o];
#endif
  y[row * P.y_tot + P.y_off + o] = apply_act(acc);
}
#else
var<workgroup> xs: array<f32, 256>;  // TM x TK
var<workgroup> ws: array<f32, 1056>; // TN x WPITCH

@compute @workgroup_size(32, 8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let o = wid.x * TN + lid.x;
  let row = wid.y * TM + lid.y;
  let o0 = wid.x * TN;
  var acc = 0.0;
  for (var k0 = 0u; k0 < P.k; k0 += TK) {
    // Stage x[row, k0 + lid.x] (zero outside) and W[o0 .. o0 + TN, k0 .. k0 + TK].
    let kx = k0 + lid.x;
    var xv = 0.0;
    if (row < P.rows && kx < P.k) {
      xv = x[row * P.x_tot + P.x_off + kx];
    }
    xs[lid.y * TK + lid.x] = xv;
    for (var j = 0u; j < (TN * TK) / 256u; j++) {
      let idx = li + j * 256u;
      let wo = idx / TK;
      let wk = idx % TK;
      var wv = 0.0;
      if (o0 + wo < P.outs && k0 + wk < P.k) {
        wv = w[(o0 + wo) * P.k + k0 + wk];
      }
      ws[wo * WPITCH + wk] = wv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk++) {
      acc += xs[lid.y * TK + kk] * ws[lid.x * WPITCH + kk];
    }
    workgroupBarrier();
  }
  if (row < P.rows && o < P.outs) {
#if HAS_BIAS
    acc += bias[o];
#endif
    y[row * P.y_tot + P.y_off + o] = apply_act(acc);
  }
}
#endif
