// 2-D convolution (NCHW, groups = 1) for CPU-run adapters with subgroups (lavapipe, SwiftShader): the implicit GEMM
//   Y[m, col] = act(sum_k W'[m, k] * B[k, col] + bias[m]) + residual[m, col]
// of kernels/conv2d.wgsl, shaped for how llvmpipe runs a compute shader. There a workgroup of L invocations (L = the
// subgroup size, the SIMD width in f32 lanes) is one SIMD group, and every load or store whose address differs per
// invocation is a loop over the lanes, each lane's element behind its own bounds-check branch: a few instructions
// per element per lane, against one instruction for a multiply-add of all L lanes. So every element is loaded once,
// by one lane, and handed to the others in registers with subgroupBroadcast (one shuffle):
// - lane l owns output row m = m0 + (l % MG) (MG = L / CG rows per workgroup) and RN = L / CG consecutive output
//   columns of the tile's NT = L columns (column group cg = l / MG; CG = 2 halves the rows for Cout <= L / 2);
// - K is walked in blocks of 4: each lane loads its row's 4 weights as one vec4 (the weights are prepared once at
//   compile as W' [M, Kp], K in tap-major order (ky, kx, ci), ci padded to a multiple of 4 with zeros);
// - the block's 4 x NT input values (k rows x tile columns) are loaded by the L lanes together, each element once:
//   VEC_X (pointwise, HW % 4 == 0, f32 input): lane l loads k row l % 4, columns 4 (l / 4) .. + 3 as one vec4;
//   otherwise lane l gathers column l (the im2col position of its own column) for the block's 4 k rows;
// - then 4 x RN multiply-adds per lane, each taking its input value from the lane that loaded it
//   (subgroupBroadcast with a constant lane, kernels/conv2d_sg_step.wgsl, included once per k row).
// No workgroup memory, no barrier. The epilogue (bias -> act -> + residual) writes the lane's RN columns, as vec4s
// where HoWo % 4 == 0 (VEC_Y), else one by one (and as packed f16 pairs with Y_F16).
// K order: tap t = ky * kw + kx outer, channel ci inner: within a block the tap is the same for every lane, so the
// gather's spatial offset is computed once per tap, and k never needs a division.
//
// Defines: L (lanes: the subgroup size; workgroup size), CG (1 or 2 column groups), VEC_X, VEC_Y, POINTWISE,
// ACT, HAS_BIAS, HAS_RES, HAS_SCALE, X_F16, RES_F16, Y_F16, BIND_BIAS, BIND_RES, BIND_SCALE, BIND_Y.
// Grid: x (+ z folding) = column workgroups (each walks tiles_per_wg tiles of NT columns), y = row tiles of MG.
enable subgroups;
#include "common.wgsl"

struct Params {
  M: u32,        // Cout (rows)
  NC: u32,       // N * Ho * Wo (columns)
  Kp: u32,       // taps * CinP (the prepared weights' row length)
  Cin: u32,      // input channels
  CinP: u32,     // Cin rounded up to 4
  H: u32,
  W: u32,
  HW: u32,
  Wo: u32,
  HoWo: u32,
  kw: u32,
  taps: u32,     // kh * kw
  sh: u32, sw: u32,
  ph: u32, pw: u32,
  dh: u32, dw: u32,
  x_off: u32, x_tot: u32,
  y_off: u32, y_tot: u32,
  r_off: u32, r_tot: u32,
  col_tiles: u32,    // ceil(NC / NT)
  tiles_per_wg: u32, // column tiles each workgroup walks
  Ho: u32,           // output height (SEG: tiles are (image, output row, segment))
};

