/**
 * Stage 1, GR-U-Net (docs/model.md "Stage 1"), exactly as weights/reference/model.py `GRUNet` computes it:
 *
 *   E0..E4 = torchvision EfficientNet features[0..4] (prefix `seg.encoder.`)
 *   dense bottleneck: x_i = block_i(concat(E4, x_1, .., x_{i-1})), block = (Conv3x3-BN-ReLU) x 2; out = x_N
 *   decoder k = 3, 2, 1 on (prev, E_k):
 *     up   = BN(Conv3x3(resize(prev, size(E_k))))            (no activation)
 *     skip = ReLU(BN(Conv1x1(E_k)))
 *     h_fwd = cell_f(up, cell_f(skip, 0)); h_bwd = cell_b(skip, cell_b(up, 0))
 *     gru  = tanh(Conv1x1(concat(h_fwd, h_bwd)) + b)
 *     conv = (Conv3x3-BN-ReLU) x 2
 *     out  = ReLU(BN(Conv1x1(concat(x * cSE(x), x * sSE(x)))))
 *   head: resize to the input size, Conv3x3-BN-ReLU, Conv1x1 (+bias) -> 1 logit.
 *
 * ConvGRU cell (weights `conv_zr` [2C, 2C, k, k] with z = outputs [0, C), r = [C, 2C); `conv_n` [C, 2C, k, k];
 * input order [x, h]): zr = conv_zr([x, h]); rh = sigmoid(r) * h (gru_reset); n = conv_n([x, rh]);
 * h' = (1 - z) h + z tanh(n) (gru_update). First step (h = 0): conv over [x, 0] = conv over x with the weight's
 * first C input channels, and r * 0 = 0, so zr = conv(x, W_zr[:, :C]) and n = conv(x, W_n[:, :C]) with
 * derived (input-channel-sliced) weights, and h' = z tanh(n) (gru_update with h0).
 */
import type { Tensor } from '../graph/ir.js';
import { ModelBuilder } from './builder.js';
import { seHidden, type ModelConfig } from './config.js';
import { addEfficientNetFeatures } from './efficientnet.js';

/** Whether to expose the reference's intermediates (weights/README.md names) as graph outputs. */
export interface BuildOptions {
  intermediates?: boolean;
}

/** A ConvGRU cell under prefix p (e.g. 'seg.dec3.gru.fwd'), applied to a sequence; returns the final hidden state. */
function convGruSequence(m: ModelBuilder, p: string, xs: Tensor[], c: number, k: number, hint: Hints3): Tensor {
  const zrW = `${p}.conv_zr.weight`;
  const nW = `${p}.conv_n.weight`;
  const convHints = [hint.zr, hint.in, hint.k, hint.k];
  const wzr = m.param(zrW, [2 * c, 2 * c, k, k], convHints);
  const bzr = m.param(`${p}.conv_zr.bias`, [2 * c], [hint.zr]);
  const wn = m.param(nW, [c, 2 * c, k, k], [hint.c, hint.in, hint.k, hint.k]);
  const bn = m.param(`${p}.conv_n.bias`, [c], [hint.c]);
  const opts = { pad: Math.floor(k / 2) };
  // Step 1 with h = 0: sliced weights, gru_update(h0).
  const x0 = xs[0]!;
  const wzr0 = m.derived(`${zrW}[:, :${c}]`, [2 * c, c, k, k], zrW, [2 * c, 2 * c, k, k], { kind: 'sliceIn', count: c }, convHints);
  const wn0 = m.derived(`${nW}[:, :${c}]`, [c, c, k, k], nW, [c, 2 * c, k, k], { kind: 'sliceIn', count: c }, [hint.c, hint.in, hint.k, hint.k]);
  const zr0 = m.convWith(x0, wzr0, bzr, k, opts, `${p}.t0.conv_zr`);
  const n0 = m.convWith(x0, wn0, bn, k, opts, `${p}.t0.conv_n`);
  let h = m.b.op1('gru_update', [zr0, n0], { h0: true }, `${p}.t0.update`);
  for (let t = 1; t < xs.length; t++) {
    const x = xs[t]!;
    const zr = m.convWith(m.concat([x, h], `${p}.t${t}.cat_xh`), wzr, bzr, k, opts, `${p}.t${t}.conv_zr`);
    const rh = m.b.op1('gru_reset', [zr, h], {}, `${p}.t${t}.reset`);
    const n = m.convWith(m.concat([x, rh], `${p}.t${t}.cat_xrh`), wn, bn, k, opts, `${p}.t${t}.conv_n`);
    h = m.b.op1('gru_update', [zr, n, h], {}, `${p}.t${t}.update`);
  }
  return h;
}

interface Hints3 {
  zr: string;
  c: string;
  in: string;
  k: string;
}

/** Conv-BN-ReLU with the reference's module names (`${conv}` / `${bn}`). */
function convBnRelu(m: ModelBuilder, x: Tensor, conv: string, bn: string, cout: number, k: number, eps: number, hints: Array<string | undefined>, act = true): Tensor {
  const y = m.bn(m.conv(x, conv, cout, k, { hints }), bn, eps, hints[0]);
  return act ? m.act(y, 'relu', `${bn}.relu`) : y;
}

/**
 * Adds GR-U-Net to a model. x: the normalised 3-channel slice [N, 3, H, W]; returns the lung logits [N, 1, H, W].
 * With `intermediates`, every tap of the reference (`seg.e0` .. `seg.head.hidden`) becomes a graph output.
 */
