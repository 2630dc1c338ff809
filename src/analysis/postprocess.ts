/**
 * The lung mask's post-processing and the "is this a chest CT" check, on the source grid in the axial view, the
 * same as weights/postprocess.py (the PyTorch side; test/realct.test.ts checks the engine against it on a real
 * volume):
 *
 * 1. **Nothing outside the body.** Slice by slice, the body is the largest 8-connected region above
 *    {@link BODY_HU} with its holes filled (a hole: a region below it that cannot reach the slice's border through
 *    4-connected steps). Lung voxels outside it are dropped: outside air near the apex, between the arms and the
 *    chest, under the table. Limit: a reconstruction circle that cuts into a lung opens that lung to the outside,
 *    and its slices lose their lung.
 * 2. **3-D components.** Voxels are connected in-plane through their 8 neighbours and across slices through the
 *    voxel above and below. Components holding less than {@link MIN_COMPONENT_FRACTION} of the largest one are
 *    dropped (bowel or stomach gas, air in the oesophagus, specks), and so are those with less than half of their
 *    voxels in the slices within {@link NEAR_ANCHORS_MM} of the large components' (those with at least
 *    {@link ANCHOR_FRACTION} of the largest one's voxels: the lungs), such as bowel gas far below the lungs on a
 *    scan that runs on into the abdomen (a whole-body CT's colon took in 1.6 L of "lung" before this rule).
 *
 * It only removes lung voxels: the infection map is then gated by the final mask (every output and figure uses
 * it). Memory: one slice of scratch and a small table per 2-D component; the volume's mask is changed in place.
 *
 * The chest check ({@link chestCoverage}) reads the final mask's extent along the body axis.
 * @module
 */
import { readAxialSlice, writeAxialSlice, type AxialGrid } from './grid.js';

/** HU above which a voxel is body (soft tissue, bone); fat is about -100, lung about -850. */
export const BODY_HU = -500;
/** A 3-D lung component is kept when it holds at least this fraction of the largest one's voxels. */
export const MIN_COMPONENT_FRACTION = 0.05;
/**
 * A 3-D lung component is kept only when at least half of its voxels lie in slices at most this far (mm) from the
 * first and last slices of the large components ({@link ANCHOR_FRACTION}).
 */
export const NEAR_ANCHORS_MM = 30;
/**
 * The components whose slices set that range: those holding at least this fraction of the largest one's voxels (the
 * two lungs; a bowel full of gas larger than a lung joins them, and then nothing is dropped for lying far from them).
 */
export const ANCHOR_FRACTION = 0.7;

/** A scan is not a chest CT when its final lung volume is below this, mL. */
export const MIN_LUNG_ML = 150;
/**
 * ... or when its lung slices add up to less than this along the body axis, mm (an adult's lungs span 200 to 300 mm),
 * while the scan is more than twice as long (a short slab through the chest, lung in every slice, is a chest CT).
 */
export const MIN_LUNG_EXTENT_MM = 60;
/** ... or when its lung is a sliver at one end: touching the first or last slice, shorter than this, mm, ... */
export const SLIVER_EXTENT_MM = 100;
/** ... and covering less than this fraction of the scan's extent. */
export const SLIVER_FRACTION = 0.35;
/** A slice counts towards the lung's extent when its lung covers at least this fraction of it. */
export const EXTENT_SLICE_FRACTION = 0.01;
/**
 * A chest CT whose first or last slice holds at least this fraction of its largest lung slice's lung does not show the
 * lungs whole: they continue beyond the scan's range, and the patient gets no class (the classifier was trained and
 * validated on scans that show the lungs whole: at most 0.073 there). On four whole real chest CTs a range ending where
 * the slice holds 25 % leaves 0.9 to 3.3 % of the lung volume outside it; at 50 % it is 3.6 to 9 % (weights/README.md
 * "Lungs cut by the scan's range").
 */
export const CUT_END_FRACTION = 0.25;

/** The root of `a` in a union-find forest (path halving). */
function findRoot(parent: Int32Array, a: number): number {
  while (parent[a] !== a) {
    parent[a] = parent[parent[a]!]!;
    a = parent[a]!;
  }
  return a;
}

