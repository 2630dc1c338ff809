// Shared helpers, #included by kernel files.
// Tensors are NCHW f32 in flat storage buffers. A tensor may be a channel window of a larger buffer
// (cOff, cTot): element (n, c, s) of a tensor with `inner` = H*W elements per channel lives at
// (n * cTot + cOff + c) * inner + s.

fn tensor_index(n: u32, c: u32, s: u32, c_off: u32, c_tot: u32, inner: u32) -> u32 {
  return (n * c_tot + c_off + c) * inner + s;
}

// Half storage (src/graph/storage.ts): element i of a packed-f16 tensor is half (i & 1) of word i >> 1 (low
// half first); `w` is that word.
fn half_at(w: u32, i: u32) -> f32 {
  let v = unpack2x16float(w);
  return select(v.x, v.y, (i & 1u) == 1u);
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
