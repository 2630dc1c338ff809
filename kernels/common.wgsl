// Shared helpers, #included by kernel files.
// Tensors are NCHW f32 in flat storage buffers. A tensor may be a channel window of a larger buffer
// (cOff, cTot): element (n, c, s) of a tensor with `inner` = H*W elements per channel lives at
// (n * cTot + cOff + c) * inner + s.

fn tensor_index(n: u32, c: u32, s: u32, c_off: u32, c_tot: u32, inner: u32) -> u32 {
  return (n * c_tot + c_off + c) * inner + s;
}

// The coordinates of an element of an NCHW tensor: image n, channel c, position s among the channel's `inner`.
struct Nchw { n: u32, c: u32, s: u32 }

// Coordinates of element i, in dense order, of a tensor of `channels` channels of `inner` elements each. The
// per-element kernels start with: let i = linear_id(gid, nwg, WG); if (i >= P.total) { return; }
// let e = nchw_of(i, P.channels, P.inner);
fn nchw_of(i: u32, channels: u32, inner: u32) -> Nchw {
  let nc = i / inner;
  return Nchw(nc / channels, nc % channels, i % inner);
}

// Tile policy 'software' (DIRECT): invocation `id` walks elements s0 .. s1 - 1 of plane (n, c) of a tensor of
// `total` elements, `channels` channels and `inner` elements per channel, DIRECT_CHUNK at a time (s1 = s0 past the
// last plane); src/ops/elementwise-common.ts elementwiseLaunch makes the grid.
const DIRECT_CHUNK: u32 = 64u;
struct Chunk { n: u32, c: u32, s0: u32, s1: u32 }
fn chunk_of(id: u32, total: u32, channels: u32, inner: u32) -> Chunk {
  let per = (inner + DIRECT_CHUNK - 1u) / DIRECT_CHUNK;
  let plane = id / per;
  if (plane >= total / inner) {
    return Chunk(0u, 0u, 0u, 0u);
  }
  let s0 = (id - plane * per) * DIRECT_CHUNK;
  return Chunk(plane / channels, plane % channels, s0, min(s0 + DIRECT_CHUNK, inner));
}

// Where element e lives in a buffer of which the tensor is the channel view (c_off, c_tot).
fn view_index(e: Nchw, c_off: u32, c_tot: u32, inner: u32) -> u32 {
  return tensor_index(e.n, e.c, e.s, c_off, c_tot, inner);
}

// Half storage (src/graph/storage.ts): element i of a packed-f16 tensor is half (i & 1) of word i >> 1 (low
// half first); `w` is that word.
fn half_at(w: u32, i: u32) -> f32 {
  let v = unpack2x16float(w);
  return select(v.x, v.y, (i & 1u) == 1u);
}

// x rounded to the nearest f16 value, ties to even (src/ops/half.ts roundToF16 is the CPU side), as an f32. WGSL
// lets an f32 -> f16 conversion (pack2x16float, f16()) pick either neighbour (this Dawn folds a constant
// pack2x16float by truncating: 1 + 0.75 ulp gave 1; at run time SwiftShader rounds to nearest); converting this
// value instead is exact on every adapter, so the CPU emulation holds. Subnormal f16 (below 2^-14) are multiples
// of 2^-24; above that, rounding the f32 pattern to 10 mantissa bits carries into the exponent.
fn round_f16(x: f32) -> f32 {
  if (abs(x) < 6.103515625e-5) {
    return round(x * 16777216.0) * 5.9604644775390625e-8;
  }
  let b = bitcast<u32>(x);
  return bitcast<f32>((b + 0x0fffu + ((b >> 13u) & 1u)) & 0xffffe000u);
}

// Two values as one packed-f16 word (half storage), each rounded to nearest even.
fn pack_half2(a: f32, b: f32) -> u32 {
  return pack2x16float(vec2<f32>(round_f16(a), round_f16(b)));
}

// Linear thread id for 1-D work folded into a 2-D grid (grid1d in src/ops/op.ts).
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>, wg: u32) -> u32 {
  return gid.x + gid.y * nwg.x * wg;
}

fn sigmoid_f(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

fn silu_f(x: f32) -> f32 {
  return x / (1.0 + exp(-x));
}

// tanh that stays finite for large |x| (exp overflow gives inf/inf on some drivers).
fn tanh_f(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  let t = (1.0 - e) / (1.0 + e);
  return select(-t, t, x >= 0.0);
}

// Epilogue activation, chosen at compile time by the ACT define (ACT_* codes in src/ops/activation.ts):
// 0 none, 1 ReLU, 2 SiLU, 3 sigmoid, 4 tanh.
fn apply_act(x: f32) -> f32 {
#if ACT == 1
  return max(x, 0.0);
#elif ACT == 2
  return silu_f(x);
#elif ACT == 3
  return sigmoid_f(x);
#elif ACT == 4
  return tanh_f(x);
#else
  return x;
#endif
}
