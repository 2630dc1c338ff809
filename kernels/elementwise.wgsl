// Elementwise ops over NCHW tensors (any rank: dimension 1 is the channel, `inner` the product of the rest).
// One thread per output element; the 1-D thread id is folded into a 2-D grid (grid1d). Every tensor may be a
// channel view (cOff, cTot) of a larger buffer.
//
// Entries:
//   unary:     y = ACT(x)
//   binary:    y = ACT(a OP b), b broadcast through explicit strides (0 on broadcast dimensions)
//   batchnorm: y = ACT((x - mean[c]) * gamma[c] / sqrt(var[c] + eps) + beta[c])
#include "common.wgsl"

struct Params {
  total: u32,    // N * C * inner output elements
  channels: u32, // C
  inner: u32,    // H * W
  x_off: u32, x_tot: u32,   // first input's channel view
  y_off: u32, y_tot: u32,   // output's channel view
  b_sn: u32, b_sc: u32, b_ss: u32, b_base: u32, // binary: strides of b per n, c, spatial, and its base offset
  eps: f32,
};

@group(0) @binding(0) var<uniform> P: Params;

#if ENTRY_UNARY
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
#if DIRECT
  let ch = chunk_of(linear_id(gid, nwg, WG), P.total, P.channels, P.inner);
  for (var s = ch.s0; s < ch.s1; s++) {
  let e = Nchw(ch.n, ch.c, s);
#else
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let e = nchw_of(i, P.channels, P.inner);
#endif
  y[view_index(e, P.y_off, P.y_tot, P.inner)] = apply_act(x[view_index(e, P.x_off, P.x_tot, P.inner)]);
#if DIRECT
  }
#endif
}
#endif

#if ENTRY_BINARY
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
#if DIRECT
  let ch = chunk_of(linear_id(gid, nwg, WG), P.total, P.channels, P.inner);
  for (var s = ch.s0; s < ch.s1; s++) {
  let e = Nchw(ch.n, ch.c, s);
#else
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let e = nchw_of(i, P.channels, P.inner);
#endif
  let a = x[view_index(e, P.x_off, P.x_tot, P.inner)];
  let bv = b[P.b_base + e.n * P.b_sn + e.c * P.b_sc + e.s * P.b_ss];
#if OP == 0
  let r = a + bv;
#elif OP == 1
  let r = a - bv;
#elif OP == 2
  let r = a * bv;
#elif OP == 3
  let r = a * (1.0 + bv);
#endif
  y[view_index(e, P.y_off, P.y_tot, P.inner)] = apply_act(r);
#if DIRECT
  }
#endif
}
#endif

#if ENTRY_BATCHNORM
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> variance: array<f32>;
@group(0) @binding(6) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
#if DIRECT
  let ch = chunk_of(linear_id(gid, nwg, WG), P.total, P.channels, P.inner);
  for (var s = ch.s0; s < ch.s1; s++) {
  let e = Nchw(ch.n, ch.c, s);
#else
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let e = nchw_of(i, P.channels, P.inner);
#endif
  let scale = gamma[e.c] / sqrt(variance[e.c] + P.eps);
  let v = (x[view_index(e, P.x_off, P.x_tot, P.inner)] - mean[e.c]) * scale + beta[e.c];
  y[view_index(e, P.y_off, P.y_tot, P.inner)] = apply_act(v);
#if DIRECT
  }
#endif
}
#endif
