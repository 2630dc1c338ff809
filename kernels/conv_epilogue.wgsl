// Shared by kernels/conv2d.wgsl and kernels/conv2d_mma.wgsl (#include after their bindings): the convolution
// epilogue, bias -> act -> + residual, written through the output's channel view, for output row m and column
// c = n * HoWo + pixel. Declares the bindings bias (HAS_BIAS, at BIND_BIAS) and res (HAS_RES, at BIND_RES;
// packed f16 pairs when RES_F16); needs Params fields HoWo, y_off, y_tot, r_off, r_tot, the binding y (packed
// f16 when Y_F16), and apply_act and half_at (common.wgsl). With Y_F16 the caller passes columns in pairs (c
// even, HoWo even: one f16 word).
#if HAS_BIAS
@group(0) @binding(BIND_BIAS) var<storage, read_write> bias: array<f32>;
#endif
#if HAS_RES && RES_F16
@group(0) @binding(BIND_RES) var<storage, read_write> res: array<u32>;
#elif HAS_RES
@group(0) @binding(BIND_RES) var<storage, read_write> res: array<f32>;
#endif
#if HAS_RES
fn load_res(i: u32) -> f32 {
#if RES_F16
  return half_at(res[i >> 1u], i);
#else
  return res[i];
#endif
}
#endif

// Index of output (m, c) in y (through the view).
fn y_index(m: u32, c: u32) -> u32 {
  let n = c / P.HoWo;
  return (n * P.y_tot + P.y_off + m) * P.HoWo + (c - n * P.HoWo);
}

fn epilogue_value(m: u32, c: u32, acc: f32) -> f32 {
  var v = acc;
#if HAS_BIAS
  v += bias[m];
#endif
  v = apply_act(v);
#if HAS_RES
  let n = c / P.HoWo;
  v += load_res((n * P.r_tot + P.r_off + m) * P.HoWo + (c - n * P.HoWo));
#endif
  return v;
}

#if Y_F16
// Outputs (m, c) and (m, c + 1), c even, as one packed f16 word.
fn epilogue2(m: u32, c: u32, acc0: f32, acc1: f32) {
  y[y_index(m, c) >> 1u] = pack_half2(epilogue_value(m, c, acc0), epilogue_value(m, c + 1u, acc1));
}
#else
fn epilogue(m: u32, c: u32, acc: f32) {
  y[y_index(m, c)] = epilogue_value(m, c, acc);
}
#endif
