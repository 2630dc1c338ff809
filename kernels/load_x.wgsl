// The input x at binding 1, read through load_x(i) as f32 whether it is stored as f32 or, with X_F16 (half
// storage, src/graph/storage.ts), as packed f16 pairs (element i in half i & 1 of word i >> 1). Needs half_at
// (common.wgsl). #included by conv2d, conv2d_mma (its conversion entry's source), depthwise and pool.
#if X_F16
@group(0) @binding(1) var<storage, read_write> x: array<u32>;
fn load_x(i: u32) -> f32 { return half_at(x[i >> 1u], i); }
#else
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
fn load_x(i: u32) -> f32 { return x[i]; }
#endif
