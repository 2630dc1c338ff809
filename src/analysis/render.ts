/**
 * Pictures of an analysis: a lung-windowed axial slice with the lung outline and the infection heat map drawn
 * over it, a contact sheet of the most involved slices, and the legend (colour bar and labels in the bitmap
 * font of font.ts). RGBA images in memory, encoded as PNG by fast-png. Slices are shown as radiologists view
 * them: the axial view's i (patient right to left) across, j (anterior to posterior) down, with square display
 * pixels whatever the in-plane spacing (a slice of 0.7 x 1.4 mm pixels is resampled to the physical aspect).
 * @module
 */
import { encode } from 'fast-png';
import { GLYPH_HEIGHT, rasterText, textWidth } from './font.js';

/** An 8-bit RGBA image. */
export class Rgba {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    fill: readonly [number, number, number] = [0, 0, 0],
  ) {
    this.data = new Uint8Array(width * height * 4);
    for (let i = 0; i < width * height; i++) this.data.set([fill[0], fill[1], fill[2], 255], i * 4);
  }
  /** Sets one pixel (ignored outside the image), blending with `alpha` in [0, 1]. */
  set(x: number, y: number, rgb: readonly [number, number, number], alpha = 1): void {
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 4;
    for (let c = 0; c < 3; c++) this.data[o + c] = Math.round(this.data[o + c]! * (1 - alpha) + rgb[c]! * alpha);
  }
  get(x: number, y: number): [number, number, number] {
    const o = (y * this.width + x) * 4;
    return [this.data[o]!, this.data[o + 1]!, this.data[o + 2]!];
  }
  fillRect(x: number, y: number, w: number, h: number, rgb: readonly [number, number, number]): void {
    for (let yy = y; yy < y + h; yy++) for (let xx = x; xx < x + w; xx++) this.set(xx, yy, rgb);
  }
  text(s: string, x: number, y: number, rgb: readonly [number, number, number] = [255, 255, 255], scale = 1): void {
    rasterText(s, x, y, scale, (px, py) => this.set(px, py, rgb));
  }
  /** Copies `src` scaled (nearest neighbour) into the rectangle at (x, y) of size w x h. */
  blit(src: Rgba, x: number, y: number, w: number, h: number): void {
    for (let yy = 0; yy < h; yy++) {
      const sy = Math.min(src.height - 1, Math.floor(((yy + 0.5) * src.height) / h));
      for (let xx = 0; xx < w; xx++) {
        const sx = Math.min(src.width - 1, Math.floor(((xx + 0.5) * src.width) / w));
        this.set(x + xx, y + yy, src.get(sx, sy));
      }
    }
  }
  /** PNG bytes (8-bit RGB, no alpha: the images are opaque). */
  png(): Uint8Array {
    const rgb = new Uint8Array(this.width * this.height * 3);
    for (let i = 0; i < this.width * this.height; i++) rgb.set(this.data.subarray(i * 4, i * 4 + 3), i * 3);
    return encode({ width: this.width, height: this.height, data: rgb, channels: 3, depth: 8 });
  }
}

/** The lung window (W 1500, L -600), HU. */
export const LUNG_WINDOW: readonly [number, number] = [-1350, 150];
/** Colour of the lung outline. */
export const OUTLINE_RGB: readonly [number, number, number] = [0, 230, 255];
/** Probabilities below this are not painted. */
export const HEAT_MIN = 0.1;

/** Heat map colour of an infection probability: yellow (low) to red (high). */
export function heatColour(p: number): [number, number, number] {
  const t = Math.min(1, Math.max(0, p));
  return [255, Math.round(230 * (1 - t)), 0];
}
/** Opacity of the heat map at probability p. */
export function heatAlpha(p: number): number {
  return p < HEAT_MIN ? 0 : 0.3 + 0.45 * Math.min(1, p);
}

/**
 * One axial slice (nx x ny, i fastest) as an image: HU in the lung window as grey, infection probability as a
 * heat map inside the lung, the lung outline (mask pixels with a 4-neighbour outside the mask) on top.
 */