/** Labels the 8-connected regions of `m` (nonzero) in raster order: labels 1..n in `lab`, returns n. */
function label8(m: Uint8Array, nx: number, ny: number, lab: Int32Array, parent: Int32Array): number {
  let n = 0;
  const find = (a: number): number => findRoot(parent, a);
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra < rb) parent[rb] = ra;
    else if (rb < ra) parent[ra] = rb;
  };
  for (let j = 0, o = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++, o++) {
      if (!m[o]) {
        lab[o] = 0;
        continue;
      }
      let l = 0;
      const look = (q: number) => {
        const v = lab[q]!;
        if (!v) return;
        if (!l) l = v;
        else if (v !== l) union(l, v);
      };
      if (i > 0) look(o - 1);
      if (j > 0) {
        if (i > 0) look(o - nx - 1);
        look(o - nx);
        if (i < nx - 1) look(o - nx + 1);
      }
      if (!l) {
        l = ++n;
        parent[l] = l;
      }
      lab[o] = l;
    }
  }
  // Final labels in raster order of first appearance.
  const remap = new Int32Array(n + 1);
  let k = 0;
  for (let o = 0; o < nx * ny; o++) {
    const v = lab[o]!;
    if (!v) continue;
    const r = find(v);
    if (!remap[r]) remap[r] = ++k;
    lab[o] = remap[r]!;
  }
  return k;
}

/** Scratch for one slice. */
export class SliceScratch {
  readonly lab: Int32Array;
  readonly parent: Int32Array;
  readonly tmp: Uint8Array;
  readonly queue: Int32Array;
  constructor(readonly nx: number, readonly ny: number) {
    const n = nx * ny;
    this.lab = new Int32Array(n);
    this.parent = new Int32Array(n + 1);
    this.tmp = new Uint8Array(n);
    this.queue = new Int32Array(n);
  }
}

/**
 * The body of one axial slice (see the module comment): `body[i]` = 1 inside. `hu` is the slice's HU (NaN counts
 * as air).
 */
export function bodyMaskSlice(hu: ArrayLike<number>, s: SliceScratch, body: Uint8Array): void {
  const { nx, ny, lab, parent, tmp, queue } = s;
  const n = nx * ny;
  for (let i = 0; i < n; i++) tmp[i] = hu[i]! > BODY_HU ? 1 : 0;
  const count = label8(tmp, nx, ny, lab, parent);
  body.fill(0);
  if (!count) return;
  const sizes = new Float64Array(count + 1);
  for (let i = 0; i < n; i++) sizes[lab[i]!]! += 1;
  let best = 1;
  for (let c = 2; c <= count; c++) if (sizes[c]! > sizes[best]!) best = c;
  // Outside: everything not in the body reachable from the border in 4-connected steps.
  for (let i = 0; i < n; i++) tmp[i] = lab[i] === best ? 1 : 0;
  let head = 0;
  let tail = 0;
  const push = (q: number) => {
    if (tmp[q] === 0) {
      tmp[q] = 2;
      queue[tail++] = q;
    }
  };
  for (let i = 0; i < nx; i++) {
    push(i);
    push((ny - 1) * nx + i);
  }
  for (let j = 0; j < ny; j++) {
    push(j * nx);
    push(j * nx + nx - 1);
  }
  while (head < tail) {
    const q = queue[head++]!;
    const i = q % nx;
    const j = (q - i) / nx;
    if (i > 0) push(q - 1);
    if (i < nx - 1) push(q + 1);
    if (j > 0) push(q - nx);
    if (j < ny - 1) push(q + nx);
  }
  for (let i = 0; i < n; i++) body[i] = tmp[i] === 2 ? 0 : 1;
}

/** Per-slice counts after post-processing. */
export interface PostprocessResult {
  /** Lung voxels per axial slice after post-processing. */
  lungVoxels: Float64Array;
  /** Of those, voxels marked infected (state 2 in the input mask). */
  infectedVoxels: Float64Array;
  /** Lung voxels removed because they lay outside the body. */
  removedOutsideBody: number;
  /** Lung voxels removed as small 3-D components. */
  removedComponents: number;
  /** 3-D components found and kept. */
  components: number;
  kept: number;
}

/**
 * Post-processes a lung mask in place (see the module comment). `mask` is on the source grid (the volume's
 * layout): 0 not lung, 1 lung, 2 lung and infected; afterwards it holds 0 or 1, and `infection` (same layout) is 0
 * wherever the lung was removed. `hu` is the volume's data (HU).
 */
