// Shared by kernels/conv2d.wgsl and kernels/conv2d_mma.wgsl (#include after their bindings): the convolution
// epilogue, bias -> act -> + residual, written through the output's channel view, for output row m and column
// c = n * HoWo + pixel. Needs Params fields HoWo, y_off, y_tot, r_off, r_tot, the bindings bias (HAS_BIAS),
// res (HAS_RES) and y, and apply_act (common.wgsl).
fn epilogue(m: u32, c: u32, acc: f32) {
  let n = c / P.HoWo;
  let s = c - n * P.HoWo;
  var v = acc;
#if HAS_BIAS
  v += bias[m];
#endif
  v = apply_act(v);
#if HAS_RES
  v += res[(n * P.r_tot + P.r_off + m) * P.HoWo + s];
#endif
  y[(n * P.y_tot + P.y_off + m) * P.HoWo + s] = v;
}
