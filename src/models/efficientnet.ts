/**
 * torchvision 0.14 EfficientNet B0..B7, built from the compound-scaling table exactly as
 * torchvision/models/efficientnet.py does (MBConvConfig.adjust_channels = _make_divisible(c * width, 8),
 * adjust_depth = ceil(layers * depth), stem = adjusted 32, head = 4 x last stage width, SiLU everywhere,
 * squeeze = max(1, block input // 4), symmetric padding (k - 1) // 2, residual when stride 1 and in == out,
 * stochastic depth = identity at inference). BatchNorm eps: 1e-5 for B0..B4 and 1e-3 for B5..B7
 * (torchvision builds those with `norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)`).
 *
 * State-dict names are torchvision's, under a prefix:
 *   features.0.0 (stem conv 3x3 s2), features.0.1 (BN)
 *   features.{s}.{b}.block.{i}: MBConv layers: [expand 1x1 conv .0 / BN .1 (absent when expand ratio 1)],
 *     depthwise .0/.1, SE .fc1/.fc2 (1x1 convs with bias, [S, C, 1, 1] / [C, S, 1, 1]), project .0/.1
 *   features.8.0 (head conv 1x1), features.8.1 (BN)
 *   classifier.1 (Linear, for the standalone network)
 */
import type { Tensor } from '../graph/ir.js';
import { ModelBuilder, type ModelGraph } from './builder.js';

/** The eight torchvision EfficientNet (v1) variants. */
export const EFFICIENTNET_VARIANTS = [
  'efficientnet_b0',
  'efficientnet_b1',
  'efficientnet_b2',
  'efficientnet_b3',
  'efficientnet_b4',
  'efficientnet_b5',
  'efficientnet_b6',
  'efficientnet_b7',
] as const;

/** A torchvision EfficientNet variant name. */
export type EfficientNetVariant = (typeof EFFICIENTNET_VARIANTS)[number];

/** Width / depth multipliers (torchvision `_efficientnet_conf` calls). */
const SCALING: Record<EfficientNetVariant, [width: number, depth: number]> = {
  efficientnet_b0: [1.0, 1.0],
  efficientnet_b1: [1.0, 1.1],
  efficientnet_b2: [1.1, 1.2],
  efficientnet_b3: [1.2, 1.4],
  efficientnet_b4: [1.4, 1.8],
  efficientnet_b5: [1.6, 2.2],
  efficientnet_b6: [1.8, 2.6],
  efficientnet_b7: [2.0, 3.1],
};

/** The B0 stage table: expand ratio, kernel, stride, in, out, layers (torchvision `bneck_conf` rows). */
const BASE_STAGES: ReadonlyArray<readonly [number, number, number, number, number, number]> = [
  [1, 3, 1, 32, 16, 1],
  [6, 3, 2, 16, 24, 2],
  [6, 5, 2, 24, 40, 2],
  [6, 3, 2, 40, 80, 3],
  [6, 5, 1, 80, 112, 3],
  [6, 5, 2, 112, 192, 4],
  [6, 3, 1, 192, 320, 1],
];