export function postprocessLung(grid: AxialGrid, hu: ArrayLike<number>, mask: Uint8Array, infection: Uint8Array): PostprocessResult {
  const [nx, ny, nz] = grid.dims;
  const n = nx * ny;
  const s = new SliceScratch(nx, ny);
  const huSlice = new Float32Array(n);
  const m = new Uint8Array(n);
  const body = new Uint8Array(n);
  const prevLab = new Int32Array(n);
  // Global component ids: slice z's 2-D label l is base[z] + l; union-find over them.
  const base = new Int32Array(nz + 1);
  let parent = new Int32Array(1024);
  let size = new Float64Array(1024);
  let total = 0;
  const find = (a: number): number => findRoot(parent, a);
  let removedOutsideBody = 0;
  const touched = new Uint8Array(nz);
  for (let z = 0; z < nz; z++) {
    readAxialSlice(grid, mask, z, m);
    let any = 0;
    for (let i = 0; i < n; i++) any |= m[i]!;
    base[z] = total;
    if (!any) {
      prevLab.fill(0);
      continue;
    }
    readAxialSlice(grid, hu, z, huSlice);
    bodyMaskSlice(huSlice, s, body);
    let changed = false;
    for (let i = 0; i < n; i++)
      if (m[i] && !body[i]) {
        m[i] = 0;
        removedOutsideBody++;
        changed = true;
      }
    if (changed) {
      writeAxialSlice(grid, m, z, mask);
      touched[z] = 1;
    }
    const count = label8(m, nx, ny, s.lab, s.parent);
    if (total + count + 1 > parent.length) {
      const cap = Math.max(parent.length * 2, total + count + 1);
      const p2 = new Int32Array(cap);
      p2.set(parent);
      parent = p2;
      const s2 = new Float64Array(cap);
      s2.set(size);
      size = s2;
    }
    for (let c = 1; c <= count; c++) {
      parent[total + c] = total + c;
      size[total + c] = 0;
    }
    for (let i = 0; i < n; i++) {
      const l = s.lab[i]!;
      if (!l) continue;
      const g = total + l;
      size[g]! += 1;
      const p = prevLab[i]!;
      if (p) {
        const ra = find(g);
        const rb = find(p);
        if (ra !== rb) {
          if (ra < rb) parent[rb] = ra;
          else parent[ra] = rb;
        }
      }
    }
    for (let i = 0; i < n; i++) prevLab[i] = s.lab[i] ? total + s.lab[i]! : 0;
    total += count;
  }
  base[nz] = total;
  // Component sizes at their roots.
  const rootSize = new Float64Array(total + 1);
  let largest = 0;
  for (let g = 1; g <= total; g++) rootSize[find(g)]! += size[g]!;
  let components = 0;
  for (let g = 1; g <= total; g++)
    if (find(g) === g) {
      components++;
      largest = Math.max(largest, rootSize[g]!);
    }
  // The slices of the large components (the lungs), widened by NEAR_ANCHORS_MM, and each component's voxels there.
  let z0 = nz;
  let z1 = -1;
  for (let z = 0; z < nz; z++)
    for (let g = base[z]! + 1; g <= base[z + 1]!; g++)
      if (rootSize[find(g)]! >= ANCHOR_FRACTION * largest) {
        z0 = Math.min(z0, z);
        z1 = z;
      }
  // (1e-4: a spacing stored in float32, such as 0.6 mm, still gives the whole number of slices.)
  const margin = Math.floor(NEAR_ANCHORS_MM / grid.spacing[2] + 1e-4);
  const near = new Float64Array(total + 1);
  for (let z = Math.max(0, z0 - margin); z <= Math.min(nz - 1, z1 + margin); z++)
    for (let g = base[z]! + 1; g <= base[z + 1]!; g++) near[find(g)]! += size[g]!;
  const keepRoot = (r: number) => rootSize[r]! >= MIN_COMPONENT_FRACTION * largest && 2 * near[r]! >= rootSize[r]!;
  let kept = 0;
  for (let g = 1; g <= total; g++) if (find(g) === g && keepRoot(g)) kept++;
  const lungVoxels = new Float64Array(nz);
  const infectedVoxels = new Float64Array(nz);
  const inf = new Uint8Array(n);
  let removedComponents = 0;
  for (let z = 0; z < nz; z++) {
    readAxialSlice(grid, mask, z, m);
    let any = 0;
    for (let i = 0; i < n; i++) any |= m[i]!;
    let removed = touched[z] === 1;
    if (any) {
      label8(m, nx, ny, s.lab, s.parent);
      let lung = 0;
      let infected = 0;
      for (let i = 0; i < n; i++) {
        const l = s.lab[i]!;
        if (!l) continue;
        if (!keepRoot(find(base[z]! + l))) {
          m[i] = 0;
          removed = true;
          removedComponents++;
          continue;
        }
        lung++;
        if (m[i] === 2) infected++;
        m[i] = 1;
      }
      lungVoxels[z] = lung;
      infectedVoxels[z] = infected;
      writeAxialSlice(grid, m, z, mask);
    }
    // The infection map is nonzero only on the raw mask: clear it wherever the lung was removed.
    if (removed) {
      readAxialSlice(grid, infection, z, inf);
      for (let i = 0; i < n; i++) if (!m[i]) inf[i] = 0;
      writeAxialSlice(grid, inf, z, infection);
    }
  }
  return { lungVoxels, infectedVoxels, removedOutsideBody, removedComponents, components, kept };
}

