/**
 * Every output file of an analysis, made in memory as `{ name, bytes }` so the CLI writes them to a folder and
 * the web page offers the same files for download:
 * - `report.json`: the report (schema: report.schema.json);
 * - `lung_mask.nii.gz`: uint8 labels (1 lung, 0 elsewhere), NIFTI_INTENT_LABEL;
 * - `infection.nii.gz`: infection probability, 0 outside the lung mask, stored as uint8 with scl_slope 1/255
 *   ({@link INFECTION_SCL_SLOPE}) and scl_inter 0, so readers that apply the scaling (nibabel's get_fdata,
 *   ITK-SNAP, 3D Slicer, NiiVue) read a probability in [0, 1] in steps of 1/255;
 *   both on the input's exact grid with its affine (qform and sform; a NIfTI input's own qform_code, sform_code
 *   and transforms, other inputs code 1, scanner), so viewers overlay them on the scan;
 * - `overlays/slice_KKK.png`: chosen axial slices (K the axial index) with the lung outline and the infection
 *   heat map over the lung-windowed slice;
 * - `overlays/contact_sheet.png`: the most involved slices side by side with captions and a legend.
 * @module
 */
import { writeNifti } from '../io/nifti.js';
import { lpsToRas } from '../volume/affine.js';
import { INFECTION_LEVELS, type AnalysisResult } from './analyze.js';
import { readAxialSlice } from './grid.js';
import { nonFinitePaths, type AnalysisReport } from './report.js';
import { displaySize, drawLegend, legendHeight, renderSliceMm, Rgba } from './render.js';
import { GLYPH_HEIGHT } from './font.js';

/** One output file. */
export interface OutputFile {
  /** Relative path inside the output folder, '/'-separated. */
  name: string;
  bytes: Uint8Array;
}

/** Options of {@link makeOutputFiles}. */
export interface OutputOptions {
  /** How many single-slice overlays (default 5). */
  overlays?: number;
  /** How many slices on the contact sheet (default 12). */
  sheetSlices?: number;
  /** Tile size of the contact sheet, pixels (default 160). */
  tile?: number;
}

/** The file names {@link makeOutputFiles} always makes (the overlays' names depend on the slices). */
export const REPORT_FILE = 'report.json';
export const LUNG_MASK_FILE = 'lung_mask.nii.gz';
export const INFECTION_FILE = 'infection.nii.gz';
export const CONTACT_SHEET_FILE = 'overlays/contact_sheet.png';
/** The folder of the pictures. */
export const OVERLAYS_FOLDER = 'overlays';

/** The name of the single-slice overlay of axial slice `k`. */
export function overlayFileName(k: number): string {
  return `${OVERLAYS_FOLDER}/slice_${String(k).padStart(3, '0')}.png`;
}

/** The DICOM outputs' names (`--dicom`, src/analysis/dicom-outputs.ts). */
export const SEG_FILE = 'seg.dcm';
export const SR_FILE = 'sr.dcm';
export const SC_FILE = 'contact_sheet.dcm';

/**
 * Whether `name` (relative to an output folder, '/'-separated) is one of the files {@link makeOutputFiles} or the
 * DICOM outputs make: what an output folder may hold for it to be replaced by a new result (src/node/output-dir.ts).
 */
export function isOutputFileName(name: string): boolean {
  const named = [REPORT_FILE, LUNG_MASK_FILE, INFECTION_FILE, CONTACT_SHEET_FILE, SEG_FILE, SR_FILE, SC_FILE];
  return named.includes(name) || /^overlays\/slice_\d{3,}\.png$/.test(name);
}

/**
 * scl_slope of infection.nii.gz: 1/255 as a float32, rounded down (0.0039215684) rather than to nearest
 * (0.0039215689), so that the largest stored value, 255, reads as 0.99999994 and never above 1.
 */
export const INFECTION_SCL_SLOPE = 0.003921568393707275;

/** report.json's bytes; refuses a report with a non-finite number (JSON would turn it into null silently). */
export function reportBytes(report: AnalysisResult['report']): Uint8Array {
  const bad = nonFinitePaths(report);
  if (bad.length) throw new Error(`report has non-finite numbers at ${bad.slice(0, 5).join(', ')}`);
  return new TextEncoder().encode(JSON.stringify(report, null, 2) + '\n');
}