@group(0) @binding(0) var<uniform> P: Params;
#if VEC_X
// x read as vec4s (f32 input, HW % 4 == 0).
@group(0) @binding(1) var<storage, read_write> x4: array<vec4<f32>>;
#else
#include "load_x.wgsl"
#endif
@group(0) @binding(2) var<storage, read_write> wp: array<vec4<f32>>; // W' [M, Kp / 4]
#if HAS_SCALE
@group(0) @binding(BIND_SCALE) var<storage, read_write> in_scale: array<f32>;
#endif
#if VEC_Y
@group(0) @binding(BIND_Y) var<storage, read_write> y: array<vec4<f32>>;
#else
#include "bind_y.wgsl"
#endif
#if HAS_BIAS
@group(0) @binding(BIND_BIAS) var<storage, read_write> bias: array<f32>;
#endif
#if HAS_RES && RES_F16
@group(0) @binding(BIND_RES) var<storage, read_write> res: array<u32>;
fn load_res(i: u32) -> f32 { return half_at(res[i >> 1u], i); }
#elif HAS_RES
@group(0) @binding(BIND_RES) var<storage, read_write> res: array<f32>;
fn load_res(i: u32) -> f32 { return res[i]; }
#endif

const MG: u32 = RM * L / CG; // rows per workgroup
const RN: u32 = L / CG;   // columns per lane
const NT: u32 = L;        // columns per tile
const VX: u32 = VEC_X;    // 1: the VEC_X layout of the loaded block (see the step file)
#if SEG
const HALO: u32 = KW - 1u; // input columns past a segment that its last outputs need
#endif
const NVX: u32 = 1u - VEC_X;

