// The output y at binding BIND_Y: f32, or with Y_F16 (half storage, src/graph/storage.ts) packed f16 pairs that
// the kernel writes with pack_half2 (common.wgsl). #included by conv2d, conv2d_mma and depthwise.
#if Y_F16
@group(0) @binding(BIND_Y) var<storage, read_write> y: array<u32>;
#else
@group(0) @binding(BIND_Y) var<storage, read_write> y: array<f32>;
#endif
