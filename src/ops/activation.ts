/** Activation functions shared by every op with an epilogue; codes match `apply_act` in kernels/common.wgsl. */
export type Activation = 'none' | 'relu' | 'silu' | 'sigmoid' | 'tanh';

/** The ACT define value for an activation. */
export const ACT_CODE: Record<Activation, number> = { none: 0, relu: 1, silu: 2, sigmoid: 3, tanh: 4 };

/** All activations, for test cases. */
export const ACTIVATIONS: Activation[] = ['none', 'relu', 'silu', 'sigmoid', 'tanh'];

/** CPU reference of an activation, in double precision. */
export function applyActivation(x: number, act: Activation): number {
  switch (act) {
    case 'relu':
      return x > 0 ? x : 0;
    case 'silu':
      return x / (1 + Math.exp(-x));
    case 'sigmoid':
      return 1 / (1 + Math.exp(-x));
    case 'tanh':
      return Math.tanh(x);
    default:
      return x;
  }
}
