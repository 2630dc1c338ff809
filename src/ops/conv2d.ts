/**
 * 2-D convolution (NCHW, groups = 1; depthwise is its own op) as an implicit GEMM with a fused epilogue:
 *
 *   y = act(conv(x * inScale, W) + bias) + residual
 *
 * i.e. the epilogue order is acc + bias -> activation -> + residual. That is the torchvision MBConv order: the
 * projection conv (+ folded BN) has no activation and the skip is added after it; with an activation the
 * residual is still added last. inScale [N, Cin] multiplies x per image and input channel as it is read (the
 * squeeze-excite scale fused into the projection 1x1 conv).
 *
 * Inputs, in order: x [N, Cin, H, W]; W [Cout, Cin, kh, kw] (PyTorch layout); then bias [Cout] when hasBias,
 * residual [N, Cout, Ho, Wo] when hasResidual, inScale [N, Cin] (or [N, Cin, 1, 1]) when hasInScale. x,
 * residual and the output may be channel views; W, bias and inScale must be dense.
 * Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1, likewise Wo (PyTorch).
 *
 * Kernels: kernels/conv2d.wgsl (tiled, register-blocked; the tile shape is picked by {@link chooseConvTile}) and,
 * under precision 'f16', kernels/conv2d_mma.wgsl on the matrix units. The parts live in src/ops/conv2d/:
 * shape.ts (attributes, input order, shape rule), tiles.ts (tile, split-K and matrix-unit choices, pure),
 * plan.ts (what both dispatch builders share), f32.ts and mma.ts (the dispatch builders), reference.ts (the CPU
 * reference), cases.ts (the test cases).
 */
import { check, defineOp, denseView, halfOut } from './op.js';
import { cases } from './conv2d/cases.js';
import { f32Dispatches } from './conv2d/f32.js';
import { mmaDispatches, mmaPrepared, mmaScratch } from './conv2d/mma.js';
import { convPlan } from './conv2d/plan.js';
import { sgDispatches, sgPrepared, sgLanes } from './conv2d/sg.js';
import { conv2dReference } from './conv2d/reference.js';
import { conv2dInputIndex, geometry, type Conv2dAttrs } from './conv2d/shape.js';
import { f32Plan } from './conv2d/tiles.js';

export { conv2dInputIndex, type Conv2dAttrs } from './conv2d/shape.js';
export { SG_LANES, sgDispatches, sgLanes, sgPrepared, takesSgPath } from './conv2d/sg.js';
export { geometry as conv2dGeometry } from './conv2d/shape.js';
export {
  chooseConvTile,
  chooseMmaTile,
  chooseSplitK,
  CONV_TILES,
  MMA_TILES,
  SPLITK_MAX_SPLITS,
  SPLITK_MAX_TILES,
  SPLITK_MIN_CHUNK,
  SPLITK_TARGET_WORKGROUPS,
  takesMmaPath,
  type ConvTile,
  type MmaTile,
} from './conv2d/tiles.js';

/** The conv2d op. */
export const conv2d = defineOp<Conv2dAttrs>({
  name: 'conv2d',
  kind: 'conv',
  infer(inputs, attrs) {
    const g = geometry(inputs, attrs);
    return [[g.N, g.Cout, g.Ho, g.Wo]];
  },
  halfIO({ attrs, inputs, tiles }) {
    // x and the residual are read per element (any layout); the output is written in pairs of columns of one
    // image (HoWo even), not by the split-K passes.
    const g = geometry(inputs, attrs);
    const idx = conv2dInputIndex(attrs);
    const outOk = (g.Ho * g.Wo) % 2 === 0 && f32Plan(g.Cout, g.N * g.Ho * g.Wo, g.Cin * g.kh * g.kw, tiles).splits === 1;
    return { inputs: inputs.map((_, i) => i === 0 || i === idx.residual), outputs: [outOk] };
  },
  scratch(ctx) {
    const p = convPlan(ctx);
    if (p.mma) return mmaScratch(ctx, p);
    if (p.sg) return [];
    return p.splits > 1 ? [p.splits * p.M * p.cols] : [];
  },
  prepare(ctx) {
    const p = convPlan(ctx);
    if (p.mma) return mmaPrepared(ctx, p);
    return p.sg ? sgPrepared(p.g, sgLanes(ctx.caps), halfOut(ctx, 0)) : [];
  },
  dispatch(ctx) {
    const p = convPlan(ctx);
    for (const [i, what] of [
      [1, 'W'],
      [p.idx.bias, 'bias'],
      [p.idx.inScale, 'inScale'],
    ] as const) {
      if (i < 0) continue;
      const v = ctx.inViews[i]!;
      check(v.cOff === 0 && v.cTot === denseView(ctx.inputs[i]!).cTot, 'conv2d', `${what} cannot be a channel view`);
    }
    if (p.mma) return mmaDispatches(ctx, p, p.mma);
    return p.sg ? sgDispatches(ctx, sgLanes(ctx.caps)) : f32Dispatches(ctx, p);
  },
  reference: conv2dReference,
  cases,
});
