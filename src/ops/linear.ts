/**
 * Fully connected layer y = act(x @ W^T + b): x [N, K], W [O, K] (PyTorch Linear layout), b [O] when hasBias.
 * x may be a channel view (its columns cOff.. of a wider [N, F] buffer, e.g. one half of v = concat(a, g));
 * y may be a channel view. Kernel: kernels/linear.wgsl (tiled through workgroup memory; under tile policy 'software'
 * its DIRECT entry, one invocation per output).
 */
import { ACT_CODE, ACTIVATIONS, applyActivation, type Activation } from './activation.js';
import { check, checkRank, defineOp, grid1d, type TestCase } from './op.js';
import { simdLanes } from '../gpu/caps.js';

/** Attributes of {@link linear}. */
export interface LinearAttrs {
  /** A bias vector is the third input. */
  hasBias: boolean;
  /** Epilogue activation (default none). */
  act?: Activation;
}

/** Outputs and rows per workgroup tile; TN and TM in kernels/linear.wgsl. */
const TILE_O = 32;
const TILE_M = 8;

/** The linear op: inputs x, W, and b when hasBias. */
export const linear = defineOp<LinearAttrs>({
  name: 'linear',
  kind: 'conv',
  infer(inputs, attrs) {
    check(inputs.length === (attrs.hasBias ? 3 : 2), 'linear', attrs.hasBias ? 'needs x, W and b' : 'needs x and W (hasBias is false)', inputs);
    const x = checkRank('linear', 'x', inputs[0], 2, inputs);
    const w = checkRank('linear', 'W', inputs[1], 2, inputs);
    check(w[1] === x[1], 'linear', `W must be [Out, ${x[1]}] (PyTorch layout)`, inputs);
    if (attrs.hasBias) {
      const b = checkRank('linear', 'b', inputs[2], 1, inputs);
      check(b[0] === w[0], 'linear', `b must have shape [${w[0]}]`, inputs);
    }
    return [[x[0]!, w[0]!]];
  },
  dispatch(ctx) {
    const [M, K] = ctx.inputs[0]! as [number, number];
    const O = ctx.inputs[1]![0]!;
    const xv = ctx.inViews[0]!;
    const yv = ctx.outViews[0]!;
    const hasBias = ctx.attrs.hasBias;
    // Tile policy 'software' (CPU-run adapters): the DIRECT entry, one invocation per output, SIMD-group workgroups.
    const direct = ctx.caps.tiles === 'software';
    const wg = simdLanes(ctx.caps);
    return [
      {
        kernel: 'linear',
        defines: { ACT: ACT_CODE[ctx.attrs.act ?? 'none'], HAS_BIAS: hasBias ? 1 : 0, DIRECT: direct ? 1 : 0, ...(direct ? { WG: wg } : {}) },
        grid: direct ? grid1d(M * O, wg, ctx.caps.limits.maxComputeWorkgroupsPerDimension) : [Math.ceil(O / TILE_O), Math.ceil(M / TILE_M)],
        params: [M, K, O, xv.cOff, xv.cTot, yv.cOff, yv.cTot],
        bindings: hasBias ? [{ input: 0 }, { input: 1 }, { input: 2 }, { output: 0 }] : [{ input: 0 }, { input: 1 }, { output: 0 }],
        flops: 2 * M * K * O,
        bytes: (M * K + O * K + (hasBias ? O : 0) + M * O) * 4,
      },
    ];
  },
  reference([x, w, b], { attrs, inputs }) {
    const [M, K] = inputs[0]! as [number, number];
    const O = inputs[1]![0]!;
    const y = new Float32Array(M * O);
    for (let m = 0; m < M; m++)
      for (let o = 0; o < O; o++) {
        let acc = attrs.hasBias ? b![o]! : 0;
        for (let k = 0; k < K; k++) acc += x![m * K + k]! * w![o * K + k]!;
        y[m * O + o] = applyActivation(acc, attrs.act ?? 'none');
      }
    return [y];
  },
  cases: [
    ...ACTIVATIONS.map((act): TestCase<LinearAttrs> => ({ name: `K=37 O=13 bias ${act}`, inputs: [[3, 37], [13, 37], [13]], attrs: { hasBias: true, act } })),
    { name: 'K=37 O=13 no bias', inputs: [[3, 37], [13, 37]], attrs: { hasBias: false } },
    { name: 'K=37 O=13 no bias relu, x from a view', inputs: [[3, 37], [13, 37]], attrs: { hasBias: false, act: 'relu' }, inViews: [{ cOff: 11, cTot: 50 }] },
    {
      name: 'K=37 O=13 bias silu, x from a view into a view',
      inputs: [[3, 37], [13, 37], [13]],
      attrs: { hasBias: true, act: 'silu' },
      inViews: [{ cOff: 0, cTot: 74 }],
      outViews: [{ cOff: 4, cTot: 20 }],
    },
    { name: 'K=300 O=70 batch 3', inputs: [[3, 300], [70, 300], [70]], attrs: { hasBias: true } },
    { name: 'K=300 O=70 batch 11 (two row tiles) tanh', inputs: [[11, 300], [70, 300], [70]], attrs: { hasBias: true, act: 'tanh' } },
  ],
});
