// Softmax over dimension 1 (channels) of an NCHW tensor or a rank-2 [N, C] tensor (inner = 1). One thread per
// pixel (n, s), the 1-D thread id folded into a 2-D grid (grid1d): the thread walks its C channels three times,
// for the maximum, for the sum of exp(x - max), and to write exp(x - max) / sum, all in f32. Consecutive
// threads handle consecutive pixels, so every channel step reads and writes contiguous memory. x and y may be
// channel views (off, tot).
#include "common.wgsl"

struct Params {
  total: u32,             // N * inner pixels
  channels: u32,          // C, the softmax axis
  inner: u32,             // H * W (1 for rank 2)
  x_off: u32, x_tot: u32, // input's channel view
  y_off: u32, y_tot: u32, // output's channel view
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let e = nchw_of(i, 1u, P.inner); // a pixel: channel 0
  let xb = view_index(e, P.x_off, P.x_tot, P.inner);
  let yb = view_index(e, P.y_off, P.y_tot, P.inner);
  var m = x[xb];
  for (var c = 1u; c < P.channels; c++) {
    m = max(m, x[xb + c * P.inner]);
  }
  var sum = 0.0;
  for (var c = 0u; c < P.channels; c++) {
    sum += exp(x[xb + c * P.inner] - m);
  }
  for (var c = 0u; c < P.channels; c++) {
    y[yb + c * P.inner] = exp(x[xb + c * P.inner] - m) / sum;
  }
}
