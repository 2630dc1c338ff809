/**
 * Stage 2, the classifier (docs/model.md "Stage 2"), exactly as weights/reference/model.py `Classifier` computes it:
 *
 *   f0..f8 = torchvision EfficientNet features[0..8] (prefix `cls.backbone.`)
 *   M      = SiLU(BN(Conv1x1(concat(resize(f_i, size(f_first)) for i in msff_features))))   (cls.msff)
 *   logits = Conv1x1(M) + b -> 2 channels                                                  (cls.infection)
 *   P      = softmax(logits)[:, 1] = sigmoid(logit1 - logit0), computed as ONE conv with the derived weight
 *            (W[1] - W[0], b[1] - b[0]) followed by a sigmoid (there is no channel-slice op; mathematically equal)
 *   a = GAP(M * (1 + P)); g = GAP(f8); v = concat(a, g)
 *   e = (Linear(no bias)-BN1d-SiLU) x len(slice_head_widths); slice logits = Linear(e) + b
 */
import type { Tensor } from '../graph/ir.js';
import type { ModelBuilder } from './builder.js';
import type { ModelConfig } from './config.js';
import { addEfficientNetFeatures, efficientNetSpec } from './efficientnet.js';
import type { BuildOptions } from './grunet.js';

/** The classifier's output tensors. */
export interface ClassifierOutputs {
  /** [N, 2, h8, w8] */
  infectionLogits: Tensor;
  /** [N, 1, h8, w8], P on the grid of the first MsFF feature (stride 8). */
  infectionProb: Tensor;
  /** [N, Cf + C8], v = concat(a, g). */
  pooled: Tensor;
  /** [N, E] */
  embedding: Tensor;
  /** [N, K] */
  sliceLogits: Tensor;
}

/**
 * Adds the classifier to a model; x is the masked, normalised slice [N, 3, H, W]. With `intermediates`, the
 * reference's taps `cls.f0` .. `cls.f8`, `cls.msff`, `cls.pool_a`, `cls.pool_g`, `cls.slice_hidden{j}` become
 * graph outputs.
 */
export function addClassifier(m: ModelBuilder, x: Tensor, cfg: ModelConfig, o: BuildOptions = {}): ClassifierOutputs {
  const c = cfg.cls;
  const eps = cfg.bn_eps;
  const tap = (name: string, t: Tensor): void => {
    if (o.intermediates) m.output(name, t);
  };
  const f = addEfficientNetFeatures(m, x, { variant: c.backbone, prefix: 'cls.backbone.', last: 8, bnEps: c.backbone_bn_eps, hint: 'cls.backbone' });
  f.forEach((t, i) => tap(`cls.f${i}`, t));
  const ch = efficientNetSpec(c.backbone).featureChannels;

  // MsFF.
  const first = f[c.msff_features[0]!]!;
  const size: [number, number] = [first.shape[2]!, first.shape[3]!];
  const parts = c.msff_features.map((i) => m.resize(f[i]!, size, `cls.msff.resize${i}`));
  const cf = c.fused_channels;
  const inHint = 'cls.msff_features / cls.backbone';
  let mm = m.conv(m.concat(parts, 'cls.msff.cat'), 'cls.msff.conv', cf, 1, { hints: ['cls.fused_channels', inHint] });
  mm = m.act(m.bn(mm, 'cls.msff.bn', eps, 'cls.fused_channels'), 'silu', 'cls.msff.silu');
  tap('cls.msff', mm);

  // Infection branch.
  const ih = ['cls.infection_classes', 'cls.fused_channels'];
  const infectionLogits = m.conv(mm, 'cls.infection', c.infection_classes, 1, { bias: true, hints: ih });
  tap('cls.infection_logits', infectionLogits);
  const wd = m.derived('cls.infection.weight[1]-[0]', [1, cf, 1, 1], 'cls.infection.weight', [c.infection_classes, cf, 1, 1], { kind: 'rowDiff', plus: 1, minus: 0 }, ih);
  const bd = m.derived('cls.infection.bias[1]-[0]', [1], 'cls.infection.bias', [c.infection_classes], { kind: 'rowDiff', plus: 1, minus: 0 }, ih);
  const pLogit = m.convWith(mm, wd, bd, 1, {}, 'cls.infection_prob.logit');
  const infectionProb = m.act(pLogit, 'sigmoid', 'cls.infection_prob');

  // Attention-guided pooling.
  const a = m.pool(m.binary(mm, infectionProb, 'mulOnePlus', 'cls.attend'), 'avg', 'cls.pool_a');
  const g = m.pool(f[8]!, 'avg', 'cls.pool_g');
  tap('cls.pool_a', a);
  tap('cls.pool_g', g);
  const pooled = m.concat([a, g], 'cls.pooled');

  // Slice head.
  m.hintPrefix('cls.slice_head.', 'cls.slice_head_widths');
  let e = pooled;
  let prevHint = `cls.fused_channels / cls.backbone (${cf} + ${ch[8]})`;
  c.slice_head_widths.forEach((w, j) => {
    const p = `cls.slice_head.${j}`;
    const wh = `cls.slice_head_widths[${j}]`;
    e = m.linear(e, `${p}.linear`, w, { bias: false, hints: [wh, prevHint] });
    e = m.act(m.bn(e, `${p}.bn`, eps, wh), 'silu', `${p}.silu`);
    tap(`cls.slice_hidden${j + 1}`, e);
    prevHint = wh;
  });
  const sliceLogits = m.linear(e, 'cls.slice_out', c.num_classes, { bias: true, hints: ['cls.num_classes', prevHint] });
  return { infectionLogits, infectionProb, pooled, embedding: e, sliceLogits };
}
