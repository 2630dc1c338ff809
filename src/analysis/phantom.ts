/**
 * A synthetic chest-CT phantom in Hounsfield units: air around an elliptic body (soft tissue), two lungs
 * (aerated parenchyma), a spine and, optionally, ground-glass opacities in the lower lobes. The embedded
 * default input of `covidct analyze`, so the main job runs on a fresh machine with no patient data.
 */

import type { Volume } from '../volume/volume.js';

/** Options of {@link chestPhantom}. */
export interface PhantomOptions {
  slices?: number;
  height?: number;
  width?: number;
  /** Add ground-glass opacities (default true). */
  opacities?: boolean;
  /**
   * Slices of body without lung above the apices and below the bases (default 0 and 0: the lungs fill the first and
   * last slice, so a long phantom does not show them whole; src/analysis/postprocess.ts, CUT_END_FRACTION).
   */
  aboveApex?: number;
  belowBase?: number;
}

/** HU volume [slices, 1, height, width] and the per-slice lung fraction of the phantom itself. */
export function chestPhantom(o: PhantomOptions = {}): { hu: Float32Array; shape: [number, number, number, number]; lungFraction: number[] } {
  const S = o.slices ?? 4;
  const H = o.height ?? 128;
  const W = o.width ?? 128;
  const hu = new Float32Array(S * H * W);
  const lungFraction: number[] = [];
  const inside = (x: number, y: number, cx: number, cy: number, rx: number, ry: number) => ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
  const top = o.aboveApex ?? 0;
  const bottom = o.belowBase ?? 0;
  const L = S - top - bottom; // slices with lung
  if (top < 0 || bottom < 0 || L < 1) throw new RangeError(`chestPhantom: ${S} slices leave none for the lungs with ${top} above the apex and ${bottom} below the base`);
  for (let s = 0; s < S; s++) {
    const z = L > 1 ? (s - top) / (L - 1) : 0.5; // 0 = apex, 1 = base
    const hasLung = s >= top && s < top + L;
    const lungScale = 0.6 + 0.4 * Math.sin(Math.PI * (0.2 + 0.7 * z));
    let lung = 0;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const u = x / W;
        const v = y / H;
        let h = -1000;
        if (inside(u, v, 0.5, 0.52, 0.44, 0.36)) h = 40 + 10 * Math.sin(40 * u) * Math.cos(37 * v);
        const inLung = hasLung && (inside(u, v, 0.32, 0.5, 0.13 * lungScale, 0.24 * lungScale) || inside(u, v, 0.68, 0.5, 0.13 * lungScale, 0.24 * lungScale));
        if (inLung) {
          h = -860 + 25 * Math.sin(90 * u + 13 * s) * Math.sin(70 * v);
          if (o.opacities !== false && z > 0.4 && (inside(u, v, 0.27, 0.62, 0.05, 0.04) || inside(u, v, 0.72, 0.6, 0.04, 0.05))) h = -520;
          lung++;
        }
        if (inside(u, v, 0.5, 0.78, 0.05, 0.05)) h = 700;
        hu[(s * H + y) * W + x] = h;
      }
    lungFraction.push(lung / (H * W));
  }
  return { hu, shape: [S, 1, H, W], lungFraction };
}

/**
 * The phantom as a Volume (the embedded default input of `covidct analyze`): slices stored inferior to superior
 * in the axial view's layout (i towards the patient's left, j posterior), 0.8 mm pixels, 2.5 mm slices.
 */
export function chestPhantomVolume(o: PhantomOptions = {}): Volume {
  const p = chestPhantom(o);
  const [S, , H, W] = p.shape;
  const hw = H * W;
  const data = new Int16Array(p.hu.length);
  // Phantom slice 0 is the apex (superior): k runs inferior -> superior.
  for (let s = 0; s < S; s++) for (let i = 0; i < hw; i++) data[(S - 1 - s) * hw + i] = Math.round(p.hu[s * hw + i]!);
  const px = 0.8;
  const dz = 2.5;
  return {
    data,
    dims: [W, H, S],
    spacing: [px, px, dz],
    affine: new Float64Array([-px, 0, 0, 0, 0, -px, 0, 0, 0, 0, dz, 0, (px * W) / 2, (px * H) / 2, -dz * S, 1]),
    space: 'RAS',
    source: { format: 'array', path: '', description: `synthetic chest phantom (${S} slices of ${W} x ${H})`, notes: ['embedded synthetic phantom, not a patient scan'] },
  };
}