export function addGRUNet(m: ModelBuilder, x: Tensor, cfg: ModelConfig, o: BuildOptions = {}): Tensor {
  const seg = cfg.seg;
  const eps = cfg.bn_eps;
  const tap = (name: string, t: Tensor): void => {
    if (o.intermediates) m.output(name, t);
  };
  const e = addEfficientNetFeatures(m, x, { variant: seg.encoder, prefix: 'seg.encoder.', last: 4, bnEps: seg.encoder_bn_eps, hint: 'seg.encoder' });
  e.forEach((t, i) => tap(`seg.e${i}`, t));

  // Dense bottleneck.
  m.hintPrefix('seg.bottleneck.blocks.', 'seg.dense_blocks');
  const cb = seg.bottleneck_channels;
  const feats: Tensor[] = [e[4]!];
  let b = e[4]!;
  for (let i = 0; i < seg.dense_blocks; i++) {
    const p = `seg.bottleneck.blocks.${i}`;
    const inHint = i === 0 ? 'seg.encoder' : 'seg.bottleneck_channels';
    const xin = m.concat(feats, `${p}.cat`);
    let y = convBnRelu(m, xin, `${p}.conv1`, `${p}.bn1`, cb, 3, eps, ['seg.bottleneck_channels', inHint]);
    y = convBnRelu(m, y, `${p}.conv2`, `${p}.bn2`, cb, 3, eps, ['seg.bottleneck_channels', 'seg.bottleneck_channels']);
    tap(`seg.dense.x${i + 1}`, y);
    feats.push(y);
    b = y;
  }
  tap('seg.bottleneck', b);

  // Decoder k = 3, 2, 1.
  let prev = b;
  let prevHint = 'seg.bottleneck_channels';
  [3, 2, 1].forEach((k, j) => {
    const p = `seg.dec${k}`;
    const c = seg.decoder_channels[j]!;
    const ch = `seg.decoder_channels[${j}]`;
    const skipFeat = e[k]!;
    const size: [number, number] = [skipFeat.shape[2]!, skipFeat.shape[3]!];
    const up = m.bn(m.conv(m.resize(prev, size, `${p}.resize`), `${p}.up_conv`, c, 3, { hints: [ch, prevHint] }), `${p}.up_bn`, eps, ch);
    const skip = convBnRelu(m, skipFeat, `${p}.skip_conv`, `${p}.skip_bn`, c, 1, eps, [ch, 'seg.encoder']);
    tap(`${p}.up`, up);
    tap(`${p}.skip`, skip);
    const gk = seg.gru_kernel;
    const hints: Hints3 = { zr: ch, c: ch, in: ch, k: 'seg.gru_kernel' };
    const hFwd = convGruSequence(m, `${p}.gru.fwd`, [skip, up], c, gk, hints);
    const hBwd = convGruSequence(m, `${p}.gru.bwd`, [up, skip], c, gk, hints);
    tap(`${p}.h_fwd`, hFwd);
    tap(`${p}.h_bwd`, hBwd);
    let y = m.conv(m.concat([hFwd, hBwd], `${p}.gru.cat`), `${p}.gru.out`, c, 1, { bias: true, hints: [ch, ch] });
    y = m.act(y, 'tanh', `${p}.gru.tanh`);
    tap(`${p}.gru`, y);
    y = convBnRelu(m, y, `${p}.conv1`, `${p}.bn1`, c, 3, eps, [ch, ch]);
    y = convBnRelu(m, y, `${p}.conv2`, `${p}.bn2`, c, 3, eps, [ch, ch]);
    tap(`${p}.conv`, y);
    y = addSCSE(m, y, `${p}.scse`, seHidden(seg, c), eps, ch);
    tap(p, y);
    prev = y;
    prevHint = ch;
  });

  // Head.
  const hh = 'seg.head_channels';
  const hid = convBnRelu(m, m.resize(prev, [x.shape[2]!, x.shape[3]!], 'seg.head.resize'), 'seg.head.conv', 'seg.head.bn', seg.head_channels, 3, eps, [hh, 'seg.decoder_channels[2]']);
  tap('seg.head.hidden', hid);
  return m.conv(hid, 'seg.head.out', 1, 1, { bias: true, hints: [undefined, hh] });
}

/**
 * scSE: concat(x * sigmoid(fc2(relu(fc1(GAP(x))))), x * sigmoid(conv1x1(x) -> 1)) -> Conv1x1 -> BN -> ReLU.
 * cSE is expressed as global_pool -> linear(relu) -> linear(sigmoid) -> binary mul, the fc weights
 * ([S, C, 1, 1] in the file) declared with the linear shape [S, C].
 */
function addSCSE(m: ModelBuilder, x: Tensor, p: string, hidden: number, eps: number, ch: string): Tensor {
  const c = x.shape[1]!;
  const sHint = ['seg.se_reduction / seg.se_min_channels', ch];
  const pooled = m.pool(x, 'avg', `${p}.pool`);
  const s1 = m.linear(pooled, `${p}.cse_fc1`, hidden, { bias: true, act: 'relu', hints: sHint });
  const s2 = m.linear(s1, `${p}.cse_fc2`, c, { bias: true, act: 'sigmoid', hints: [ch, sHint[0]] });
  const cse = m.binary(x, s2, 'mul', `${p}.cse`);
  const q = m.act(m.conv(x, `${p}.sse`, 1, 1, { bias: true, hints: [undefined, ch] }), 'sigmoid', `${p}.sse.sigmoid`);
  const sse = m.binary(x, q, 'mul', `${p}.sse_mul`);
  const y = m.conv(m.concat([cse, sse], `${p}.cat`), `${p}.fuse_conv`, c, 1, { hints: [ch, ch] });
  return m.act(m.bn(y, `${p}.fuse_bn`, eps, ch), 'relu', `${p}.fuse_bn.relu`);
}