/** Where the lungs are along the body axis, and whether that is a chest CT. */
export interface ChestCoverage {
  isChest: boolean;
  /** Why not (null for a chest CT). */
  reason: string | null;
  lungVolumeMl: number;
  /** Slices whose lung covers >= EXTENT_SLICE_FRACTION of the slice, the first and last of them, and their number times the slice spacing, mm. */
  lungSlices: number;
  firstLungSlice: number | null;
  lastLungSlice: number | null;
  lungExtentMm: number;
  scanExtentMm: number;
  /** Lung voxels on the scan's first (most inferior) and last (most superior) slice over those of its largest lung slice; null without lung. */
  lowerEndFraction: number | null;
  upperEndFraction: number | null;
  /** Whether the lungs end inside the scan at both ends (both fractions under {@link CUT_END_FRACTION}); null without lung. */
  lungsWhole: boolean | null;
  /** Why a chest CT gets no patient class although it is one: its lungs continue beyond the scan (null otherwise). */
  cutReason: string | null;
}

/**
 * The chest check on the final mask: per-slice lung voxels, slice size, slice spacing (mm) and the lung volume.
 * Not a chest CT: lungs under {@link MIN_LUNG_ML}, or lung slices adding up to under {@link MIN_LUNG_EXTENT_MM} (and under half the scan), or a sliver at one
 * end (touching the first or last slice, under {@link SLIVER_EXTENT_MM} and under {@link SLIVER_FRACTION} of the
 * scan).
 * Lungs not whole: the first or last slice holds at least {@link CUT_END_FRACTION} of the largest lung slice's lung;
 * a chest CT then has `cutReason` set (no patient class).
 */
export function chestCoverage(lungVoxels: ArrayLike<number>, slicePixels: number, dzMm: number, lungVolumeMl: number): ChestCoverage {
  const nz = lungVoxels.length;
  let first = -1;
  let last = -1;
  let count = 0;
  let largest = 0;
  for (let z = 0; z < nz; z++) {
    if (lungVoxels[z]! > largest) largest = lungVoxels[z]!;
    if (lungVoxels[z]! >= EXTENT_SLICE_FRACTION * slicePixels) {
      if (first < 0) first = z;
      last = z;
      count++;
    }
  }
  const scanExtentMm = nz * dzMm;
  // The extent is the slices that hold lung (>= 1 % of the slice) times the spacing, not the span from the first to
  // the last: a few scattered slices with gas read as lung between them must not make a sliver look long.
  const lungExtentMm = count * dzMm;
  const mm = (v: number) => `${Math.round(v)} mm`;
  let reason: string | null = null;
  if (lungVolumeMl < MIN_LUNG_ML || first < 0)
    reason = `not a chest CT: no lungs found (${lungVolumeMl.toFixed(0)} mL of lung, under ${MIN_LUNG_ML} mL)`;
  else if (lungExtentMm < MIN_LUNG_EXTENT_MM && lungExtentMm < 0.5 * scanExtentMm)
    reason = `not a chest CT: lung seen over ${mm(lungExtentMm)} of the body axis only (a chest CT shows the lungs from apex to base; under ${MIN_LUNG_EXTENT_MM} mm is not a chest)`;
  else if ((first === 0 || last === nz - 1) && lungExtentMm < SLIVER_EXTENT_MM && lungExtentMm < SLIVER_FRACTION * scanExtentMm)
    reason = `not a chest CT: lung only at the ${first === 0 ? 'lower' : 'upper'} end of the scan (${mm(lungExtentMm)} of ${mm(scanExtentMm)}): the scan covers another region`;
  const lowerEndFraction = largest > 0 ? lungVoxels[0]! / largest : null;
  const upperEndFraction = largest > 0 ? lungVoxels[nz - 1]! / largest : null;
  const lowerCut = lowerEndFraction !== null && lowerEndFraction >= CUT_END_FRACTION;
  const upperCut = upperEndFraction !== null && upperEndFraction >= CUT_END_FRACTION;
  const pct = (v: number) => `${Math.round(100 * v)} %`;
  const ends = [
    lowerCut ? `its lowest slice holds ${pct(lowerEndFraction!)} of the largest lung slice's lung: the bases are cut off` : '',
    upperCut ? `its highest slice holds ${pct(upperEndFraction!)} of the largest lung slice's lung: the apices are cut off` : '',
  ].filter(Boolean);
  const cutReason =
    reason === null && ends.length
      ? `no class: the lungs continue beyond the scan (${ends.join('; ')}; from ${pct(CUT_END_FRACTION)} the lungs are not whole): the classifier was trained and validated on scans that show the whole lungs and gives no patient class for part of them`
      : null;
  return {
    isChest: reason === null,
    reason,
    lungVolumeMl,
    lungSlices: count,
    firstLungSlice: first < 0 ? null : first,
    lastLungSlice: last < 0 ? null : last,
    lungExtentMm,
    scanExtentMm,
    lowerEndFraction,
    upperEndFraction,
    lungsWhole: largest > 0 ? !(lowerCut || upperCut) : null,
    cutReason,
  };
}