/**
 * Slices for the single overlays: the most involved one, then slices spread evenly over those with lung (all
 * slices when none has lung), in axial order, at most `n`.
 */
export function chooseOverlaySlices(result: AnalysisResult, n: number): number[] {
  const s = result.report.slices;
  const withLung = s.filter((x) => x.lungVoxels > 0).map((x) => x.index);
  const pool = withLung.length ? withLung : s.map((x) => x.index);
  const m = Math.min(n, pool.length);
  const chosen = new Set<number>();
  const top = mostInvolved(result, 1)[0];
  if (top !== undefined && m > 0) chosen.add(top);
  for (let t = 0; chosen.size < m && t < m; t++) chosen.add(pool[m === 1 ? 0 : Math.round((t * (pool.length - 1)) / (m - 1))]!);
  for (const p of pool) {
    if (chosen.size >= m) break;
    chosen.add(p);
  }
  return [...chosen].sort((a, b) => a - b);
}

/** The `n` slices with the most infected lung voxels (ties: more lung), most involved first. */
export function mostInvolved(result: AnalysisResult, n: number): number[] {
  const s = result.report.slices;
  const inf = (x: (typeof s)[number]) => (x.infectedFraction ?? 0) * x.lungVoxels;
  return [...s]
    .sort((a, b) => inf(b) - inf(a) || b.lungVoxels - a.lungVoxels || a.index - b.index)
    .slice(0, n)
    .map((x) => x.index);
}

/**
 * Axial slice k as an image with square display pixels: at the source resolution when its pixels are square,
 * else resampled to the physical aspect ({@link renderSliceMm}); at least `min` pixels on the longer side.
 */
export function sliceImage(result: AnalysisResult, k: number, min = 0): Rgba {
  const g = result.grid;
  const [nx, ny] = g.dims;
  const hu = new Float32Array(nx * ny);
  const mask = new Uint8Array(nx * ny);
  const inf = new Float32Array(nx * ny);
  readAxialSlice(g, result.volume.data, k, hu);
  readAxialSlice(g, result.lungMask, k, mask);
  readAxialSlice(g, result.infection, k, inf);
  for (let i = 0; i < inf.length; i++) inf[i] = inf[i]! / INFECTION_LEVELS;
  return renderSliceMm(hu, mask, inf, nx, ny, g.spacing[0], g.spacing[1], min);
}

/** `text` in lines of at most `width` characters, broken at spaces (a longer word is broken where it must be). */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (let word of text.split(/\s+/).filter(Boolean)) {
    while (word.length > width) {
      if (line) lines.push(line);
      lines.push(word.slice(0, width));
      word = word.slice(width);
      line = '';
    }
    if (!word) continue;
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line || !lines.length) lines.push(line);
  return lines;
}

