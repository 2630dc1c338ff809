/**
 * The viewer: NiiVue (WebGL2) showing the CT in a lung or mediastinal window, with the lung mask and the
 * infection map as overlays. Every volume it gets is NIfTI bytes from our own writer (the CT written in the
 * worker, the masks from makeOutputFiles, the very files the user downloads), handed over as blob URLs.
 * NiiVue reorients to the nearest RAS grid, so its third fractional coordinate runs inferior to superior, the
 * same order as the analysis's slices: slice k of the report is at frac z = (k + 0.5) / slices.
 * @module
 */
import { Niivue, SHOW_RENDER, SLICE_TYPE } from '@niivue/niivue';

/** Window presets in HU: [min, max] = [level - width / 2, level + width / 2]. */
export const WINDOWS = { lung: [-1350, 150], mediastinum: [-125, 225] } as const;
export type WindowName = keyof typeof WINDOWS;
export type Layout = 'multi' | 'axial' | 'coronal' | 'sagittal';

const LAYOUTS: Record<Layout, SLICE_TYPE> = { multi: SLICE_TYPE.MULTIPLANAR, axial: SLICE_TYPE.AXIAL, coronal: SLICE_TYPE.CORONAL, sagittal: SLICE_TYPE.SAGITTAL };

/** What the crosshair is on. */
export interface Readout {
  mm: number[];
  vox: number[];
  hu: number | null;
  lung: number | null;
  infection: number | null;
  /** Axial slice index (inferior to superior). */
  slice: number;
}

/** Overlay settings. */
export interface OverlayStyle {
  visible: boolean;
  colormap: string;
  opacity: number;
}

/** NiiVue with our three volumes. */
export class Viewer {
  private nv: Niivue;
  private urls: string[] = [];
  private overlays: { lung: OverlayStyle; infection: OverlayStyle } = {
    lung: { visible: true, colormap: 'green', opacity: 0.5 },
    infection: { visible: true, colormap: 'warm', opacity: 0.7 },
  };
  onMove: (r: Readout) => void = () => {};
  private ready: Promise<unknown>;

  constructor(canvas: HTMLCanvasElement) {
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1],
      show3Dcrosshair: false,
      isColorbar: false,
      logLevel: 'error',
      loadingText: '',
      multiplanarShowRender: SHOW_RENDER.NEVER,
      isRadiologicalConvention: true,
      crosshairWidth: 0.5,
      crosshairColor: [0.3, 0.8, 1, 0.7],
    });
    this.ready = this.nv.attachToCanvas(canvas);
    this.nv.onLocationChange = (loc: unknown) => this.onMove(this.readout(loc));
  }

  private readout(loc: unknown): Readout {
    const l = loc as { mm: ArrayLike<number>; vox: ArrayLike<number>; frac: ArrayLike<number>; values: { value: number }[] };
    const v = (i: number) => (l.values?.[i] ? Number(l.values[i]!.value) : null);
    return { mm: Array.from(l.mm ?? []).slice(0, 3), vox: Array.from(l.vox ?? []), hu: v(0), lung: v(1), infection: v(2), slice: this.sliceOf(l.frac?.[2] ?? 0.5) };
  }

  private slicesRAS(): number {
    const vol = this.nv.volumes[0] as unknown as { dimsRAS?: number[] } | undefined;
    return vol?.dimsRAS?.[3] ?? 1;
  }

  private sliceOf(fracZ: number): number {
    const n = this.slicesRAS();
    return Math.max(0, Math.min(n - 1, Math.floor(fracZ * n)));
  }

  /** Shows a CT with its lung mask and infection map (NIfTI bytes, .nii or .nii.gz). */
  async show(ct: Uint8Array, lungMask: Uint8Array | null, infection: Uint8Array | null): Promise<void> {
    await this.ready;
    for (const v of [...this.nv.volumes]) this.nv.removeVolume(v);
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
    const url = (bytes: Uint8Array) => {
      const u = URL.createObjectURL(new Blob([bytes as BlobPart]));
      this.urls.push(u);
      return u;
    };
    const gz = (b: Uint8Array) => b[0] === 0x1f && b[1] === 0x8b;
    const list: Parameters<Niivue['loadVolumes']>[0] = [{ url: url(ct), name: gz(ct) ? 'ct.nii.gz' : 'ct.nii', colormap: 'gray', cal_min: WINDOWS.lung[0], cal_max: WINDOWS.lung[1] }];
    if (lungMask) list.push({ url: url(lungMask), name: 'lung_mask.nii.gz', colormap: this.overlays.lung.colormap, cal_min: 0.5, cal_max: 1, opacity: this.overlays.lung.opacity });
    if (infection) list.push({ url: url(infection), name: 'infection.nii.gz', colormap: this.overlays.infection.colormap, cal_min: 0.1, cal_max: 1, opacity: this.overlays.infection.opacity });
    await this.nv.loadVolumes(list);
    this.applyOverlays();
    this.nv.createOnLocationChange();
  }

  /** Sets the CT's window. */
  setWindow(name: WindowName): void {
    const ct = this.nv.volumes[0];
    if (!ct) return;
    ct.cal_min = WINDOWS[name][0];
    ct.cal_max = WINDOWS[name][1];
    this.nv.updateGLVolume();
  }

  setLayout(layout: Layout): void {
    this.nv.setSliceType(LAYOUTS[layout]);
  }

  /** Shows, hides or restyles an overlay. */
  setOverlay(which: 'lung' | 'infection', style: Partial<OverlayStyle>): void {
    Object.assign(this.overlays[which], style);
    this.applyOverlays();
  }

  overlay(which: 'lung' | 'infection'): OverlayStyle {
    return { ...this.overlays[which] };
  }

  private applyOverlays(): void {
    const vols = this.nv.volumes;
    (['lung', 'infection'] as const).forEach((which, i) => {
      const v = vols[i + 1];
      if (!v) return;
      const s = this.overlays[which];
      v.colormap = s.colormap;
      v.opacity = s.visible ? s.opacity : 0;
    });
    if (vols.length) this.nv.updateGLVolume();
  }

  /** Moves the crosshair to axial slice `index` (inferior to superior), keeping x and y. */
  goToSlice(index: number): void {
    const n = this.slicesRAS();
    const pos = this.nv.scene.crosshairPos;
    pos[2] = (Math.max(0, Math.min(n - 1, index)) + 0.5) / n;
    this.nv.scene.crosshairPos = pos;
    this.nv.drawScene();
    this.nv.createOnLocationChange();
  }

  /** Moves by `delta` axial slices. */
  step(delta: number): void {
    this.goToSlice(this.sliceOf(this.nv.scene.crosshairPos[2] ?? 0.5) + delta);
  }

  get currentSlice(): number {
    return this.sliceOf(this.nv.scene.crosshairPos[2] ?? 0.5);
  }
}
