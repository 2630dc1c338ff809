/**
 * A synthetic chest-CT phantom in Hounsfield units: air around an elliptic body (soft tissue), two lungs
 * (aerated parenchyma), a spine and, optionally, ground-glass opacities in the lower lobes. The embedded
 * default input of `covidct analyze`, so the main job runs on a fresh machine with no patient data.
 */

/** Options of {@link chestPhantom}. */
export interface PhantomOptions {
  slices?: number;
  height?: number;
  width?: number;
  /** Add ground-glass opacities (default true). */
  opacities?: boolean;
}

/** HU volume [slices, 1, height, width] and the per-slice lung fraction of the phantom itself. */
export function chestPhantom(o: PhantomOptions = {}): { hu: Float32Array; shape: [number, number, number, number]; lungFraction: number[] } {
  const S = o.slices ?? 4;
  const H = o.height ?? 128;
  const W = o.width ?? 128;
  const hu = new Float32Array(S * H * W);
  const lungFraction: number[] = [];
  const inside = (x: number, y: number, cx: number, cy: number, rx: number, ry: number) => ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1;
  for (let s = 0; s < S; s++) {
    const z = S > 1 ? s / (S - 1) : 0.5; // 0 = apex, 1 = base
    const lungScale = 0.6 + 0.4 * Math.sin(Math.PI * (0.2 + 0.7 * z));
    let lung = 0;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const u = x / W;
        const v = y / H;
        let h = -1000;
        if (inside(u, v, 0.5, 0.52, 0.44, 0.36)) h = 40 + 10 * Math.sin(40 * u) * Math.cos(37 * v);
        const inLung = inside(u, v, 0.32, 0.5, 0.13 * lungScale, 0.24 * lungScale) || inside(u, v, 0.68, 0.5, 0.13 * lungScale, 0.24 * lungScale);
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
