// Squeeze-excite pieces: channel SE (pool -> fc1 -> act1 -> fc2 -> sigmoid -> scale) and spatial SE.
//
// Entries (one per define):
//   ENTRY_POOL: partial plane sums of x [N, C, H, W]. A plane of `inner` elements is cut into `chunks` chunks
//     of `chunk_len`; an item is one (n, c, chunk), written to partial[(n * C + c) * chunks + chunk]. A
//     workgroup of WG threads gives `lanes` threads (a power of two) to each item, so it covers WG / lanes
//     items; the lanes stride through their chunk and combine their sums in a fixed-order tree. The item
//     index of a workgroup is folded into a 2-D grid (grid1d).
//   ENTRY_FC1 then ENTRY_FC2: scale[n, c] = sigmoid(b2[c] + sum_s w2[c, s] * hid[n, s]) with
//     hid[n, s] = act1(b1[s] + sum_c' w1[s, c'] * pooled[n, c']), in two dispatches so that no workgroup
//     repeats another's work. FC1: one workgroup per (block of WG / lanes hidden units, image n) = workgroup_id
//     (x, y); `lanes` threads per hidden unit read its w1 row together (coalesced), striding over the C inputs,
//     and combine in a fixed-order tree; hid goes to a [N, S] scratch. pooled[n, c] = inv * sum_j
//     pooled_in[(n * p_tot + p_off + c) * chunks + j]: with chunks = 1 and inv = 1 it reads a [N, C] tensor of
//     means (a channel view allowed); with the ENTRY_POOL partials it finishes the mean itself (chunks
//     partials, inv = 1 / inner). FC2: one workgroup per (block of WG output channels, image n); hid[n] is
//     staged in workgroup memory and thread i computes output channel x * WG + i.
//   ENTRY_APPLY: y = x * scale[n, c], one thread per element (2-D folded grid); x and y may be channel views.
//   ENTRY_SPATIAL: y[n, c, p] = x[n, c, p] * sigmoid(b + sum_c w[c] x[n, c, p]); one thread per pixel (n, p)
//     loops over the channels twice (dot product, then the C scaled writes). x and y may be channel views.
//
// Defines: WG (threads per workgroup), ACT (act1 of ENTRY_FC1: 1 ReLU, 2 SiLU, see common.wgsl), SMAX
// (ENTRY_FC2: largest hidden size).
#include "common.wgsl"

#if ENTRY_POOL
struct Params {
  items: u32,             // N * C * chunks
  channels: u32,          // C
  inner: u32,             // H * W
  chunks: u32,            // chunks per plane
  chunk_len: u32,         // elements per chunk (the last may be shorter)
  lanes: u32,             // threads per item, a power of two <= WG
  x_off: u32, x_tot: u32, // input's channel view
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let item = (wid.x + wid.y * nwg.x) * (WG / P.lanes) + lid / P.lanes;
  let lane = lid % P.lanes;
  var acc = 0.0;
  if (item < P.items) {
    let plane = item / P.chunks;
    let start = (item % P.chunks) * P.chunk_len;
    let end = min(start + P.chunk_len, P.inner);
    let base = tensor_index(plane / P.channels, plane % P.channels, 0u, P.x_off, P.x_tot, P.inner);
    for (var s = start + lane; s < end; s += P.lanes) {
      acc += x[base + s];
    }
  }
  red[lid] = acc;
  for (var stride = P.lanes / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lane < stride) {
      red[lid] += red[lid + stride];
    }
  }
  if (lane == 0u && item < P.items) {
    partial[item] = red[lid];
  }
}
#endif

#if ENTRY_FC1
struct Params {
  channels: u32,          // C
  hidden: u32,            // S
  lanes: u32,             // threads per hidden unit, a power of two <= WG
  chunks: u32,            // partial sums per (n, c) in pooled_in
  p_off: u32, p_tot: u32, // pooled_in's channel view
  inv: f32,               // multiplies the summed partials (1 for means, 1 / inner for plane sums)
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> pooled_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> w1: array<f32>; // [S, C]
@group(0) @binding(3) var<storage, read_write> b1: array<f32>; // [S]
@group(0) @binding(4) var<storage, read_write> hid: array<f32>; // [N, S]

fn pooled_at(n: u32, c: u32) -> f32 {
  let base = (n * P.p_tot + P.p_off + c) * P.chunks;
  var acc = 0.0;
  for (var j = 0u; j < P.chunks; j++) {
    acc += pooled_in[base + j];
  }
  return acc * P.inv;
}

#if DIRECT
// DIRECT (tile policy 'software'): one invocation per hidden unit s of image n = (global x, global y), the whole
// dot product in one thread (no workgroup memory, no barrier).
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.y;
  let s = gid.x;
  if (s >= P.hidden) {
    return;
  }
  var acc = 0.0;
  for (var c = 0u; c < P.channels; c++) {
    acc += w1[s * P.channels + c] * pooled_at(n, c);
  }
  hid[n * P.hidden + s] = apply_act(acc + b1[s]);
}
#else
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = wid.y;
  let lane = lid % P.lanes;
  let s = wid.x * (WG / P.lanes) + lid / P.lanes;
  var acc = 0.0;
  if (s < P.hidden) {
    for (var c = lane; c < P.channels; c += P.lanes) {
      acc += w1[s * P.channels + c] * pooled_at(n, c);
    }
  }
  red[lid] = acc;
  for (var stride = P.lanes / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lane < stride) {
      red[lid] += red[lid + stride];
    }
  }
  if (lane == 0u && s < P.hidden) {
    hid[n * P.hidden + s] = apply_act(red[lid] + b1[s]);
  }
}
#endif
#endif