export function renderSlice(hu: ArrayLike<number>, mask: ArrayLike<number>, infection: ArrayLike<number>, nx: number, ny: number): Rgba {
  const img = new Rgba(nx, ny);
  const [lo, hi] = LUNG_WINDOW;
  for (let j = 0; j < ny; j++)
    for (let i = 0; i < nx; i++) {
      const o = j * nx + i;
      const v = hu[o]!;
      const g = v !== v ? 0 : Math.round((255 * (Math.min(Math.max(v, lo), hi) - lo)) / (hi - lo));
      img.set(i, j, [g, g, g]);
      if (mask[o]) {
        const p = infection[o]!;
        const a = heatAlpha(p);
        if (a > 0) img.set(i, j, heatColour(p), a);
        const edge = i === 0 || j === 0 || i === nx - 1 || j === ny - 1 || !mask[o - 1] || !mask[o + 1] || !mask[o - nx] || !mask[o + nx];
        if (edge) img.set(i, j, OUTLINE_RGB);
      }
    }
  return img;
}

/** Longest side, pixels, of a slice drawn with square display pixels (unless the slice itself is longer). */
export const MAX_DISPLAY_SIDE = 2048;

/**
 * Size in square display pixels of an nx x ny slice whose pixels are sx x sy mm. The display pixel is the
 * finer spacing divided by the smallest integer factor that makes the longer side at least `min` pixels (and
 * no finer than makes the longer side max(nx, ny, MAX_DISPLAY_SIDE): a bounded image whatever the spacing);
 * the shorter side is rounded to whole pixels and the longer one is the rounded product of it and the
 * physical aspect, so longer/shorter follows the physical size within half a pixel of the longer side.
 * Square pixels, or spacings that round to the slice's own size, give [nx, ny]: no resampling.
 */
export function displaySize(nx: number, ny: number, sx: number, sy: number, min = 0): [number, number] {
  if (!(sx > 0 && sy > 0 && Number.isFinite(sx) && Number.isFinite(sy)) || sx === sy) return [nx, ny];
  const w = nx * sx;
  const h = ny * sy;
  let d = Math.min(sx, sy);
  if (Math.round(w / d) === nx && Math.round(h / d) === ny) return [nx, ny];
  const cap = Math.max(nx, ny, MAX_DISPLAY_SIDE);
  d /= Math.max(1, Math.ceil(min / Math.max(Math.round(w / d), Math.round(h / d))));
  d = Math.max(d, Math.max(w, h) / cap);
  const short = Math.max(1, Math.round(Math.min(w, h) / d));
  const long = Math.min(cap, Math.max(1, Math.round((short * Math.max(w, h)) / Math.min(w, h))));
  return w <= h ? [short, long] : [long, short];
}

/**
 * {@link renderSlice} for pixels of sx x sy mm, drawn with square display pixels at least `min` pixels on the
 * longer side ({@link displaySize}). Square pixels give exactly `atLeast(renderSlice(...), min)`. Otherwise the
 * slice is resampled to the display grid (pixel centres mapped onto the source's, edges clamped): the CT's
 * lung-windowed grey and the infection probability each by their own bilinear sample (the heat colour from the
 * sampled probability), the lung mask by its nearest neighbour, and the outline is the edge of that resampled
 * mask, so it stays a crisp 1-pixel line around the lung.
 */
