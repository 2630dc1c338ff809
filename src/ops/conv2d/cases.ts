/** conv2d's test cases (test/ops.test.ts runs each against the CPU reference). */
import type { Activation } from '../activation.js';
import type { TestCase } from '../op.js';
import type { Conv2dAttrs } from './shape.js';

const ALL_OFF = { hasBias: false, hasResidual: false, hasInScale: false } as const;

/** Shorthand for test cases. */
function conv(k: number, s: number, p: number, act: Activation, flags: Partial<Pick<Conv2dAttrs, 'hasBias' | 'hasResidual' | 'hasInScale' | 'dilation'>> = {}): Conv2dAttrs {
  return { kernel: [k, k], stride: [s, s], pad: [p, p], act, ...ALL_OFF, ...flags };
}

// Cases share define sets where they can (each new set is a pipeline compile, ~1-3 s on SwiftShader).
export const cases: TestCase<Conv2dAttrs>[] = [
  // wide tile (Cout <= 16)
  { name: '1x1 s1 bias (pointwise path, wide tile)', inputs: [[2, 8, 5, 6], [12, 8, 1, 1], [12]], attrs: conv(1, 1, 0, 'none', { hasBias: true }) },
  { name: '1x1 s1 Cin 5 (K < TK) bias', inputs: [[3, 5, 7, 9], [7, 5, 1, 1], [7]], attrs: conv(1, 1, 0, 'none', { hasBias: true }) },
  { name: '3x3 s1 p1 bias relu', inputs: [[1, 6, 8, 8], [10, 6, 3, 3], [10]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
  { name: 'stem 3x3 s2 p1 Cin 3 bias silu', inputs: [[2, 3, 15, 17], [16, 3, 3, 3], [16]], attrs: conv(3, 2, 1, 'silu', { hasBias: true }) },
  { name: '5x5 s1 p2 bias sigmoid', inputs: [[1, 4, 9, 7], [6, 4, 5, 5], [6]], attrs: conv(5, 1, 2, 'sigmoid', { hasBias: true }) },
  { name: '5x5 s2 p2 bias tanh', inputs: [[2, 5, 11, 10], [7, 5, 5, 5], [7]], attrs: conv(5, 2, 2, 'tanh', { hasBias: true }) },
  { name: '3x3 s1 p1 7x9 Cin 5 Cout 13 batch 3 bias silu', inputs: [[3, 5, 7, 9], [13, 5, 3, 3], [13]], attrs: conv(3, 1, 1, 'silu', { hasBias: true }) },
  { name: '3x3 dilation 2 p2', inputs: [[1, 4, 9, 9], [5, 4, 3, 3]], attrs: conv(3, 1, 2, 'none', { dilation: [2, 2] }) },
  { name: '1x1 s2 (general path) bias relu', inputs: [[2, 6, 7, 7], [9, 6, 1, 1], [9]], attrs: conv(1, 2, 0, 'relu', { hasBias: true }) },
  { name: '3x1 kernel s(2,1) p(1,0)', inputs: [[2, 3, 8, 5], [4, 3, 3, 1]], attrs: { kernel: [3, 1], stride: [2, 1], pad: [1, 0], act: 'none', ...ALL_OFF } },
  { name: 'Cout 1 3x3 p1 bias sigmoid', inputs: [[2, 9, 6, 7], [1, 9, 3, 3], [1]], attrs: conv(3, 1, 1, 'sigmoid', { hasBias: true }) },
  {
    name: 'MBConv projection: 1x1 + bias + residual + inScale',
    inputs: [[2, 12, 5, 5], [7, 12, 1, 1], [7], [2, 7, 5, 5], [2, 12]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
  },
  { name: 'residual added after relu', inputs: [[2, 6, 5, 4], [5, 6, 3, 3], [5], [2, 5, 5, 4]], attrs: conv(3, 1, 1, 'relu', { hasBias: true, hasResidual: true }) },
  { name: '3x3 s2 p1 inScale [N,Cin,1,1] (padded gather)', inputs: [[3, 5, 9, 8], [6, 5, 3, 3], [3, 5, 1, 1]], attrs: conv(3, 2, 1, 'tanh', { hasInScale: true }) },
  {
    name: 'output into a channel view (cOff 3 of 20)',
    inputs: [[2, 5, 6, 7], [7, 5, 3, 3], [7]],
    attrs: conv(3, 1, 1, 'silu', { hasBias: true }),
    outViews: [{ cOff: 3, cTot: 20 }],
  },
  {
    name: 'x and residual from channel views, into a view',
    inputs: [[2, 6, 5, 5], [9, 6, 3, 3], [9], [2, 9, 5, 5]],
    attrs: conv(3, 1, 1, 'relu', { hasBias: true, hasResidual: true }),
    inViews: [{ cOff: 2, cTot: 11 }, undefined, undefined, { cOff: 5, cTot: 14 }],
    outViews: [{ cOff: 1, cTot: 12 }],
  },
  {
    name: 'pointwise from a channel view + bias + residual + inScale',
    inputs: [[2, 7, 4, 6], [10, 7, 1, 1], [10], [2, 10, 4, 6], [2, 7]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 4, cTot: 13 }],
  },
  // tall tile (Cout > 16, N*Ho*Wo <= 64)
  { name: 'tall tile: Cout 40, 27 columns, K 180, bias relu', inputs: [[3, 20, 3, 3], [40, 20, 3, 3], [40]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
  {
    name: 'tall tile: Cout 70, 5x5 s2, residual, into a view',
    inputs: [[1, 9, 9, 10], [70, 9, 5, 5], [70], [1, 70, 5, 5]],
    attrs: conv(5, 2, 2, 'tanh', { hasBias: true, hasResidual: true }),
    outViews: [{ cOff: 2, cTot: 75 }],
  },
  // split K (few tiles, long K): tall tile, 4 slices of 1170; big tile, pointwise with every epilogue input
  { name: 'split K: Cout 40, Cin 130, 3x3 p1 on 1x5x5 (K 1170 in 4 slices), bias silu', inputs: [[1, 130, 5, 5], [40, 130, 3, 3], [40]], attrs: conv(3, 1, 1, 'silu', { hasBias: true }) },
  {
    name: 'split K: pointwise Cout 70, Cin 1100 on 1x9x11 (K in 4 slices), bias, residual, inScale, views',
    inputs: [[1, 1100, 9, 11], [70, 1100, 1, 1], [70], [1, 70, 9, 11], [1, 1100]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 5, cTot: 1110 }, undefined, undefined, { cOff: 2, cTot: 80 }],
    outViews: [{ cOff: 1, cTot: 75 }],
  },
  // mid tile (16 < Cout <= 32, N*Ho*Wo > 64)
  { name: 'mid tile pointwise: Cout 30, 2x12x9x11, bias silu + residual', inputs: [[2, 12, 9, 11], [30, 12, 1, 1], [30], [2, 30, 9, 11]], attrs: conv(1, 1, 0, 'silu', { hasBias: true, hasResidual: true }) },
  { name: 'mid tile: Cout 17, 3x3 s1 p1 from 3x10x13x15 into a view, bias relu', inputs: [[3, 10, 13, 15], [17, 10, 3, 3], [17]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }), outViews: [{ cOff: 4, cTot: 25 }] },
  // big tile (Cout > 16, N*Ho*Wo > 64)
  { name: 'big tile: Cout 70, 3x10x10, Cin 40, 3x3 p1 bias relu', inputs: [[3, 40, 10, 10], [70, 40, 3, 3], [70]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
  {
    name: 'big tile pointwise: inScale + residual, views',
    inputs: [[2, 24, 9, 9], [36, 24, 1, 1], [36], [2, 36, 9, 9], [2, 24]],
    attrs: conv(1, 1, 0, 'none', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 3, cTot: 30 }, undefined, undefined, { cOff: 0, cTot: 40 }],
    outViews: [{ cOff: 36, cTot: 80 }],
  },
  { name: 'big tile: 3x3 s2 p1 Cout 33 bias relu', inputs: [[2, 7, 21, 19], [33, 7, 3, 3], [33]], attrs: conv(3, 2, 1, 'relu', { hasBias: true }) },
  // Pointwise shapes the f16 matrix-unit path takes under precision 'f16' (pixels per image a multiple of 16; odd
  // K and Cout exercise the zero padding to 16); under f32 they are more big/mid tile cases.
  { name: 'mma m128: pointwise Cout 150, Cin 37 on 2x8x12, bias silu', inputs: [[2, 37, 8, 12], [150, 37, 1, 1], [150]], attrs: conv(1, 1, 0, 'silu', { hasBias: true }) },
  {
    name: 'mma m64: pointwise Cout 40, Cin 70 on 3x4x20, inScale + residual, views',
    inputs: [[3, 70, 4, 20], [40, 70, 1, 1], [40], [3, 40, 4, 20], [3, 70]],
    attrs: conv(1, 1, 0, 'tanh', { hasBias: true, hasResidual: true, hasInScale: true }),
    inViews: [{ cOff: 5, cTot: 80 }, undefined, undefined, { cOff: 2, cTot: 45 }],
    outViews: [{ cOff: 1, cTot: 41 }],
  },
  { name: 'mma m32: pointwise Cout 24, Cin 16 on 2x16x16, no bias, relu', inputs: [[2, 16, 16, 16], [24, 16, 1, 1]], attrs: conv(1, 1, 0, 'relu') },
  // 3x3 with column stride 1 over output rows of 16 or more (the subgroup kernel's row segments, src/ops/conv2d/sg.ts:
  // partial last segments, halo columns, channels not a multiple of 4, row stride and dilation, views, inScale).
  { name: 'rows: 3x3 s1 p1 2x7x19x21 Cout 12, bias silu', inputs: [[2, 7, 19, 21], [12, 7, 3, 3], [12]], attrs: conv(3, 1, 1, 'silu', { hasBias: true }) },
  {
    name: 'rows: 3x3 s1 p1 1x13x5x35 Cout 40, bias + residual, views',
    inputs: [[1, 13, 5, 35], [40, 13, 3, 3], [40], [1, 40, 5, 35]],
    attrs: conv(3, 1, 1, 'relu', { hasBias: true, hasResidual: true }),
    inViews: [{ cOff: 2, cTot: 17 }, undefined, undefined, { cOff: 1, cTot: 43 }],
    outViews: [{ cOff: 3, cTot: 44 }],
  },
  { name: 'rows: 3x3 stride (2, 1) pad (1, 1) 1x6x9x20 Cout 20, bias tanh', inputs: [[1, 6, 9, 20], [20, 6, 3, 3], [20]], attrs: { ...conv(3, 1, 1, 'tanh', { hasBias: true }), stride: [2, 1] } },
  { name: 'rows: 3x3 dilation (2, 1) pad (2, 1) 2x5x8x18 Cout 9, inScale', inputs: [[2, 5, 8, 18], [9, 5, 3, 3], [2, 5]], attrs: { ...conv(3, 1, 1, 'sigmoid', { hasInScale: true, dilation: [2, 1] }), pad: [2, 1] } },
  { name: 'rows: 3x3 s1 p0 3x4x6x18 Cout 33 (valid), no bias', inputs: [[3, 4, 6, 18], [33, 4, 3, 3]], attrs: conv(3, 1, 0, 'none') },
  { name: 'rows: 3x3 s1 p1 2x10x6x24 Cout 8 (column groups), bias relu', inputs: [[2, 10, 6, 24], [8, 10, 3, 3], [8]], attrs: conv(3, 1, 1, 'relu', { hasBias: true }) },
];
