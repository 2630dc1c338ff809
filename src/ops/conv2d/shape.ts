/** conv2d's attributes, input order and shape rule (PyTorch's output size), checked with messages naming the shapes. */
import type { Activation } from '../activation.js';
import { check, checkRank, type Shape } from '../op.js';

/** Attributes of conv2d. */
export interface Conv2dAttrs {
  /** Kernel size [kh, kw]; must match the weight's last two dimensions. */
  kernel: readonly [number, number];
  /** Stride [sh, sw]. */
  stride: readonly [number, number];
  /** Symmetric zero padding [ph, pw]. */
  pad: readonly [number, number];
  /** Dilation [dh, dw] (default [1, 1]). */
  dilation?: readonly [number, number];
  /** Epilogue activation, applied after the bias and before the residual. */
  act: Activation;
  /** A bias [Cout] follows the weight. */
  hasBias: boolean;
  /** A residual [N, Cout, Ho, Wo] follows (the bias), added after the activation (default false). */
  hasResidual?: boolean;
  /** An input-channel scale [N, Cin] comes last, multiplied into x as it is read (default false). */
  hasInScale?: boolean;
}

/** Input indices of the optional inputs for the given flags (-1 when absent). */
export function conv2dInputIndex(attrs: Pick<Conv2dAttrs, 'hasBias' | 'hasResidual' | 'hasInScale'>): { bias: number; residual: number; inScale: number; count: number } {
  let i = 2;
  const bias = attrs.hasBias ? i++ : -1;
  const residual = attrs.hasResidual ? i++ : -1;
  const inScale = attrs.hasInScale ? i++ : -1;
  return { bias, residual, inScale, count: i };
}

/** Output spatial size of one dimension (PyTorch): floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1. */
function outSize(inSize: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((inSize + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

function checkPair(name: string, v: unknown, min: number, inputs: Shape[]): [number, number] {
  check(
    Array.isArray(v) && v.length === 2 && v.every((d) => Number.isInteger(d) && d >= min),
    'conv2d',
    `${name} must be two integers >= ${min}, got ${JSON.stringify(v)}`,
    inputs,
  );
  return v as [number, number];
}

/** Validated geometry of a conv2d. */
export interface Geometry {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  Ho: number;
  Wo: number;
}

/** Checks the inputs against the attributes (ShapeError naming the shapes otherwise) and returns the geometry. */
export function geometry(inputs: Shape[], attrs: Conv2dAttrs): Geometry {
  const idx = conv2dInputIndex(attrs);
  const what = ['x', 'W', attrs.hasBias && 'bias', attrs.hasResidual && 'residual', attrs.hasInScale && 'inScale'].filter(Boolean).join(', ');
  check(inputs.length === idx.count, 'conv2d', `needs ${idx.count} inputs (${what}), got ${inputs.length}`, inputs);
  const [N, Cin, H, W] = checkRank('conv2d', 'x', inputs[0], 4, inputs) as [number, number, number, number];
  const [Cout, wCin, wkh, wkw] = checkRank('conv2d', 'W', inputs[1], 4, inputs) as [number, number, number, number];
  const [kh, kw] = checkPair('kernel', attrs.kernel, 1, inputs);
  const [sh, sw] = checkPair('stride', attrs.stride, 1, inputs);
  const [ph, pw] = checkPair('pad', attrs.pad, 0, inputs);
  const [dh, dw] = checkPair('dilation', attrs.dilation ?? [1, 1], 1, inputs);
  check(wCin === Cin, 'conv2d', `W has ${wCin} input channels but x has ${Cin} (only groups = 1; depthwise is its own op)`, inputs);
  check(wkh === kh && wkw === kw, 'conv2d', `W is a ${wkh}x${wkw} kernel but attrs.kernel is [${kh}, ${kw}]`, inputs);
  const Ho = outSize(H, kh, sh, ph, dh);
  const Wo = outSize(W, kw, sw, pw, dw);
  check(Ho > 0 && Wo > 0, 'conv2d', `empty output: ${H}x${W} input, ${kh}x${kw} kernel, pad [${ph}, ${pw}], dilation [${dh}, ${dw}] give ${Ho}x${Wo}`, inputs);
  if (attrs.hasBias) {
    const b = inputs[idx.bias]!;
    check(b.length === 1 && b[0] === Cout, 'conv2d', `bias must be [${Cout}], got [${b.join(', ')}]`, inputs);
  }
  if (attrs.hasResidual) {
    const r = inputs[idx.residual]!;
    const want = [N, Cout, Ho, Wo];
    check(r.length === 4 && r.every((d, i) => d === want[i]), 'conv2d', `residual must be [${want.join(', ')}] (the output shape), got [${r.join(', ')}]`, inputs);
  }
  if (attrs.hasInScale) {
    const s = inputs[idx.inScale]!;
    const ok = (s.length === 2 || (s.length === 4 && s[2] === 1 && s[3] === 1)) && s[0] === N && s[1] === Cin;
    check(ok, 'conv2d', `inScale must be [${N}, ${Cin}] (or [${N}, ${Cin}, 1, 1]), got [${s.join(', ')}]`, inputs);
  }
  return { N, Cin, H, W, Cout, kh, kw, sh, sw, ph, pw, dh, dw, Ho, Wo };
}
