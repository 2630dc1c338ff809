// ConvGRU gate arithmetic (the convolutions themselves are ordinary conv dispatches). One thread per output
// element (n, c, s) of the [N, C, H, W] hidden state, the 1-D thread id folded into a 2-D grid (grid1d); the
// thread reads the matching elements of its inputs and writes one output. The z and r pre-activations come
// from ONE conv with 2C output channels: channels [0, C) are z, [C, 2C) are r. Every tensor may be a channel
// view (off, tot) of a larger buffer; zr's view is over its 2C channels.
//
// Entries (one per define):
//   ENTRY_RESET:  rh = sigmoid(zr[:, C + c]) * h                 (written into the [x, r*h] concat buffer)
//   ENTRY_UPDATE: h' = (1 - z) * h + z * tanh(n_pre), z = sigmoid(zr[:, c]);
//                 with H0 = 1 the previous state is zero and h is not bound: h' = z * tanh(n_pre).
#include "common.wgsl"

struct Params {
  total: u32,               // N * C * inner output elements
  channels: u32,            // C (hidden channels; zr has 2C)
  inner: u32,               // H * W
  zr_off: u32, zr_tot: u32, // zr_pre's channel view
  n_off: u32, n_tot: u32,   // n_pre's channel view (update only)
  h_off: u32, h_tot: u32,   // h's channel view (unused when H0)
  y_off: u32, y_tot: u32,   // output's channel view
};

@group(0) @binding(0) var<uniform> P: Params;

#if ENTRY_RESET
@group(0) @binding(1) var<storage, read_write> zr: array<f32>;
@group(0) @binding(2) var<storage, read_write> h: array<f32>;
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
  let r = sigmoid_f(zr[tensor_index(e.n, P.channels + e.c, e.s, P.zr_off, P.zr_tot, P.inner)]);
  y[view_index(e, P.y_off, P.y_tot, P.inner)] = r * h[view_index(e, P.h_off, P.h_tot, P.inner)];
#if DIRECT
  }
#endif
}
#endif

#if ENTRY_UPDATE
@group(0) @binding(1) var<storage, read_write> zr: array<f32>;
@group(0) @binding(2) var<storage, read_write> npre: array<f32>;
#if H0
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(3) var<storage, read_write> h: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
#endif

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
  let z = sigmoid_f(zr[view_index(e, P.zr_off, P.zr_tot, P.inner)]);
  let cand = tanh_f(npre[view_index(e, P.n_off, P.n_tot, P.inner)]);
#if H0
  let hn = z * cand;
#else
  let hn = (1.0 - z) * h[view_index(e, P.h_off, P.h_tot, P.inner)] + z * cand;
#endif
  y[view_index(e, P.y_off, P.y_tot, P.inner)] = hn;
#if DIRECT
  }
#endif
}
#endif
