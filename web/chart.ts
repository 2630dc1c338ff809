/**
 * The chart along the body axis: one column per slice (inferior at the left, superior at the right), the
 * infected fraction of the lung as a filled area and each class's slice probability as a line, in an SVG of
 * our own. A click (or Enter on a focused chart with the arrow keys) picks a slice; the current slice is marked.
 * @module
 */
import type { SliceView } from './report-view.js';

const NS = 'http://www.w3.org/2000/svg';
const COLOURS = ['#ff6b6b', '#f0b429', '#3ecf8e', '#4ea1ff', '#c084fc'];

function el<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

/** A drawn chart: move its marker with {@link SliceChart.setCurrent}. */
export interface SliceChart {
  setCurrent(index: number): void;
}

/** Draws the chart into `host` (replacing what is there); `onPick` gets the slice index clicked. */
export function drawSliceChart(host: HTMLElement, slices: SliceView[], classNames: string[], onPick: (index: number) => void): SliceChart {
  host.textContent = '';
  const W = 600;
  const H = 220;
  const m = { l: 34, r: 8, t: 8, b: 26 };
  const n = Math.max(1, slices.length);
  const x = (i: number) => m.l + ((i + 0.5) / n) * (W - m.l - m.r);
  const y = (v: number) => m.t + (1 - v) * (H - m.t - m.b);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', tabindex: 0, 'aria-label': 'slice probabilities and infected fraction along the body axis' });
  for (const v of [0, 0.5, 1]) {
    svg.append(el('line', { x1: m.l, x2: W - m.r, y1: y(v), y2: y(v), stroke: '#2c3640' }));
    const t = el('text', { x: m.l - 4, y: y(v) + 4, 'text-anchor': 'end', fill: '#9aa5b1', 'font-size': 11 });
    t.textContent = v.toFixed(1);
    svg.append(t);
  }
  const axis = el('text', { x: (W + m.l) / 2, y: H - 6, 'text-anchor': 'middle', fill: '#9aa5b1', 'font-size': 11 });
  axis.textContent = `slice (inferior → superior), ${slices.length} slices`;
  svg.append(axis);
  // Infected fraction: filled area (NaN, no lung, as zero).
  const area = slices.map((s, i) => `${x(i)},${y(s.infectedFraction ?? 0)}`);
  if (slices.length) svg.append(el('polygon', { points: `${x(0)},${y(0)} ${area.join(' ')} ${x(slices.length - 1)},${y(0)}`, fill: 'rgba(255,107,107,0.25)', stroke: 'none', 'data-series': 'infected' }));
  // Unused slices (too little lung): shaded.
  slices.forEach((s, i) => {
    if (!s.used) svg.append(el('rect', { x: x(i) - (W - m.l - m.r) / n / 2, y: m.t, width: (W - m.l - m.r) / n, height: H - m.t - m.b, fill: 'rgba(255,255,255,0.04)' }));
  });
  classNames.forEach((_, k) => {
    const pts = slices.map((s, i) => `${x(i)},${y(s.probs[k] ?? 0)}`).join(' ');
    svg.append(el('polyline', { points: pts, fill: 'none', stroke: COLOURS[k % COLOURS.length]!, 'stroke-width': 2, 'data-series': `class-${k}` }));
  });
  const marker = el('line', { x1: x(0), x2: x(0), y1: m.t, y2: H - m.b, stroke: '#e6e9ec', 'stroke-dasharray': '3 3', visibility: 'hidden' });
  svg.append(marker);
  let current = -1;
  const setCurrent = (i: number) => {
    if (!slices.length) return;
    current = Math.max(0, Math.min(slices.length - 1, i));
    marker.setAttribute('x1', String(x(current)));
    marker.setAttribute('x2', String(x(current)));
    marker.setAttribute('visibility', 'visible');
  };
  svg.addEventListener('click', (ev) => {
    const r = svg.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    const i = Math.floor(((px - m.l) / (W - m.l - m.r)) * n);
    if (i >= 0 && i < slices.length) {
      setCurrent(i);
      onPick(i);
    }
  });
  svg.addEventListener('keydown', (ev) => {
    if (ev.key !== 'ArrowLeft' && ev.key !== 'ArrowRight') return;
    ev.preventDefault();
    ev.stopPropagation();
    setCurrent((current < 0 ? 0 : current) + (ev.key === 'ArrowRight' ? 1 : -1));
    onPick(current);
  });
  host.append(svg);
  const legend = document.createElement('div');
  legend.className = 'legend';
  legend.innerHTML =
    `<span style="color:rgba(255,107,107,0.8)">■</span> infected fraction of the lung &nbsp; ` +
    classNames.map((c, k) => `<span style="color:${COLOURS[k % COLOURS.length]}">━</span> P(${escapeHtml(c)})`).join(' &nbsp; ');
  host.append(legend);
  return { setCurrent };
}

/** Escapes text for innerHTML. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