/** The contact sheet: the most involved slices, captioned "K <index>  <position> MM  <infected>%", and the legend. */
export function contactSheet(result: AnalysisResult, n = 12, tile = 160): Rgba {
  const ks = mostInvolved(result, n);
  const cols = Math.min(4, Math.max(1, ks.length));
  const rows = Math.ceil(ks.length / cols);
  const pad = 6;
  const caption = GLYPH_HEIGHT + 6;
  const [nx, ny] = result.grid.dims;
  const [sx, sy] = result.grid.spacing;
  // Square pixels: tiles `tile` wide and as tall as the slice's pixel aspect says (as ever). Otherwise the
  // physical aspect r = height / width: tall slices are `tile` wide and round(tile r) high; wide ones
  // floor(tile r) high and round(th / r) wide (so at most `tile`, centred in their column): the longer side
  // follows the shorter within half a pixel. At most `tile` times the display image's height (bounded).
  const [dw, dh] = displaySize(nx, ny, sx, sy);
  const square = dw === nx && dh === ny;
  const r = (ny * sy) / (nx * sx);
  const th = Math.max(8, square ? Math.round((tile * ny) / nx) : Math.min(tile * dh, r >= 1 ? Math.round(tile * r) : Math.floor(tile * r)));
  const tw = square || r >= 1 ? tile : Math.max(1, Math.min(tile, Math.round(th / r)));
  const width = Math.max(cols * (tile + pad) + pad, 240);
  const p = result.report.patient;
  const title = sheetTitle(p);
  // The title and the weights' notice whole ("... not for diagnosis" must never be cut off), wrapped at words.
  const perLine = Math.floor((width - 2 * pad) / 6);
  const header: [string, [number, number, number]][] = [
    ...wrapWords(title, perLine).map((l): [string, [number, number, number]] => [l, [255, 255, 255]]),
    ...wrapWords(result.report.notice.toUpperCase(), perLine).map((l): [string, [number, number, number]] => [l, [255, 200, 120]]),
  ];
  const headerH = header.length * (GLYPH_HEIGHT + 4) + pad;
  const height = headerH + rows * (th + caption + pad) + legendHeight() + 2 * pad;
  const img = new Rgba(width, height, [24, 24, 24]);
  const white: [number, number, number] = [255, 255, 255];
  header.forEach(([line, colour], i) => img.text(line, pad, pad + i * (GLYPH_HEIGHT + 4), colour));
  ks.forEach((k, t) => {
    const x = pad + (t % cols) * (tile + pad);
    const y = headerH + Math.floor(t / cols) * (th + caption + pad);
    img.blit(sliceImage(result, k), x + Math.floor((tile - tw) / 2), y, tw, th);
    const s = result.report.slices[k]!;
    img.text(`K ${k} ${s.positionMm.toFixed(1)}MM ${s.infectedFraction === null ? '-' : (s.infectedFraction * 100).toFixed(1) + '%'}`, x, y + th + 3, white);
  });
  drawLegend(img, pad, height - legendHeight() - pad, width - 2 * pad);
  return img;
}

/**
 * Every output file of `result` (see the module comment), in memory. The report is serialised as it is:
 * callers that add timings (total time) do so before calling.
 */
export async function makeOutputFiles(result: AnalysisResult, opts: OutputOptions = {}): Promise<OutputFile[]> {
  const v = result.volume;
  const affine = v.space === 'LPS' ? lpsToRas(v.affine) : v.affine;
  // A NIfTI input's qform/sform codes and transforms are kept (its masks are placed as it is); others: scanner, 1.
  const xform = v.source.niftiXform && v.space === 'RAS' ? { xform: v.source.niftiXform } : {};
  const files: OutputFile[] = [{ name: REPORT_FILE, bytes: reportBytes(result.report) }];
  files.push({ name: LUNG_MASK_FILE, bytes: await writeNifti({ data: result.lungMask, dims: v.dims, affine, ...xform, intent: 'label', description: 'covidct lung mask (1 lung)' }) });
  files.push({ name: INFECTION_FILE, bytes: await writeNifti({ data: result.infection, dims: v.dims, affine, ...xform, scale: { slope: INFECTION_SCL_SLOPE, inter: 0 }, description: 'covidct infection probability (x 1/255)' }) });
  for (const k of chooseOverlaySlices(result, opts.overlays ?? 5)) files.push({ name: overlayFileName(k), bytes: sliceImage(result, k, 256).png() });
  files.push({ name: CONTACT_SHEET_FILE, bytes: contactSheet(result, opts.sheetSlices ?? 12, opts.tile ?? 160).png() });
  return files;
}

/** The contact sheet's title line: the patient answer, or why there is none (not a chest CT, outside what
 * validation supports, no lung found). */
export function sheetTitle(p: AnalysisReport['patient']): string {
  if (p.chest && !p.chest.isChest) return 'PATIENT: NO CLASS, NOT A CHEST CT';
  if (p.support?.supported === false) return 'PATIENT: NO CLASS, OUTSIDE WHAT VALIDATION SUPPORTS';
  if (!p.lungFound || p.label === null) return 'PATIENT: NO LUNG FOUND';
  const prob = ((p.probabilities?.[p.label] ?? 0) * 100).toFixed(1);
  return `PATIENT: ${p.label} (${prob}%), LUNG INVOLVEMENT ${p.lungInvolvementPct === null ? '-' : p.lungInvolvementPct.toFixed(1) + '%'}`;
}
