// Global average / max pooling, x [N, C, H, W] -> y [N, C] (rank 2). A workgroup of WG threads reduces one or
// more (n, c) planes: the host picks `lanes` (a power of two <= WG) threads per plane, so a workgroup covers
// WG / lanes planes (many small planes share a workgroup; a large plane gets all WG threads). Each lane strides
// through its plane accumulating a partial (sum or max) in f32, writes it to workgroup memory, and the lanes
// of a plane combine their partials in a tree (lanes/2, lanes/4, ... 1). Lane 0 writes the result. The plane
// index of a workgroup is folded into a 2-D grid (grid1d). x may be a channel view; y may be a channel view of
// a [N, F] buffer (element (n, c) at n * y_tot + y_off + c).
//
// Defines: WG (threads per workgroup, a power of two), MODE (0 average, 1 max), X_F16 (x stored as packed f16
// pairs: half storage, src/graph/storage.ts).
#include "common.wgsl"

struct Params {
  planes: u32,            // N * C planes to reduce
  channels: u32,          // C
  inner: u32,             // H * W elements per plane
  lanes: u32,             // threads per plane, a power of two <= WG
  x_off: u32, x_tot: u32, // input's channel view
  y_off: u32, y_tot: u32, // output's channel view (rank 2)
};

@group(0) @binding(0) var<uniform> P: Params;
#include "load_x.wgsl"
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WG>;

fn combine(a: f32, b: f32) -> f32 {
#if MODE == 1
  return max(a, b);
#else
  return a + b;
#endif
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let per_wg = WG / P.lanes;
  let plane = (wid.x + wid.y * nwg.x) * per_wg + lid / P.lanes;
  let lane = lid % P.lanes;
#if MODE == 1
  var acc = -0x1.fffffep+127f; // lowest finite f32
#else
  var acc = 0.0;
#endif
  if (plane < P.planes) {
    let c = plane % P.channels;
    let n = plane / P.channels;
    let base = tensor_index(n, c, 0u, P.x_off, P.x_tot, P.inner);
    for (var s = lane; s < P.inner; s += P.lanes) {
      acc = combine(acc, load_x(base + s));
    }
  }
  partial[lid] = acc;
  for (var stride = P.lanes / 2u; stride > 0u; stride = stride / 2u) {
    workgroupBarrier();
    if (lane < stride) {
      partial[lid] = combine(partial[lid], partial[lid + stride]);
    }
  }
  if (lane == 0u && plane < P.planes) {
    let c = plane % P.channels;
    let n = plane / P.channels;
#if MODE == 1
    let v = partial[lid];
#else
    let v = partial[lid] / f32(P.inner);
#endif
    y[n * P.y_tot + P.y_off + c] = v;
  }
}
