// Bilinear resize of NCHW planes, exactly PyTorch's F.interpolate(mode='bilinear') with an explicit size. One
// thread per output element (n, c, oy, ox), the 1-D thread id folded into a 2-D grid (grid1d): the thread maps
// its output coordinate to a source coordinate per axis, src = max(scale * (dst + half_px) - half_px, 0), with
// half_px = 0.5 and scale = in / out without align_corners, half_px = 0 and scale = (in - 1) / (out - 1) (0 for
// out == 1) with align_corners; the host computes the scales in f32, as PyTorch does for float tensors. Then
// i0 = min(floor(src), in - 1), i1 = min(i0 + 1, in - 1), lambda = src - i0, and the output is the bilinear
// blend of the four source pixels. Input and output may be channel views (MsFF writes resized maps into slices
// of one concat buffer).
#include "common.wgsl"

struct Params {
  total: u32,             // N * C * Ho * Wo output elements
  channels: u32,          // C
  h_in: u32, w_in: u32,   // source plane
  h_out: u32, w_out: u32, // output plane
  x_off: u32, x_tot: u32, // input's channel view
  y_off: u32, y_tot: u32, // output's channel view
  scale_h: f32,           // source pixels per output pixel, rows
  scale_w: f32,           // same for columns
  half_px: f32,           // 0.5 (half-pixel centres) or 0 (align_corners)
};

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// Source index pair and weight of the second one along an axis of `size` source pixels.
fn source_coord(dst: u32, scale: f32, size: u32) -> vec3<f32> {
  let src = max(scale * (f32(dst) + P.half_px) - P.half_px, 0.0);
  let i0 = min(floor(src), f32(size - 1u));
  let i1 = min(i0 + 1.0, f32(size - 1u));
  let lam = clamp(src - i0, 0.0, 1.0);
  return vec3<f32>(i0, i1, lam);
}

#if DIRECT
// DIRECT (tile policy 'software', for CPU-run adapters): one invocation per output row (n, c, oy), P.total being
// the number of rows N * C * Ho, walking the row. On a CPU driver an integer division is a scalar loop over the
// SIMD lanes and every load is a lane's own bounds-checked load, so the row's coordinates are divided out once,
// and the four source pixels are read again only when the source column changes (every 2 or 8 outputs when
// upsampling by 2 or 8). Same arithmetic as the per-element entry, so the same bits.
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = linear_id(gid, nwg, WG);
  if (row >= P.total) { return; }
  let oy = row % P.h_out;
  let nc = row / P.h_out;
  let c = nc % P.channels;
  let n = nc / P.channels;
  let cy = source_coord(oy, P.scale_h, P.h_in);
  let base = tensor_index(n, c, 0u, P.x_off, P.x_tot, P.h_in * P.w_in);
  let r0 = base + u32(cy.x) * P.w_in;
  let r1 = base + u32(cy.y) * P.w_in;
  let yb = tensor_index(n, c, oy * P.w_out, P.y_off, P.y_tot, P.h_out * P.w_out);
  var cur = 0xffffffffu;
  var a0 = 0.0;
  var a1 = 0.0;
  var b0 = 0.0;
  var b1 = 0.0;
  for (var ox = 0u; ox < P.w_out; ox++) {
    let cx = source_coord(ox, P.scale_w, P.w_in);
    let x0 = u32(cx.x);
    if (x0 != cur) {
      let x1 = u32(cx.y);
      a0 = x[r0 + x0];
      a1 = x[r0 + x1];
      b0 = x[r1 + x0];
      b1 = x[r1 + x1];
      cur = x0;
    }
    let top = (1.0 - cx.z) * a0 + cx.z * a1;
    let bottom = (1.0 - cx.z) * b0 + cx.z * b1;
    y[yb + ox] = (1.0 - cy.z) * top + cy.z * bottom;
  }
}
#else
@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg, WG);
  if (i >= P.total) { return; }
  let ox = i % P.w_out;
  let oy = (i / P.w_out) % P.h_out;
  let nc = i / (P.w_out * P.h_out);
  let c = nc % P.channels;
  let n = nc / P.channels;
  let cy = source_coord(oy, P.scale_h, P.h_in);
  let cx = source_coord(ox, P.scale_w, P.w_in);
  let base = tensor_index(n, c, 0u, P.x_off, P.x_tot, P.h_in * P.w_in);
  let r0 = base + u32(cy.x) * P.w_in;
  let r1 = base + u32(cy.y) * P.w_in;
  let x0 = u32(cx.x);
  let x1 = u32(cx.y);
  let top = (1.0 - cx.z) * x[r0 + x0] + cx.z * x[r0 + x1];
  let bottom = (1.0 - cx.z) * x[r1 + x0] + cx.z * x[r1 + x1];
  y[tensor_index(n, c, oy * P.w_out + ox, P.y_off, P.y_tot, P.h_out * P.w_out)] = (1.0 - cy.z) * top + cy.z * bottom;
}
#endif