export function renderSliceMm(
  hu: ArrayLike<number>,
  mask: ArrayLike<number>,
  infection: ArrayLike<number>,
  nx: number,
  ny: number,
  sx: number,
  sy: number,
  min = 0,
): Rgba {
  const [w, h] = displaySize(nx, ny, sx, sy, min);
  if (w === nx && h === ny) return atLeast(renderSlice(hu, mask, infection, nx, ny), min);
  const [lo, hi] = LUNG_WINDOW;
  const grey = new Float32Array(nx * ny);
  for (let o = 0; o < nx * ny; o++) {
    const v = hu[o]!;
    grey[o] = v !== v ? 0 : (255 * (Math.min(Math.max(v, lo), hi) - lo)) / (hi - lo);
  }
  // Source coordinates of the display's pixel centres, per axis: index pair and weight of the upper one.
  const axis = (n: number, m: number) => {
    const i0 = new Int32Array(m);
    const i1 = new Int32Array(m);
    const t = new Float32Array(m);
    const near = new Int32Array(m);
    for (let x = 0; x < m; x++) {
      const u = Math.min(n - 1, Math.max(0, ((x + 0.5) * n) / m - 0.5));
      i0[x] = Math.floor(u);
      i1[x] = Math.min(n - 1, i0[x]! + 1);
      t[x] = u - i0[x]!;
      near[x] = Math.min(n - 1, Math.floor(((x + 0.5) * n) / m));
    }
    return { i0, i1, t, near };
  };
  const ax = axis(nx, w);
  const ay = axis(ny, h);
  const m = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) m[y * w + x] = mask[ay.near[y]! * nx + ax.near[x]!] ? 1 : 0;
  const lerp = (a: ArrayLike<number>, x: number, y: number) => {
    const r0 = ay.i0[y]! * nx;
    const r1 = ay.i1[y]! * nx;
    const tx = ax.t[x]!;
    const ty = ay.t[y]!;
    const top = a[r0 + ax.i0[x]!]! * (1 - tx) + a[r0 + ax.i1[x]!]! * tx;
    const bot = a[r1 + ax.i0[x]!]! * (1 - tx) + a[r1 + ax.i1[x]!]! * tx;
    return top * (1 - ty) + bot * ty;
  };
  const img = new Rgba(w, h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const g = Math.round(lerp(grey, x, y));
      img.set(x, y, [g, g, g]);
      const o = y * w + x;
      if (m[o]) {
        const p = lerp(infection, x, y);
        const a = heatAlpha(p);
        if (a > 0) img.set(x, y, heatColour(p), a);
        const edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[o - 1] || !m[o + 1] || !m[o - w] || !m[o + w];
        if (edge) img.set(x, y, OUTLINE_RGB);
      }
    }
  return img;
}

/** An image scaled up by the smallest integer factor that makes it at least `min` pixels on its longer side. */
export function atLeast(img: Rgba, min: number): Rgba {
  const f = Math.max(1, Math.ceil(min / Math.max(img.width, img.height)));
  if (f === 1) return img;
  const out = new Rgba(img.width * f, img.height * f);
  out.blit(img, 0, 0, out.width, out.height);
  return out;
}

/** Height of {@link drawLegend}'s block for a given scale. */
export function legendHeight(scale = 1): number {
  return (GLYPH_HEIGHT * 3 + 26) * scale;
}

/**
 * The legend at (x, y), `width` wide: the heat map's colour bar from HEAT_MIN to 1 with its tick labels, the
 * outline swatch, and the title lines.
 */
export function drawLegend(img: Rgba, x: number, y: number, width: number, scale = 1): void {
  const white: [number, number, number] = [255, 255, 255];
  const bar = Math.max(40, Math.min(width - 8 * scale, 200 * scale));
  img.text('INFECTION PROBABILITY', x, y, white, scale);
  const by = y + (GLYPH_HEIGHT + 3) * scale;
  const bh = 8 * scale;
  for (let t = 0; t < bar; t++) {
    const p = HEAT_MIN + ((1 - HEAT_MIN) * t) / (bar - 1);
    for (let yy = 0; yy < bh; yy++) img.set(x + t, by + yy, heatColour(p));
  }
  const ty = by + bh + 2 * scale;
  const ticks: Array<[number, string]> = [
    [HEAT_MIN, HEAT_MIN.toFixed(1)],
    [0.5, '0.5'],
    [1, '1.0'],
  ];
  for (const [p, label] of ticks) {
    const px = x + Math.round(((p - HEAT_MIN) / (1 - HEAT_MIN)) * (bar - 1));
    for (let yy = 0; yy < 2 * scale; yy++) img.set(px, by + bh + yy - 2 * scale, white);
    img.text(label, Math.min(x + bar - textWidth(label, scale), Math.max(x, px - textWidth(label, scale) / 2)), ty, white, scale);
  }
  const sy = ty + (GLYPH_HEIGHT + 4) * scale;
  img.fillRect(x, sy, 10 * scale, GLYPH_HEIGHT * scale, OUTLINE_RGB);
  img.text('LUNG OUTLINE', x + 14 * scale, sy, white, scale);
}
