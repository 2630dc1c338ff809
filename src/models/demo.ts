/**
 * A small network with one of each op family (strided stem, MBConv with squeeze-excite and residual, bilinear
 * resize, zero-cost concat, 3x3 conv), with seeded random weights. The executor test and `covidct demo` use it.
 */
import { GraphBuilder } from '../graph/builder.js';
import type { Graph, Tensor } from '../graph/ir.js';
import type { Activation } from '../ops/activation.js';
import { numel } from '../ops/op.js';
import { mulberry32, uniform } from '../ops/random.js';

/** Builds the demo network for a batch of [batch, 3, height, width] images. */
export function demoNet(batch: number, seed = 99, height = 7, width = 9): Graph {
  const rand = mulberry32(seed);
  const g = new GraphBuilder();
  const w = (name: string, shape: number[], lo = -0.5, hi = 0.5) => g.weight(name, shape, uniform(rand, numel(shape), lo, hi));
  const bn = (x: Tensor, c: number, name: string, act?: Activation) =>
    g.op1('batchnorm', [x, w(`${name}.g`, [c], 0.5, 1.5), w(`${name}.b`, [c]), w(`${name}.m`, [c]), w(`${name}.v`, [c], 0.5, 1.5)], { eps: 1e-5, act }, name);
  const conv = (x: Tensor, wt: Tensor, k: number, stride: number, name: string, bias?: Tensor, act: Activation = 'none') =>
    g.op1('conv2d', bias ? [x, wt, bias] : [x, wt], { kernel: [k, k], stride: [stride, stride], pad: [(k - 1) / 2, (k - 1) / 2], act, hasBias: !!bias }, name);
  const x = g.input('x', [batch, 3, height, width]);
  let h = conv(x, w('stem.w', [6, 3, 3, 3]), 3, 2, 'stem');
  h = g.op1('unary', [bn(h, 6, 'stem.bn')], { act: 'silu' }, 'stem.act');
  let e = conv(h, w('exp.w', [10, 6, 1, 1]), 1, 1, 'expand');
  e = g.op1('unary', [bn(e, 10, 'exp.bn')], { act: 'silu' }, 'expand.act');
  let d = g.op1('depthwise', [e, w('dw.w', [10, 1, 3, 3])], { kernel: 3, stride: 1, pad: 1, act: 'none', hasBias: false }, 'dw');
  d = g.op1('unary', [bn(d, 10, 'dw.bn')], { act: 'silu' }, 'dw.act');
  const p = g.op1('global_pool', [d], { mode: 'avg' }, 'se.pool');
  const s1 = g.op1('linear', [p, w('se.fc1.w', [4, 10]), w('se.fc1.b', [4])], { hasBias: true, act: 'silu' }, 'se.fc1');
  const s2 = g.op1('linear', [s1, w('se.fc2.w', [10, 4]), w('se.fc2.b', [10])], { hasBias: true, act: 'sigmoid' }, 'se.fc2');
  const se = g.op1('binary', [d, s2], { op: 'mul' }, 'se.scale');
  const pr = bn(conv(se, w('proj.w', [6, 10, 1, 1]), 1, 1, 'project'), 6, 'proj.bn');
  const r = g.op1('binary', [pr, h], { op: 'add' }, 'residual');
  const up = g.op1('resize_bilinear', [r], { size: [height, width], alignCorners: false }, 'up');
  const skip = conv(x, w('skip.w', [5, 3, 1, 1]), 1, 1, 'skip', w('skip.b', [5]), 'relu');
  const cat = g.op1('concat', [up, skip], {}, 'cat');
  const y = conv(cat, w('out.w', [4, 11, 3, 3]), 3, 1, 'out', w('out.b', [4]), 'relu');
  g.output('y', y);
  g.output('pooled', g.op1('global_pool', [y], { mode: 'max' }, 'head.pool'));
  return g.finish();
}