#if ENTRY_FC2
struct Params {
  channels: u32,          // C
  hidden: u32,            // S
  s_off: u32, s_tot: u32, // scale output's channel view
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> hid: array<f32>; // [N, S]
@group(0) @binding(2) var<storage, read_write> w2: array<f32>; // [C, S]
@group(0) @binding(3) var<storage, read_write> b2: array<f32>; // [C]
@group(0) @binding(4) var<storage, read_write> scale: array<f32>;

#if DIRECT
// DIRECT (tile policy 'software'): one invocation per output channel c of image n, reading hid directly.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = gid.y;
  let c = gid.x;
  if (c >= P.channels) {
    return;
  }
  var z = b2[c];
  for (var s = 0u; s < P.hidden; s++) {
    z += w2[c * P.hidden + s] * hid[n * P.hidden + s];
  }
  scale[n * P.s_tot + P.s_off + c] = sigmoid_f(z);
}
#else
var<workgroup> h: array<f32, SMAX>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = wid.y;
  for (var s = lid; s < P.hidden; s += WG) {
    h[s] = hid[n * P.hidden + s];
  }
  workgroupBarrier();
  let c = wid.x * WG + lid;
  if (c < P.channels) {
    var z = b2[c];
    for (var s = 0u; s < P.hidden; s++) {
      z += w2[c * P.hidden + s] * h[s];
    }
    scale[n * P.s_tot + P.s_off + c] = sigmoid_f(z);
  }
}
#endif
#endif

#if ENTRY_APPLY
struct Params {
  total: u32,             // N * C * inner elements
  channels: u32,          // C
  inner: u32,             // H * W
  x_off: u32, x_tot: u32, // input's channel view
  y_off: u32, y_tot: u32, // output's channel view
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> scale: array<f32>; // [N, C], dense
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
#if DIRECT
  // Tile policy 'software': a run of one plane per invocation (chunk_of, common.wgsl).
  let ch = chunk_of(linear_id(gid, nwg, WG), P.total, P.channels, P.inner);
  let sc = scale[select(0u, ch.n * P.channels + ch.c, ch.s1 > ch.s0)];
  for (var s = ch.s0; s < ch.s1; s++) {
    let e = Nchw(ch.n, ch.c, s);
    y[view_index(e, P.y_off, P.y_tot, P.inner)] = x[view_index(e, P.x_off, P.x_tot, P.inner)] * sc;
  }
#else
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let e = nchw_of(i, P.channels, P.inner);
  y[view_index(e, P.y_off, P.y_tot, P.inner)] = x[view_index(e, P.x_off, P.x_tot, P.inner)] * scale[i / P.inner];
#endif
}
#endif

#if ENTRY_SPATIAL
struct Params {
  pixels: u32,            // N * inner
  channels: u32,          // C
  inner: u32,             // H * W
  x_off: u32, x_tot: u32, // input's channel view
  y_off: u32, y_tot: u32, // output's channel view
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>; // [C] (the 1x1 conv's weight [1, C, 1, 1])
@group(0) @binding(3) var<storage, read_write> b: array<f32>; // [1]
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg, WG);
  if (i >= P.pixels) { return; }
  let e = nchw_of(i, 1u, P.inner); // a pixel: channel 0
  let xb = view_index(e, P.x_off, P.x_tot, P.inner);
  var q = b[0];
  for (var c = 0u; c < P.channels; c++) {
    q += w[c] * x[xb + c * P.inner];
  }
  let g = sigmoid_f(q);
  let yb = view_index(e, P.y_off, P.y_tot, P.inner);
  for (var c = 0u; c < P.channels; c++) {
    y[yb + c * P.inner] = x[xb + c * P.inner] * g;
  }
}
#endif