@compute @workgroup_size(L)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) l: u32) {
  // A workgroup is one subgroup: the lane index l is the role (row, loaded columns) and what subgroupBroadcast
  // names. (Where the adapter's subgroups are wider than L, as when the 4-lane kernel is tested on 16-lane
  // lavapipe, the L invocations are lanes 0 .. L - 1 of theirs.)
  let m = wid.y * MG + l % (L / CG);
  let m_ok = m < P.M;
  let wrow = min(m, P.M - 1u) * (P.Kp / 4u);
#if RM == 2
  // the lane's second row, L rows below (RM = 2: CG is 1)
  let m2 = m + L;
  let m2_ok = m2 < P.M;
  let wrow2 = min(m2, P.M - 1u) * (P.Kp / 4u);
#endif
  let cg = l / (L / CG);
  let hi = cg == 1u;
  let wg = wid.x + wid.z * nwg.x;
  for (var t = 0u; t < P.tiles_per_wg; t++) {
    let tile = wg * P.tiles_per_wg + t;
    if (tile >= P.col_tiles) {
      break;
    }
    let n0 = tile * NT;
    var acc = array<f32, RN>(); // explicitly zeroed for every tile
#if RM == 2
    var acc2 = array<f32, RN>();
#endif
#if SEG
    // SEG: the tile is NT = L consecutive outputs of one output row (image simg, row soy, columns sox0 ..); for each
    // kernel row ky and 4 channels the lanes load the input row segment under them, each element once: lane l the
    // column six0 + l of the 4 channels (xv), lanes below 4 HALO the HALO columns past the segment (xh).
    let segs = (P.Wo + NT - 1u) / NT;
    let srow = tile / segs;
    let sox0 = (tile - srow * segs) * NT;
    let simg = srow / P.Ho;
    let soy = srow - simg * P.Ho;
    let six0 = i32(sox0) - i32(P.pw);
    let xbase = (simg * P.x_tot + P.x_off) * P.HW;
    let hc = l / HALO;                // the halo channel this lane loads (l < 4 HALO)
    let hix = six0 + i32(NT + l % HALO); // and its column
    let h_ok = l < 4u * HALO;
#if HAS_SCALE
    let sbase = simg * P.Cin;
#endif
#elif VEC_X
    // This lane loads k row l % 4 of each block for columns xc .. xc + 3 (one image: HW % 4 == 0).
    let xr = l % 4u;
    let xc = n0 + 4u * (l / 4u);
    let xcol_ok = xc < P.NC;
    let ximg = select(0u, xc / P.HW, xcol_ok);
    let xbase = (ximg * P.x_tot + P.x_off) * P.HW + (xc - ximg * P.HW);
#if HAS_SCALE
    let sbase = ximg * P.Cin;
#endif
#else
    // This lane gathers column n0 + l (its im2col position) for the block's 4 k rows.
    let xc = n0 + l;
    let xcol_ok = xc < P.NC;
    let ximg = select(0u, xc / P.HoWo, xcol_ok);
    let xpix = xc - ximg * P.HoWo;
    let xbase = (ximg * P.x_tot + P.x_off) * P.HW;
#if HAS_SCALE
    let sbase = ximg * P.Cin;
#endif
#if POINTWISE
    let sp = xpix;
    let sp_ok = xcol_ok;
#else
    let oy = xpix / P.Wo;
    let ox = xpix - oy * P.Wo;
    let iy0 = i32(oy * P.sh) - i32(P.ph);
    let ix0 = i32(ox * P.sw) - i32(P.pw);
#endif
#endif
    var kk = 0u; // offset of the block in W' rows
#if SEG
    let kh = P.taps / KW;
    for (var ky = 0u; ky < kh; ky++) {
      let iy = i32(soy * P.sh + ky * P.dh) - i32(P.ph);
      let row_ok = u32(iy) < P.H;
      let rbase = xbase + u32(iy) * P.W;
      let ix = six0 + i32(l);
      let sp_ok = row_ok && u32(ix) < P.W;
      let hsp_ok = row_ok && h_ok && u32(hix) < P.W;
      for (var cb = 0u; cb < P.CinP; cb += 4u) {
        var xv = vec4<f32>(0.0);
        if (sp_ok) {
          let ok = vec4<u32>(cb) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(P.Cin);
          let xi = rbase + cb * P.HW + u32(ix);
          let xs = select(vec4<u32>(rbase + u32(ix)), vec4<u32>(xi) + vec4<u32>(0u, P.HW, 2u * P.HW, 3u * P.HW), ok);
          xv = select(vec4<f32>(0.0), vec4<f32>(load_x(xs.x), load_x(xs.y), load_x(xs.z), load_x(xs.w)), ok);
#if HAS_SCALE
          let si = select(vec4<u32>(sbase), vec4<u32>(sbase + cb) + vec4<u32>(0u, 1u, 2u, 3u), ok);
          xv *= vec4<f32>(in_scale[si.x], in_scale[si.y], in_scale[si.z], in_scale[si.w]);
#endif
        }
        var xh = 0.0;
        if (hsp_ok && cb + hc < P.Cin) {
#if HAS_SCALE
          xh = load_x(rbase + (cb + hc) * P.HW + u32(hix)) * in_scale[sbase + cb + hc];
#else
          xh = load_x(rbase + (cb + hc) * P.HW + u32(hix));
#endif
        }
        var xb = 0.0;
        var xlo = 0.0;
        var xhi = 0.0;
        // The KW weight vec4s of this (ky, channel block): W' row order (ky, channel block, kx, channel).
#define SGKX 0u
        let w_kx = wp[wrow + kk / 4u];
#if RM == 2
        let w_kx2 = wp[wrow2 + kk / 4u];
#endif
#define SGC 0u
#include "conv2d_sg_seg.wgsl"
#define SGC 1u
#include "conv2d_sg_seg.wgsl"
#define SGC 2u
#include "conv2d_sg_seg.wgsl"
#define SGC 3u
#include "conv2d_sg_seg.wgsl"
        {
#define SGKX 1u
        let w_kx = wp[wrow + kk / 4u + 1u];
#if RM == 2
        let w_kx2 = wp[wrow2 + kk / 4u + 1u];
#endif
#define SGC 0u
#include "conv2d_sg_seg.wgsl"
#define SGC 1u
#include "conv2d_sg_seg.wgsl"
#define SGC 2u
#include "conv2d_sg_seg.wgsl"
#define SGC 3u
#include "conv2d_sg_seg.wgsl"
        }
        {
#define SGKX 2u
        let w_kx = wp[wrow + kk / 4u + 2u];
#if RM == 2
        let w_kx2 = wp[wrow2 + kk / 4u + 2u];
#endif
#define SGC 0u
#include "conv2d_sg_seg.wgsl"
#define SGC 1u
#include "conv2d_sg_seg.wgsl"
#define SGC 2u
#include "conv2d_sg_seg.wgsl"
#define SGC 3u
#include "conv2d_sg_seg.wgsl"
        }
#undef SGKX
#undef SGC
        kk += 4u * KW;
      }
    }
#else
    for (var tap = 0u; tap < P.taps; tap++) {
#if !VEC_X && !POINTWISE
      let ky = tap / P.kw;
      let kx = tap - ky * P.kw;
      let iy = iy0 + i32(ky * P.dh);
      let ix = ix0 + i32(kx * P.dw);
      let sp_ok = xcol_ok && u32(iy) < P.H && u32(ix) < P.W;
      let sp = u32(iy) * P.W + u32(ix);
#endif
      for (var cb = 0u; cb < P.CinP; cb += 4u) {
        let w4 = wp[wrow + kk / 4u];
#if RM == 2
        let w4b = wp[wrow2 + kk / 4u];
#endif
        kk += 4u;
        var xb = 0.0;
#if VEC_X
        let ci = cb + xr;
        var xv = vec4<f32>(0.0);
        if (xcol_ok && ci < P.Cin) {
          xv = x4[(xbase + ci * P.HW) / 4u];
#if HAS_SCALE
          xv *= in_scale[sbase + ci];
#endif
        }
#else
        var xv = vec4<f32>(0.0);
        if (sp_ok) {
          let xi = xbase + cb * P.HW + sp;
          let ok = vec4<u32>(cb) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(P.Cin);
          // channels past Cin read channel 0 (in bounds) and are zeroed
          let xs = select(vec4<u32>(xbase + sp), vec4<u32>(xi) + vec4<u32>(0u, P.HW, 2u * P.HW, 3u * P.HW), ok);
          xv = select(vec4<f32>(0.0), vec4<f32>(load_x(xs.x), load_x(xs.y), load_x(xs.z), load_x(xs.w)), ok);
#if HAS_SCALE
          let si = select(vec4<u32>(sbase), vec4<u32>(sbase + cb) + vec4<u32>(0u, 1u, 2u, 3u), ok);
          xv *= vec4<f32>(in_scale[si.x], in_scale[si.y], in_scale[si.z], in_scale[si.w]);
#endif
        }
#endif
#define SGK 0u
#include "conv2d_sg_step.wgsl"
#define SGK 1u
#include "conv2d_sg_step.wgsl"
#define SGK 2u
#include "conv2d_sg_step.wgsl"
#define SGK 3u
#include "conv2d_sg_step.wgsl"
#undef SGK
      }
    }
#endif
    // The lane's columns: nvalid of them from (image img0, pixel pix0), consecutive within an image.
#if SEG
    let c_ox = sox0 + cg * RN;
    let img0 = simg;
    let pix0 = soy * P.Wo + c_ox;
    let nvalid = select(0u, min(RN, P.Wo - c_ox), c_ox < P.Wo);
#else
    let c0 = n0 + cg * RN;
    let img0 = c0 / P.HoWo;
    let pix0 = c0 - img0 * P.HoWo;
    let nvalid = select(0u, min(RN, P.NC - c0), c0 < P.NC);
#endif
    // Epilogue: the lane's row m, columns c0 .. c0 + RN - 1.
    if (m_ok) {
      var img = img0;
      var pix = pix0;
#if VEC_Y
      // HoWo % 4 == 0: four columns at a time, in one image, at a vec4-aligned index.
      for (var q = 0u; q < RN / 4u; q++) {
        if (4u * q < nvalid) {
          let yi = (img * P.y_tot + P.y_off + m) * P.HoWo + pix;
          var v = vec4<f32>(acc[4u * q], acc[4u * q + 1u], acc[4u * q + 2u], acc[4u * q + 3u]);
#if HAS_BIAS
          v += vec4<f32>(bias[m]);
#endif
          v = vec4<f32>(apply_act(v.x), apply_act(v.y), apply_act(v.z), apply_act(v.w));
#if HAS_RES
          let ri = (img * P.r_tot + P.r_off + m) * P.HoWo + pix;
          v += vec4<f32>(load_res(ri), load_res(ri + 1u), load_res(ri + 2u), load_res(ri + 3u));
#endif
          y[yi / 4u] = v;
        }
        pix += 4u;
        if (pix == P.HoWo) {
          pix = 0u;
          img += 1u;
        }
      }
#elif Y_F16
      // Pairs of columns (c0 even, HoWo even: a pair is one f16 word of one image).
      for (var j = 0u; j < RN; j += 2u) {
        if (j < nvalid) {
          let yi = (img * P.y_tot + P.y_off + m) * P.HoWo + pix;
          y[yi >> 1u] = pack_half2(sg_value(m, img, pix, acc[j]), sg_value(m, img, pix + 1u, acc[j + 1u]));
        }
        pix += 2u;
        if (pix == P.HoWo) {
          pix = 0u;
          img += 1u;
        }
      }
#else
      for (var j = 0u; j < RN; j++) {
        if (j < nvalid) {
          y[(img * P.y_tot + P.y_off + m) * P.HoWo + pix] = sg_value(m, img, pix, acc[j]);
        }
        pix += 1u;
        if (pix == P.HoWo) {
          pix = 0u;
          img += 1u;
        }
      }
#endif
    }
#if RM == 2
    // RM = 2: the same for the lane's second row.
    if (m2_ok) {
      var img = img0;
      var pix = pix0;
#if VEC_Y
      // HoWo % 4 == 0: four columns at a time, in one image, at a vec4-aligned index.
      for (var q = 0u; q < RN / 4u; q++) {
        if (4u * q < nvalid) {
          let yi = (img * P.y_tot + P.y_off + m2) * P.HoWo + pix;
          var v = vec4<f32>(acc2[4u * q], acc2[4u * q + 1u], acc2[4u * q + 2u], acc2[4u * q + 3u]);
#if HAS_BIAS
          v += vec4<f32>(bias[m2]);
#endif
          v = vec4<f32>(apply_act(v.x), apply_act(v.y), apply_act(v.z), apply_act(v.w));
#if HAS_RES
          let ri = (img * P.r_tot + P.r_off + m2) * P.HoWo + pix;
          v += vec4<f32>(load_res(ri), load_res(ri + 1u), load_res(ri + 2u), load_res(ri + 3u));
#endif
          y[yi / 4u] = v;
        }
        pix += 4u;
        if (pix == P.HoWo) {
          pix = 0u;
          img += 1u;
        }
      }
#elif Y_F16
      // Pairs of columns (c0 even, HoWo even: a pair is one f16 word of one image).
      for (var j = 0u; j < RN; j += 2u) {
        if (j < nvalid) {
          let yi = (img * P.y_tot + P.y_off + m2) * P.HoWo + pix;
          y[yi >> 1u] = pack_half2(sg_value(m2, img, pix, acc2[j]), sg_value(m2, img, pix + 1u, acc2[j + 1u]));
        }
        pix += 2u;
        if (pix == P.HoWo) {
          pix = 0u;
          img += 1u;
        }
      }
#else
      for (var j = 0u; j < RN; j++) {
        if (j < nvalid) {
          y[(img * P.y_tot + P.y_off + m2) * P.HoWo + pix] = sg_value(m2, img, pix, acc2[j]);
        }
        pix += 1u;
        if (pix == P.HoWo) {
          pix = 0u;
          img += 1u;
        }
      }
#endif
    }
#endif
  }
}

// bias -> act -> + residual for output (m, image, pixel) without dividing the column.
fn sg_value(m: u32, img: u32, pix: u32, a: f32) -> f32 {
  var v = a;
#if HAS_BIAS
  v += bias[m];
#endif
  v = apply_act(v);
#if HAS_RES
  v += load_res((img * P.r_tot + P.r_off + m) * P.HoWo + pix);
#endif
  return v;
}