/** torchvision's `_make_divisible(v, divisor, min_value)` (from the TF MobileNet code). */
export function makeDivisible(v: number, divisor = 8, minValue?: number): number {
  const min = minValue ?? divisor;
  let n = Math.max(min, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (n < 0.9 * v) n += divisor;
  return n;
}

/** One MBConv block. */
export interface MBConvSpec {
  inChannels: number;
  outChannels: number;
  /** Channels after the expand conv (= inChannels when there is none). */
  expanded: number;
  /** Whether block.0 is an expand 1x1 conv (expand ratio != 1). */
  hasExpand: boolean;
  kernel: number;
  stride: number;
  /** SE squeeze width max(1, inChannels // 4). */
  squeeze: number;
  /** Residual add (stride 1 and in == out). */
  residual: boolean;
}

/** One stage features[1..7]. */
export interface StageSpec {
  expandRatio: number;
  kernel: number;
  stride: number;
  inChannels: number;
  outChannels: number;
  layers: number;
  blocks: MBConvSpec[];
}

/** The whole network's structure. */
export interface EfficientNetSpec {
  variant: EfficientNetVariant;
  widthMult: number;
  depthMult: number;
  /** BatchNorm eps torchvision uses for this variant. */
  bnEps: number;
  /** features[0] output channels. */
  stem: number;
  /** features[1..7]. */
  stages: StageSpec[];
  /** features[8] output channels (4 x the last stage's). */
  head: number;
  /** Output channels of features[0..8]. */
  featureChannels: number[];
}

/** BatchNorm eps torchvision uses inside a variant: 1e-5 for B0..B4, 1e-3 for B5..B7. */
export function torchvisionBnEps(variant: EfficientNetVariant): number {
  return Number(variant.slice(-1)) >= 5 ? 1e-3 : 1e-5;
}

/** The structure torchvision 0.14 builds for a variant. */
export function efficientNetSpec(variant: EfficientNetVariant): EfficientNetSpec {
  const scaling = SCALING[variant];
  if (!scaling) throw new Error(`unknown EfficientNet variant '${String(variant)}' (expected one of ${EFFICIENTNET_VARIANTS.join(', ')})`);
  const [width, depth] = scaling;
  const stages: StageSpec[] = BASE_STAGES.map(([e, k, s, i, o, n]) => {
    const inC = makeDivisible(i * width);
    const outC = makeDivisible(o * width);
    const layers = Math.ceil(n * depth);
    const blocks: MBConvSpec[] = [];
    for (let b = 0; b < layers; b++) {
      const bin = b === 0 ? inC : outC;
      const stride = b === 0 ? s : 1;
      const expanded = makeDivisible(bin * e);
      blocks.push({ inChannels: bin, outChannels: outC, expanded, hasExpand: expanded !== bin, kernel: k, stride, squeeze: Math.max(1, Math.floor(bin / 4)), residual: stride === 1 && bin === outC });
    }
    return { expandRatio: e, kernel: k, stride: s, inChannels: inC, outChannels: outC, layers, blocks };
  });
  const stem = stages[0]!.inChannels;
  const head = 4 * stages[stages.length - 1]!.outChannels;
  return { variant, widthMult: width, depthMult: depth, bnEps: torchvisionBnEps(variant), stem, stages, head, featureChannels: [stem, ...stages.map((s) => s.outChannels), head] };
}

/** Options of {@link addEfficientNetFeatures}. */
export interface FeaturesOptions {
  variant: EfficientNetVariant;
  /** State-dict prefix including the trailing dot, e.g. 'seg.encoder.' (names continue with 'features.'). */
  prefix: string;
  /** Last feature stage to build (0..8). */
  last: number;
  /** BatchNorm eps (default torchvision's for the variant). */
  bnEps?: number;
  /** Config field reported when a shape does not match (e.g. 'seg.encoder'). */
  hint?: string;
}

/**
 * Adds torchvision `features[0..last]` to a model under `prefix` and returns the output tensor of every stage
 * built (index i = features[i]). Input x is [N, 3, H, W] (any H, W).
 */
export function addEfficientNetFeatures(m: ModelBuilder, x: Tensor, o: FeaturesOptions): Tensor[] {
  const spec = efficientNetSpec(o.variant);
  const eps = o.bnEps ?? spec.bnEps;
  const h = o.hint;
  const f = `${o.prefix}features`;
  if (h) m.hintPrefix(`${f}.`, h);
  const convBnAct = (t: Tensor, p: string, cout: number, k: number, stride: number, act: 'silu' | 'none'): Tensor => {
    let y = m.conv(t, `${p}.0`, cout, k, { stride, pad: Math.floor((k - 1) / 2), hints: h });
    y = m.bn(y, `${p}.1`, eps, h);
    return m.act(y, act, `${p}.2`);
  };
  const outs: Tensor[] = [];
  let cur = convBnAct(x, `${f}.0`, spec.stem, 3, 2, 'silu');
  outs.push(cur);
  for (let s = 1; s <= Math.min(o.last, 7); s++) {
    spec.stages[s - 1]!.blocks.forEach((blk, bi) => {
      const p = `${f}.${s}.${bi}.block`;
      let i = 0;
      let y = cur;
      if (blk.hasExpand) y = convBnAct(y, `${p}.${i++}`, blk.expanded, 1, 1, 'silu');
      // depthwise kxk, BN, SiLU
      const dp = `${p}.${i++}`;
      y = m.depthwise(y, `${dp}.0`, blk.kernel, blk.stride, h);
      y = m.bn(y, `${dp}.1`, eps, h);
      y = m.act(y, 'silu', `${dp}.2`);
      // squeeze-excitation: GAP -> fc1 (SiLU) -> fc2 (sigmoid) -> scale
      const sp = `${p}.${i++}`;
      const pooled = m.pool(y, 'avg', `${sp}.avgpool`);
      const s1 = m.linear(pooled, `${sp}.fc1`, blk.squeeze, { bias: true, act: 'silu', hints: h });
      const s2 = m.linear(s1, `${sp}.fc2`, blk.expanded, { bias: true, act: 'sigmoid', hints: h });
      y = m.binary(y, s2, 'mul', `${sp}.scale`);
      // project 1x1, BN, no activation
      y = convBnAct(y, `${p}.${i++}`, blk.outChannels, 1, 1, 'none');
      cur = blk.residual ? m.binary(y, cur, 'add', `${f}.${s}.${bi}.add`) : y;
    });
    outs.push(cur);
  }
  if (o.last >= 8) outs.push(convBnAct(cur, `${f}.8`, spec.head, 1, 1, 'silu'));
  return outs;
}

/** Options of the standalone {@link efficientnet} graph. */
export interface EfficientNetOptions {
  batch: number;
  height: number;
  width: number;
  /** Classifier outputs (default 1000, ImageNet). */
  numClasses?: number;
  /** Also output `features.i` for every stage (default true). */
  intermediates?: boolean;
}

/**
 * The full torchvision classifier: features[0..8] -> global average pool -> Dropout (identity) -> Linear.
 * Input 'input' [batch, 3, height, width] (ImageNet-normalised); outputs 'logits' [batch, numClasses] and,
 * unless intermediates is false, 'features.0' .. 'features.8'. Weight names are exactly a torchvision state dict
 * (`features.*`, `classifier.1.weight`, `classifier.1.bias`), so a torchvision checkpoint loads unchanged.
 */
export function efficientnet(variant: EfficientNetVariant, o: EfficientNetOptions): ModelGraph {
  const m = new ModelBuilder();
  const x = m.b.input('input', [o.batch, 3, o.height, o.width]);
  const feats = addEfficientNetFeatures(m, x, { variant, prefix: '', last: 8 });
  if (o.intermediates ?? true) feats.forEach((t, i) => m.output(`features.${i}`, t));
  const pooled = m.pool(feats[8]!, 'avg', 'avgpool');
  const logits = m.linear(pooled, 'classifier.1', o.numClasses ?? 1000, { bias: true });
  m.output('logits', logits);
  return m.finish();
}
