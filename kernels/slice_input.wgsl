// The model input made on the GPU from windowed slices (src/ops/slice-input.ts; the CPU form is
// src/models/preprocess.ts normalise / maskedInput). One thread per pixel (n, i) of the [N, 1, H, W] window w:
//   v = w                                    (no mask: stage 1's input)
//   v = prob > threshold ? w : outside       (MASKED: stage 2's input, prob = stage 1's lung probability)
//   y[n, c, i] = (v - mean[c]) / std[c]      for c = 0, 1, 2 (the slice replicated to three channels)
// The output may be a channel view of a larger buffer.
#include "common.wgsl"

struct Params {
  total: u32,             // N * H * W pixels
  inner: u32,             // H * W
  y_off: u32, y_tot: u32, // output's channel view
  mean0: f32, mean1: f32, mean2: f32,
  std0: f32, std1: f32, std2: f32,
  threshold: f32,         // lung_threshold (MASKED only)
  outside: f32,           // outside_mask_value (MASKED only)
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
#if MASKED
@group(0) @binding(2) var<storage, read_write> prob: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
#else
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
#endif

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let e = nchw_of(i, 1u, P.inner); // a pixel: channel 0
  var v = w[i];
#if MASKED
  if (!(prob[i] > P.threshold)) { v = P.outside; }
#endif
  y[tensor_index(e.n, 0u, e.s, P.y_off, P.y_tot, P.inner)] = (v - P.mean0) / P.std0;
  y[tensor_index(e.n, 1u, e.s, P.y_off, P.y_tot, P.inner)] = (v - P.mean1) / P.std1;
  y[tensor_index(e.n, 2u, e.s, P.y_off, P.y_tot, P.inner)] = (v - P.mean2) / P.std2;
}
